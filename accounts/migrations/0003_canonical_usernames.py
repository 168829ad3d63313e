"""Canonical usernames (accounts/usernames.py) for existing rows, and revoked token families.

Every username becomes NFKC + case-folded, because sign-in now compares that form exactly.
- A name that has no canonical form (it would exceed 150 characters once normalised, or holds
  control/unassigned characters) is left as it is: such an account could not sign in before
  either; an operator renames it in the admin.
- Collisions (two rows whose names fold to one form, e.g. "Straße" and "strasse"): the row
  already holding the canonical form keeps it, else the oldest row (lowest id) gets it; every
  other row is renamed "<canonical>-<id>" and logged (a warning), so operators can tell those users.
The fold is copied here, not imported, so this migration keeps meaning what it meant today.
"""

import logging
import unicodedata

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

logger = logging.getLogger("parley.accounts")


MAX_USERNAME_CHARS = 150


def _fold(raw):
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    return folded.strip()


def _has_canonical_form(raw, folded):
    if not folded or len(folded) > MAX_USERNAME_CHARS:
        return False
    return not any(unicodedata.category(c).startswith("C") for c in raw + folded)


def canonicalise_usernames(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    rows = list(User.objects.order_by("pk").values_list("pk", "username"))
    wanted = {}
    for pk, name in rows:
        folded = _fold(name)
        if folded != name and _has_canonical_form(name, folded):
            wanted[pk] = folded
    # Names that stay, compared as the case-insensitive unique constraint compares them.
    taken = {name.lower() for pk, name in rows if pk not in wanted}
    renames = {}
    for pk, folded in wanted.items():
        candidate, n = folded, 1
        while candidate.lower() in taken:
            suffix = f"-{pk}" if n == 1 else f"-{pk}-{n}"
            candidate = folded[: MAX_USERNAME_CHARS - len(suffix)] + suffix
            n += 1
        if candidate != folded:
            # The operator running the migration must learn of it: the user signs in differently.
            logger.warning(
                "accounts.0003: user %s renamed to %r (collides with %r)", pk, candidate, folded
            )
        renames[pk] = candidate
        taken.add(candidate.lower())
    # Two steps, so no final name meets an old spelling still in place (unique constraints).
    for pk in renames:
        User.objects.filter(pk=pk).update(username=f"~canonicalising-{pk}")
    for pk, name in renames.items():
        User.objects.filter(pk=pk).update(username=name)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='RevokedTokenFamily',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('family', models.CharField(max_length=64, unique=True)),
                ('expires_at', models.DateTimeField(db_index=True)),
                ('revoked_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.RunPython(canonicalise_usernames, migrations.RunPython.noop),
    ]
