from django.contrib import admin, messages
from django.utils.html import format_html_join

from common.errors import DomainError
from inventory.models import Reservation
from orders.models import Order, OrderItem
from orders.services import order_cancel, order_expire


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    can_delete = False
    readonly_fields = ("product", "product_name", "quantity", "unit_price", "gift_wrap", "gift_message", "line_total")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "order_number", "user", "status", "final_amount", "expires_at", "created_at")
    list_filter = ("status",)
    search_fields = ("order_number", "user__username")
    list_select_related = ("user",)
    inlines = [OrderItemInline]
    actions = ["expire_selected", "cancel_selected"]
    readonly_fields = [f.name for f in Order._meta.fields] + ["payment_summary", "reservations"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="payment")
    def payment_summary(self, order):
        payment = getattr(order, "payment", None)
        return f"{payment.payment_number} {payment.status} {payment.amount:,} KRW" if payment else "-"

    @admin.display(description="stock reservations")
    def reservations(self, order):
        rows = Reservation.objects.filter(order_id=order.pk).order_by("product_id")
        return (
            format_html_join(
                "", "<div>product {} × {} — {}</div>", ((r.product_id, r.quantity, r.status) for r in rows)
            )
            or "-"
        )

    @admin.action(description="Expire selected unpaid orders whose hold has passed")
    def expire_selected(self, request, queryset):
        done = sum(order_expire(order_id=pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{done} order(s) expired.")

    @admin.action(description="Cancel selected orders (refunds paid ones)")
    def cancel_selected(self, request, queryset):
        done = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                order_cancel(order_id=pk, user_id=None, reason="cancelled by operator")
                done += 1
            except DomainError as exc:
                self.message_user(request, f"order {pk}: {exc.message}", level=messages.WARNING)
        self.message_user(request, f"{done} order(s) cancelled.")


from orders import admin_queue  # noqa: E402,F401 - registers the flash-sale queue controls
