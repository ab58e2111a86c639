from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "ACTIVE"
        INACTIVE = "INACTIVE"

    name = models.CharField(max_length=200, db_index=True)
    description = models.TextField(blank=True)
    price = models.PositiveBigIntegerField(help_text="KRW")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    is_flash_sale = models.BooleanField(default=False, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["category", "id"], name="product_category_id")]
        constraints = [models.CheckConstraint(condition=models.Q(price__gt=0), name="product_price_positive")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"


class SalesDaily(models.Model):
    """Quantity sold per product per day (paid orders), written by the outbox consumer."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="sales")
    day = models.DateField()
    quantity = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "daily sales"
        constraints = [models.UniqueConstraint(fields=["product", "day"], name="uniq_sales_product_day")]
        indexes = [models.Index(fields=["day", "product"], name="sales_day_product")]
