"""The `Operators` group with exactly what operators need in the admin (docs/escalations.md).

Operators view escalations, conversations and messages, and change escalations — which the
admin only allows through the services (assign, reply, resolve). Users, API keys and security
events are not granted here: accounts/admin.py keeps them superuser-only whatever a group holds.

The permission list is frozen here, as migrations should be; escalations/permissions.py holds
the live copy and tests/escalations/test_admin_permissions.py keeps the two equal.
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_NAME = "Operators"
PERMISSIONS = (
    ("escalations", "view_escalation"),
    ("escalations", "change_escalation"),
    ("messaging", "view_conversation"),
    ("messaging", "view_message"),
)


def create_operators_group(apps, schema_editor):
    db_alias = schema_editor.connection.alias if schema_editor is not None else "default"
    # On a fresh database permissions are only created after all migrations ran (post_migrate);
    # create the ones this group needs now.
    for app_label in {label for label, _ in PERMISSIONS}:
        create_permissions(
            global_apps.get_app_config(app_label), verbosity=0, apps=apps, using=db_alias
        )
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(db_alias).get_or_create(name=GROUP_NAME)
    permissions = []
    for app_label, codename in PERMISSIONS:
        permissions.append(
            Permission.objects.using(db_alias).get(
                content_type__app_label=app_label, codename=codename
            )
        )
    # Exactly these: anything granted by hand before is taken away.
    group.permissions.set(permissions)


def remove_operators_group(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name=GROUP_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("escalations", "0001_initial"),
        ("messaging", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_operators_group, remove_operators_group),
    ]
