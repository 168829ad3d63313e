"""Secrets at rest (SPEC §4): webhook signing secrets and TOTP secrets are stored encrypted
under FIELD_ENCRYPTION_KEYS; a dump of the database holds neither in clear; rotate_field_keys
re-encrypts under the first key; existing webhook secrets are encrypted by a data migration."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts import mfa
from accounts.models import TotpDevice, User
from integrations.models import WebhookEndpoint
from integrations.services import webhook_endpoint_create
from tests.factories import UserFactory

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


def _secrets_written(settings: Any) -> list[str]:
    """A webhook endpoint and a TOTP enrolment through the services; their secrets in every
    form they could leak in (the text, the webhook key's base64 body, its raw bytes in hex)."""
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    owner = User.objects.get(username="root")
    _endpoint, webhook_secret = webhook_endpoint_create(
        actor=owner, url="http://127.0.0.1:9/hook", events=["message.created"]
    )
    totp_secret = mfa.totp_enrolment_start(user=owner).secret
    body = webhook_secret.removeprefix("whsec_")
    return [
        webhook_secret,
        body,
        base64.b64decode(body).hex(),
        totp_secret,
        totp_secret.lower(),
        base64.b32decode(totp_secret).hex(),
    ]


def _database_dump() -> str:
    """Everything the database holds, as text.

    SQLite: the database file and its write-ahead log, byte for byte (after a checkpoint).
    PostgreSQL: every row of every table rendered as text (`row::text`: every column, bytea as
    hex), read on the test's own connection so uncommitted test data is included."""
    if connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        raw = sqlite3.connect(path)
        try:
            raw.execute("PRAGMA wal_checkpoint(FULL)")
        finally:
            raw.close()
        data = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        return data.decode("latin-1")
    rows: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT t::text FROM {quoted} t")  # noqa: S608 - names from the catalogue
            rows.extend(row[0] for row in cursor.fetchall())
    return "\n".join(rows)


@pytest.mark.django_db(transaction=True)
def test_a_database_dump_holds_no_webhook_or_totp_secret_in_clear(settings: Any) -> None:
    UserFactory(username="root", is_staff=True, is_superuser=True)
    forms = _secrets_written(settings)
    dump = _database_dump()
    # The dump does hold the data: the rows beside the secrets are there in clear.
    assert "root" in dump
    assert "http://127.0.0.1:9/hook" in dump
    leaked = [form for form in forms if form in dump]
    assert leaked == []
    # And the application still reads them.
    assert WebhookEndpoint.objects.get().secret == forms[0]
    assert TotpDevice.objects.get().secret == forms[3]


@pytest.mark.django_db
def test_the_columns_hold_fernet_tokens(settings: Any) -> None:
    UserFactory(username="root")
    forms = _secrets_written(settings)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM integrations_webhookendpoint")
        (webhook_column,) = cursor.fetchone()
        cursor.execute("SELECT secret FROM accounts_totpdevice")
        (totp_column,) = cursor.fetchone()
    cipher = Fernet(settings.FIELD_ENCRYPTION_KEYS[0])
    assert cipher.decrypt(webhook_column.encode()).decode() == forms[0]
    assert cipher.decrypt(totp_column.encode()).decode() == forms[3]


@pytest.mark.django_db
def test_rotate_field_keys_reencrypts_under_the_first_key(settings: Any, capsys: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    UserFactory(username="root")
    forms = _secrets_written(settings)
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]  # B encrypts from now on, A still decrypts
    assert WebhookEndpoint.objects.get().secret == forms[0]
    call_command("rotate_field_keys")
    assert "Re-encrypted 2 value(s)" in capsys.readouterr().out
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]  # A retired: everything still opens
    assert WebhookEndpoint.objects.get().secret == forms[0]
    assert TotpDevice.objects.get().secret == forms[3]
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM integrations_webhookendpoint")
        (column,) = cursor.fetchone()
    assert Fernet(KEY_B).decrypt(column.encode()).decode() == forms[0]


@pytest.mark.django_db
def test_a_value_no_configured_key_opens_is_a_clear_error(settings: Any) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    UserFactory(username="root")
    _secrets_written(settings)
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]  # A dropped before rotating
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS"):
        WebhookEndpoint.objects.get()


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_encrypts_existing_webhook_secrets() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("integrations", "0001_initial")])
    old_apps = executor.loader.project_state([("integrations", "0001_initial")]).apps
    plaintext = "whsec_" + base64.b64encode(b"k" * 32).decode()
    old_apps.get_model("integrations", "WebhookEndpoint").objects.create(
        url="https://receiver.example.com/hook", events=["message.created"], secret=plaintext
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM integrations_webhookendpoint")
        (column,) = cursor.fetchone()
    assert plaintext not in column
    assert WebhookEndpoint.objects.get().secret == plaintext


@pytest.mark.django_db
def test_a_tampered_encrypted_value_is_refused(settings: Any) -> None:
    """Authenticated encryption: a changed byte in the column is detected, never decrypted
    into something else."""
    UserFactory(username="root")
    _secrets_written(settings)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, secret FROM integrations_webhookendpoint")
        pk, column = cursor.fetchone()
        raw = bytearray(base64.urlsafe_b64decode(column))
        raw[40] ^= 1  # a ciphertext byte
        cursor.execute(
            "UPDATE integrations_webhookendpoint SET secret = %s WHERE id = %s",
            [base64.urlsafe_b64encode(bytes(raw)).decode(), pk],
        )
    with pytest.raises(ImproperlyConfigured):
        WebhookEndpoint.objects.get()
