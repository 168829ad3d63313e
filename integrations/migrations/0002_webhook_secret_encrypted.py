"""Webhook signing secrets move from plaintext to encrypted at rest (core.fieldcrypt).

The new column is added beside the old one, every existing secret is copied into it (the
field encrypts on save), the plaintext column is dropped and the new one takes its name.
Reversing decrypts them back.
"""

from django.db import migrations, models

import core.fieldcrypt


def encrypt_existing(apps, schema_editor):
    endpoint_model = apps.get_model("integrations", "WebhookEndpoint")
    for endpoint in endpoint_model.objects.only("pk", "secret").iterator():
        endpoint_model.objects.filter(pk=endpoint.pk).update(secret_encrypted=endpoint.secret)


def decrypt_back(apps, schema_editor):
    endpoint_model = apps.get_model("integrations", "WebhookEndpoint")
    for endpoint in endpoint_model.objects.only("pk", "secret_encrypted").iterator():
        endpoint_model.objects.filter(pk=endpoint.pk).update(secret=endpoint.secret_encrypted)


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="secret_encrypted",
            field=core.fieldcrypt.EncryptedTextField(editable=False, null=True),
        ),
        migrations.RunPython(encrypt_existing, decrypt_back),
        migrations.RemoveField(model_name="webhookendpoint", name="secret"),
        migrations.RenameField(
            model_name="webhookendpoint", old_name="secret_encrypted", new_name="secret"
        ),
        migrations.AlterField(
            model_name="webhookendpoint",
            name="secret",
            field=core.fieldcrypt.EncryptedTextField(editable=False),
        ),
    ]
