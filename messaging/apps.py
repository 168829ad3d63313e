from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from accounts.socket_events import socket_publisher_register
        from core.outages import CHANNEL_LAYER, outage_recovery_hook_register
        from messaging.realtime import publish, sockets_catch_up_schedule

        # Session revocations and password changes reach open sockets through the same
        # publisher as every push (accounts.socket_events).
        socket_publisher_register(publish)
        # After the channel layer's Redis returns, open sockets catch up on what they missed.
        outage_recovery_hook_register(CHANNEL_LAYER, sockets_catch_up_schedule)
