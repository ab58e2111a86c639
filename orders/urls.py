from orders.api import urlpatterns

__all__ = ["urlpatterns"]
