from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from core.outages import CHANNEL_LAYER, outage_recovery_hook_register
        from messaging.realtime import sockets_catch_up_schedule

        # After the channel layer's Redis returns, open sockets catch up on what they missed.
        outage_recovery_hook_register(CHANNEL_LAYER, sockets_catch_up_schedule)
