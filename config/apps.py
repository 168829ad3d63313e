from django.contrib.admin.apps import AdminConfig


class ParleyAdminConfig(AdminConfig):
    """Django's admin, served by Parley's admin site (rate-limited login, statistics page)."""

    default_site = "config.admin_site.ParleyAdminSite"
