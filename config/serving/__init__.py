"""The production profile (`make serve`): process supervision in `serve`, the ASGI tier's
graceful websocket shutdown in `asgi_graceful`. Wiring only: it imports the apps through
config.asgi / config.wsgi, never the other way round."""
