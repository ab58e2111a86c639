"""Catalog admin. Every product or category change goes through shop.services.catalog, so the
caches and rankings follow it after commit. Products are deactivated, not deleted (orders and
reservations keep pointing at them); daily sales are written by the outbox consumer only."""

from django.contrib import admin, messages
from django.db.models import Count

from common.admin import ReadOnlyAdminMixin
from shop.models import Category, Product, SalesDaily
from shop.services.catalog import catalog_changed, product_saved, products_set_status


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "product_count")
    search_fields = ("name",)
    ordering = ("id",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(product_count=Count("products"))

    @admin.display(description="products", ordering="product_count")
    def product_count(self, obj: Category) -> int:
        return obj.product_count

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        catalog_changed()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        catalog_changed()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        catalog_changed()


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "category", "price", "status", "is_flash_sale", "updated_at")
    list_filter = ("status", "is_flash_sale", "category")
    search_fields = ("=id", "name", "description")
    list_select_related = ("category",)
    readonly_fields = ("created_at", "updated_at")
    ordering = ("-id",)
    actions = ("activate", "deactivate")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deactivate instead

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        product_saved(product=obj, created=not change)

    @admin.action(description="Activate selected products")
    def activate(self, request, queryset):
        changed = products_set_status(product_ids=queryset.values_list("pk", flat=True), status=Product.Status.ACTIVE)
        self.message_user(request, f"{changed} product(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected products (hidden from the storefront)")
    def deactivate(self, request, queryset):
        changed = products_set_status(product_ids=queryset.values_list("pk", flat=True), status=Product.Status.INACTIVE)
        self.message_user(request, f"{changed} product(s) deactivated.", messages.SUCCESS)


@admin.register(SalesDaily)
class SalesDailyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the rankings in Redis are maintained from these rows (see `manage.py rebuild_rankings`)."""

    list_display = ("day", "product", "quantity")
    list_filter = ("day",)
    search_fields = ("=product__id", "product__name")
    date_hierarchy = "day"
    list_select_related = ("product",)
    ordering = ("-day", "-quantity")
