from django.conf import settings
from django.db import models


class Coupon(models.Model):
    class DiscountType(models.TextChoices):
        FIXED = "FIXED"
        PERCENTAGE = "PERCENTAGE"

    name = models.CharField(max_length=100)
    discount_type = models.CharField(max_length=16, choices=DiscountType.choices)
    discount_value = models.PositiveBigIntegerField(help_text="KRW for FIXED, percent for PERCENTAGE")
    minimum_order_amount = models.PositiveBigIntegerField(default=0)
    max_discount_amount = models.PositiveBigIntegerField(null=True, blank=True)
    total_quantity = models.PositiveIntegerField()
    issued_quantity = models.PositiveIntegerField(default=0)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(issued_quantity__lte=models.F("total_quantity")), name="coupon_not_overissued"
            ),
            models.CheckConstraint(
                condition=~models.Q(discount_type="PERCENTAGE") | models.Q(discount_value__lte=100),
                name="coupon_percentage_max_100",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"


class UserCoupon(models.Model):
    class Status(models.TextChoices):
        ISSUED = "ISSUED"
        USED = "USED"
        EXPIRED = "EXPIRED"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="coupons")
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="user_coupons")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ISSUED)
    issued_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)
    used_order_id = models.BigIntegerField(null=True, blank=True)
    held_order_id = models.BigIntegerField(
        null=True, blank=True, help_text="the live (unpaid) order this coupon backs, if any"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "coupon"], name="uniq_user_coupon")]
        indexes = [  # release/use/restore find the coupon by its order inside order transactions
            models.Index(fields=["held_order_id"], name="usercoupon_held_order"),
            models.Index(fields=["used_order_id"], name="usercoupon_used_order"),
        ]
