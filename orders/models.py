from __future__ import annotations

from django.conf import settings
from django.db import models

from shop.models import Product, UserCoupon
from shop.pricing import MAX_QUEUE_QUANTITY


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
            models.Index(fields=["user", "status"], name="order_user_status"),  # per-user limits
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

    @property
    def lines(self) -> list[OrderItem]:
        """Its items: those the checkout that created it holds (`created_items`: no query), else read
        (prefetched by `orders.selectors`)."""
        created = self.__dict__.get("created_items")
        return created if created is not None else list(self.items.all())


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
    # True while this line's cart line backs a live order (unpaid or paid), NULL otherwise (no cart line,
    # or the order expired / was cancelled): the unique key (cart_item_id, cart_item_live) lets a cart
    # line back one live order at a time (repeated NULLs are allowed, as in QueueRequest.live).
    cart_item_live = models.BooleanField(null=True, default=None, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "product"], name="uniq_order_item_product"),
            models.UniqueConstraint(fields=["cart_item_id", "cart_item_live"], name="uniq_order_item_live_cart_line"),
        ]


# --- Flash-sale queue (Flow 3: `POST /checkout/queue`, consumer `checkout`) --------------------


class QueueRequestStatus(models.TextChoices):
    QUEUED = "QUEUED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class QueueRequestKind(models.TextChoices):
    PRODUCT = "PRODUCT"  # `POST /checkout/queue`: units of one flash-sale product, allocated in batches
    ORDER = "ORDER"  # `POST /checkout`: a whole checkout (direct lines or cart lines), served one by one


class QueueRequestMode(models.TextChoices):
    QUEUED = "QUEUED"  # answered (or to be answered) by the consumer
    SYNC_FALLBACK = "SYNC_FALLBACK"  # the broker did not acknowledge: served by the web process itself


class QueueRequest(models.Model):
    """One queued checkout. The row is the claim; the Kafka message only carries its id.

    `live` is True while the request is QUEUED and NULL once it is done, so the unique key
    (user, product, live) allows one live request per user per product and any number of finished
    ones (MariaDB/MySQL unique keys admit repeated NULLs). See orders/queue/ for the protocol.
    ORDER requests have no product (their lines are in `lines` or `cart_item_ids`), so the rule of
    one live request per product does not apply to them; the per-user limits (orders/limits.py) do.

    `idempotency_key` is the client's Idempotency-Key, stored in the INSERT that creates the request:
    a retry that takes over the key of a crashed attempt finds this request instead of queueing a
    second one (unique per user; NULL without the header).
    """

    Status = QueueRequestStatus
    Kind = QueueRequestKind
    Mode = QueueRequestMode

    request_id = models.UUIDField(unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="queue_requests")
    kind = models.CharField(max_length=8, choices=QueueRequestKind.choices, default=QueueRequestKind.PRODUCT)
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="queue_requests")
    quantity = models.PositiveSmallIntegerField(help_text="units asked for (ORDER: over all lines)")
    # ORDER only: exactly one of `lines` ([{productId, quantity, giftWrap, giftMessage}]) and `cart_item_ids`
    lines = models.JSONField(null=True, blank=True)
    cart_item_ids = models.JSONField(null=True, blank=True)
    user_coupon_id = models.BigIntegerField(null=True, blank=True)
    delivery_address = models.CharField(max_length=500, blank=True)
    partition_key = models.CharField(max_length=40, blank=True, help_text="the Kafka message key")
    status = models.CharField(max_length=16, choices=QueueRequestStatus.choices, default=QueueRequestStatus.QUEUED)
    mode = models.CharField(max_length=16, choices=QueueRequestMode.choices, default=QueueRequestMode.QUEUED)
    live = models.BooleanField(null=True, default=True, editable=False)
    queue_position = models.PositiveBigIntegerField()
    order = models.OneToOneField(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="queue_request")
    error_code = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Binary collation: keys are compared byte for byte, as in common.IdempotencyKey.
    idempotency_key = models.CharField(
        max_length=255, null=True, blank=True, editable=False, db_collation="utf8mb4_bin"
    )

    class Meta:
        indexes = [
            models.Index(fields=["product", "status", "id"], name="queue_product_status_id"),
            models.Index(fields=["partition_key", "status", "id"], name="queue_key_status_id"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["user", "product", "live"], name="uniq_queue_live_request"),
            models.UniqueConstraint(fields=["user", "idempotency_key"], name="uniq_queue_idempotency_key"),
            models.CheckConstraint(
                condition=(
                    models.Q(status=QueueRequestStatus.QUEUED, live=True)
                    | (~models.Q(status=QueueRequestStatus.QUEUED) & models.Q(live__isnull=True))
                ),
                name="queue_live_iff_queued",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(
                        kind=QueueRequestKind.PRODUCT,
                        product__isnull=False,
                        quantity__gte=1,
                        quantity__lte=MAX_QUEUE_QUANTITY,
                    )
                    | models.Q(kind=QueueRequestKind.ORDER, product__isnull=True, quantity__gte=1)
                ),
                name="queue_kind_product_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.status}"

    @property
    def counter(self) -> int | str:
        """The name of its Redis position counter (orders/queue/keys.py): the product of a PRODUCT
        request, the partition key of an ORDER request."""
        return self.product_id if self.kind == QueueRequestKind.PRODUCT else self.partition_key


class FlashSaleControl(models.Model):
    """Operator switch for one product's queue: while paused, the consumer leaves its requests QUEUED."""

    product = models.OneToOneField(
        Product, on_delete=models.CASCADE, primary_key=True, related_name="flash_sale_control"
    )
    paused = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)


class FlashSaleProduct(Product):
    """The admin's view of flash-sale products with their queue controls (orders/admin_queue.py)."""

    class Meta:
        proxy = True
        verbose_name = "flash-sale queue"
        verbose_name_plural = "flash-sale queues"
