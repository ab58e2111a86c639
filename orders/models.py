from django.conf import settings
from django.db import models

from shop.models import Product, UserCoupon


class OrderStatus(models.TextChoices):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    CONFIRMED = "CONFIRMED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class Order(models.Model):
    Status = OrderStatus

    order_number = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING_PAYMENT)
    total_amount = models.BigIntegerField()
    discount_amount = models.BigIntegerField(default=0)
    final_amount = models.BigIntegerField()
    user_coupon = models.ForeignKey(UserCoupon, null=True, blank=True, on_delete=models.PROTECT)
    delivery_address = models.CharField(max_length=500, blank=True)
    expires_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-id"], name="order_user_id"),
            models.Index(fields=["status", "expires_at"], name="order_status_expires"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(discount_amount__gte=0, final_amount__gte=0, total_amount__gte=0),
                name="order_amounts_nonnegative",
            ),
            models.CheckConstraint(
                condition=models.Q(final_amount=models.F("total_amount") - models.F("discount_amount")),
                name="order_final_is_total_minus_discount",
            ),
        ]

    def __str__(self) -> str:
        return self.order_number


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    product_name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.BigIntegerField()
    gift_wrap = models.BooleanField(default=False)
    gift_message = models.CharField(max_length=500, blank=True)
    line_total = models.BigIntegerField()
    cart_item_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["order", "product"], name="uniq_order_item_product")]
