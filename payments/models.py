from django.conf import settings
from django.db import models

from orders.models import Order


class Payment(models.Model):
    class Method(models.TextChoices):
        BALANCE = "BALANCE"

    class Status(models.TextChoices):
        COMPLETED = "COMPLETED"
        REFUNDED = "REFUNDED"

    payment_number = models.CharField(max_length=32, unique=True)
    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="payment")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments")
    amount = models.BigIntegerField()
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.BALANCE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETED)
    created_at = models.DateTimeField(auto_now_add=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-id"], name="payment_user_id")]
