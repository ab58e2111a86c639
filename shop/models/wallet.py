from django.conf import settings
from django.db import models

MAX_BALANCE = 10_000_000


class PointWallet(models.Model):
    """One balance per user; every change has a `PointHistory` row in the same transaction."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True)
    balance = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance__gte=0, balance__lte=MAX_BALANCE), name="wallet_balance_range"
            )
        ]


class PointHistory(models.Model):
    class Type(models.TextChoices):
        CHARGE = "CHARGE"
        USE = "USE"
        REFUND = "REFUND"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="point_history")
    amount = models.BigIntegerField(help_text="signed: + charge/refund, - use")
    type = models.CharField(max_length=8, choices=Type.choices)
    balance_after = models.BigIntegerField()
    order_id = models.BigIntegerField(null=True, blank=True)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "point histories"
        indexes = [models.Index(fields=["user", "-id"], name="point_history_user_id")]
        constraints = [
            # At most one debit and one refund per order (NULL order ids, i.e. charges, repeat freely).
            models.UniqueConstraint(fields=["order_id", "type"], name="uniq_point_history_order_type"),
        ]
