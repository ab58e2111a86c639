from orders.api import urlpatterns as checkout_urlpatterns
from orders.api_queue import urlpatterns as queue_urlpatterns

urlpatterns = [*checkout_urlpatterns, *queue_urlpatterns]
