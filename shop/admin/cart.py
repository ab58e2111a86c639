"""Cart admin, read-only: carts belong to their users; support staff look, they do not edit."""

from django.contrib import admin
from django.db.models import Count

from common.admin import ReadOnlyAdminMixin
from shop.models import Cart, CartItem


class CartItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CartItem
    extra = 0
    can_delete = False
    fields = ("product", "quantity", "gift_wrap", "gift_message", "created_at")
    readonly_fields = fields
    admin_allows = ("delete",)


@admin.register(Cart)
class CartAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "user", "line_count", "updated_at")
    search_fields = ("=user__id", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("user", "updated_at")
    ordering = ("-updated_at",)
    inlines = [CartItemInline]
    admin_allows = ("delete",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(line_count=Count("items"))

    @admin.display(description="lines", ordering="line_count")
    def line_count(self, cart: Cart) -> int:
        return cart.line_count
