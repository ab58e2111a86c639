from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Flash-sale dashboard"

    def ready(self) -> None:
        from dashboard.prometheus import register_collector

        register_collector()
