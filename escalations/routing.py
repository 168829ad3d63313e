"""Websocket routes of the escalations app (mounted by config/asgi.py)."""

from django.urls import path

from escalations.consumers import EscalationConsumer

websocket_urlpatterns: list = [
    path("ws/escalations/", EscalationConsumer.as_asgi()),
]
