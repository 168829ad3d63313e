"""Websocket routes of the messaging app (mounted by config/asgi.py)."""

from django.urls import path

from messaging.consumers import ConversationConsumer

websocket_urlpatterns: list = [
    path("ws/conversations/<int:conversation_id>/", ConversationConsumer.as_asgi()),
]
