from django.urls import path

from orders import api, api_queue

urlpatterns = [
    path("checkout/initiate", api.CheckoutInitiateView.as_view(), name="checkout-initiate"),
    path("checkout/<int:order_id>/cancel", api.CheckoutCancelView.as_view(), name="checkout-cancel"),
    path("orders", api.OrdersView.as_view(), name="orders"),
    path("orders/<int:order_id>", api.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<int:order_id>/cancel", api.OrderCancelView.as_view(), name="order-cancel"),
    # every checkout through the queue (the old service's final contract)
    path("checkout", api_queue.CheckoutView.as_view(), name="checkout"),
    path("checkout/status/<uuid:request_id>", api_queue.CheckoutStatusView.as_view(), name="checkout-status"),
    # the flash-sale queue
    path("checkout/queue", api_queue.CheckoutQueueView.as_view(), name="checkout-queue"),
    path("checkout/queue/<uuid:request_id>", api_queue.CheckoutQueueStatusView.as_view(), name="checkout-queue-status"),
    path("sse/token", api_queue.SseTokenView.as_view(), name="sse-token"),
]
