from django.apps import AppConfig


class EscalationsConfig(AppConfig):
    name = "escalations"
    verbose_name = "Escalations"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from core.periodic import periodic_job_register
        from escalations.jobs import ESCALATIONS_JOB
        from escalations.services import EscalationHandoff, operators_group_after_migrate
        from messaging.handoff import handoff_provider_register

        # messaging asks for hand-offs through its own interface; escalations provides them.
        handoff_provider_register(EscalationHandoff())
        # SLA breaches and the auto-assignment safety net, in every background worker.
        periodic_job_register(ESCALATIONS_JOB)

        # Migration 0002 creates the Operators group once; a database flush (tests, or
        # `manage.py flush`) removes it, and post_migrate puts it back.
        post_migrate.connect(
            operators_group_after_migrate, sender=self, dispatch_uid="escalations.operators_group"
        )
