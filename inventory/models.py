from django.db import models

from shop.models import Product


class Stock(models.Model):
    """One stock row per product. available = quantity - reserved_quantity.

    Moves: reserve (reserved += q) -> consume on payment (quantity -= q, reserved -= q) or
    release on expiry/cancel (reserved -= q); a cancel after payment restocks (quantity += q).
    Every locked write bumps `version` (the force-increment of a pessimistic lock).
    """

    product = models.OneToOneField(Product, on_delete=models.CASCADE, primary_key=True, related_name="stock")
    quantity = models.BigIntegerField(default=0)
    reserved_quantity = models.BigIntegerField(default=0)
    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(quantity__gte=0), name="stock_quantity_nonnegative"),
            models.CheckConstraint(condition=models.Q(reserved_quantity__gte=0), name="stock_reserved_nonnegative"),
            models.CheckConstraint(
                condition=models.Q(reserved_quantity__lte=models.F("quantity")), name="stock_reserved_le_quantity"
            ),
        ]

    @property
    def available_quantity(self) -> int:
        return self.quantity - self.reserved_quantity


class Reservation(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "ACTIVE"
        CONSUMED = "CONSUMED"
        RELEASED = "RELEASED"

    order_id = models.BigIntegerField(db_index=True)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="reservations")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["product", "status"], name="reservation_product_status")]
        constraints = [
            models.UniqueConstraint(fields=["order_id", "product"], name="uniq_reservation_order_product"),
            models.CheckConstraint(condition=models.Q(quantity__gte=1), name="reservation_qty_positive"),
        ]
