from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from accounts.socket_events import socket_publisher_register
        from messaging.realtime import publish

        # Session revocations and password changes reach open sockets through the same
        # publisher as every push (accounts.socket_events).
        socket_publisher_register(publish)
