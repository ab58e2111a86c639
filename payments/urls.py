from django.urls import path

from payments import api

urlpatterns = [
    path("payments/process", api.PaymentProcessView.as_view(), name="payment-process"),
    path("payments/<int:payment_id>", api.PaymentDetailView.as_view(), name="payment-detail"),
    path("payments/users/<int:user_id>", api.UserPaymentsView.as_view(), name="payments-of-user"),
]
