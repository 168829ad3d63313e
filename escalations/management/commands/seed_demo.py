"""Create the demo accounts (DEBUG only): customers alice and bob, operator olivia, superuser
root, all with DEMO_PASSWORD. Lives in escalations because olivia joins the Operators group,
which this app owns; accounts knows nothing of operators."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import User
from escalations.services import operators_group_ensure

DEMO_ACCOUNTS = (
    # username, is_staff, is_superuser
    ("alice", False, False),
    ("bob", False, False),
    ("olivia", True, False),
    ("root", True, True),
)


class Command(BaseCommand):
    help = "Create the demo accounts (only when DEBUG is on)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            self.stdout.write("DEBUG is off: no demo accounts created.")
            return
        operators = operators_group_ensure()
        for username, is_staff, is_superuser in DEMO_ACCOUNTS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "email": f"{username}@example.com",
                    "first_name": username.capitalize(),
                    "is_staff": is_staff,
                    "is_superuser": is_superuser,
                },
            )
            if created:
                user.set_password(settings.DEMO_PASSWORD)
                user.save(update_fields=["password"])
            if is_staff and not is_superuser:
                user.groups.add(operators)
        # The demo password is a development convenience (DEBUG only), printed so a newcomer
        # can sign in; production never seeds accounts.
        self.stdout.write(
            "Demo accounts: alice, bob (customers), olivia (operator), root (superuser); "
            f"password: {settings.DEMO_PASSWORD} (set DEMO_PASSWORD to change it)"
        )
