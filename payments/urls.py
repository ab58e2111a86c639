from payments.api import urlpatterns

__all__ = ["urlpatterns"]
