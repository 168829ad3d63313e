from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # The top layer plugs into the seams the lower layers own; nothing below imports this.
        from accounts.data_rights import erasure_hook_register, export_contributor_register
        from core.periodic import periodic_job_register
        from integrations import data_rights
        from integrations.delivery import OUTBOX_SWEEP_JOB, outbox_insert_from, outbox_write
        from messaging.events import domain_event_sink_register

        domain_event_sink_register(outbox_write, insert_from=outbox_insert_from)
        export_contributor_register(data_rights.conversations_export)
        export_contributor_register(data_rights.ratings_export)
        erasure_hook_register(data_rights.conversations_disconnect_on_erase)
        erasure_hook_register(data_rights.webhook_events_drop_on_erase)
        # What every `run_worker` runs on a timer beside its task queue.
        periodic_job_register(OUTBOX_SWEEP_JOB)
