"""Orders in the admin: read-only, plus the operator's force-expire and cancel, which go through the
same guarded services (locks, state machine, stock, coupons, refunds, outbox) as the API and Celery."""

from collections.abc import Callable

from django.contrib import admin, messages
from django.utils.html import format_html_join

from common.admin import ReadOnlyAdminMixin
from common.errors import DomainError
from inventory.models import Reservation
from orders.models import Order, OrderItem
from orders.services import order_cancel, order_force_expire

OPERATOR_CANCEL = "cancelled by operator"


def _refusal(pk: int, exc: DomainError) -> str:
    """A refusal in words: `order 17 is PAID` when it names the order's status, else its message."""
    status = exc.data.get("status") if isinstance(exc.data, dict) else None
    return f"order {pk} is {status}" if status else f"order {pk}: {exc.message}"


class OrderItemInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = OrderItem
    extra = 0
    can_delete = False
    readonly_fields = ("product", "product_name", "quantity", "unit_price", "gift_wrap", "gift_message", "line_total")
    admin_allows = ("change", "delete")


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "order_number", "user", "status", "final_amount", "expires_at", "created_at")
    list_filter = ("status",)
    search_fields = ("order_number", "user__username")
    list_select_related = ("user",)
    inlines = [OrderItemInline]
    actions = ["force_expire_selected", "cancel_selected"]
    readonly_fields = [f.name for f in Order._meta.fields] + ["payment_summary", "reservations"]
    admin_allows = ("change",)  # the force-expire and cancel actions

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

    @admin.action(description="Force-expire selected orders (unpaid ones, whatever their hold)", permissions=["change"])
    def force_expire_selected(self, request, queryset):
        self._each_order(request, queryset, "expired", lambda pk: order_force_expire(order_id=pk))

    @admin.action(description="Cancel selected orders (refunds paid ones)", permissions=["change"])
    def cancel_selected(self, request, queryset):
        self._each_order(
            request, queryset, "cancelled", lambda pk: order_cancel(order_id=pk, user_id=None, reason=OPERATOR_CANCEL)
        )

    def _each_order(self, request, queryset, verb: str, operation: Callable[[int], object]) -> None:
        """Run a guarded domain service on each selected order, each in its own transaction (one refusal
        undoes only itself), and report every order the state machine refused, with its status."""
        done, skipped = 0, []
        for pk in sorted(queryset.values_list("pk", flat=True)):
            try:
                operation(pk)
                done += 1
            except DomainError as exc:
                skipped.append(_refusal(pk, exc))
        report = f"{done} {verb}" + (f", {len(skipped)} skipped: {'; '.join(skipped)}" if skipped else "")
        self.message_user(request, report + ".", messages.WARNING if skipped else messages.SUCCESS)


from orders import admin_queue  # noqa: E402,F401 - registers the flash-sale queue controls
