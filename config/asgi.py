"""One ASGI application for HTTP and websockets (`make run`, uvicorn)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before anything imports models (the websocket routes do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import re_path  # noqa: E402

from accounts.sockets import websocket_route_not_found  # noqa: E402
from config.startup import serving_process_prepare  # noqa: E402
from escalations.routing import websocket_urlpatterns as escalation_routes  # noqa: E402
from messaging.routing import websocket_urlpatterns as conversation_routes  # noqa: E402

# No session middleware on websockets: clients authenticate with a token in their first frame.
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            URLRouter(
                [
                    *conversation_routes,
                    *escalation_routes,
                    # Unknown paths close cleanly instead of raising inside Channels (a 500).
                    re_path(r"", websocket_route_not_found),  # type: ignore[arg-type]
                ]
            )
        ),
    }
)

serving_process_prepare()
