"""Operator controls for the flash-sale queue: depth, pause/resume, sold-out flag; queued requests."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from common.admin import ReadOnlyAdminMixin
from common.errors import DomainError
from orders.models import FlashSaleProduct, QueueRequest
from orders.queue.controls import queue_close, queue_flags, queue_pause, queue_resume, queue_wake


@admin.register(FlashSaleProduct)
class FlashSaleQueueAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "name", "price", "available", "queue_depth", "paused", "sold_out_flag", "last_position")
    search_fields = ("name",)
    actions = ["pause", "resume", "wake", "mark_sold_out", "clear_sold_out"]
    fields = ("name", "price", "status")
    readonly_fields = fields
    admin_allows = ("change",)

    def get_queryset(self, request):
        queued = QueueRequest.objects.filter(product=OuterRef("pk"), status=QueueRequest.Status.QUEUED)
        return (
            super()
            .get_queryset(request)
            .filter(is_flash_sale=True)
            .annotate(
                available_qty=F("stock__quantity") - F("stock__reserved_quantity"),
                queued=Subquery(queued.values("product").annotate(n=Count("id")).values("n")[:1]),
                is_paused=Coalesce(F("flash_sale_control__paused"), Value(False)),
            )
        )

    @admin.display(description="available", ordering="available_qty")
    def available(self, product):
        return product.available_qty

    @admin.display(description="queued", ordering="queued")
    def queue_depth(self, product):
        return product.queued or 0

    @admin.display(description="paused", boolean=True)
    def paused(self, product):
        return product.is_paused

    @admin.display(description="sold-out flag")
    def sold_out_flag(self, product):
        state = queue_flags(product.pk)
        return "operator" if state.closed_flag else "auto (expires)" if state.sold_out_flag else "-"

    @admin.display(description="last position")
    def last_position(self, product):
        return queue_flags(product.pk).last_position

    def _each(self, request, queryset, action, done: str) -> None:
        count = 0
        for pk in queryset.values_list("pk", flat=True):
            try:
                action(pk)
                count += 1
            except DomainError as exc:
                self.message_user(request, f"product {pk}: {exc.message}", level=messages.ERROR)
        self.message_user(request, f"{count} product(s) {done}.")

    @admin.action(description="Pause processing (requests stay queued)")
    def pause(self, request, queryset):
        self._each(request, queryset, lambda pk: queue_pause(product_id=pk), "paused")

    @admin.action(description="Resume processing")
    def resume(self, request, queryset):
        self._each(request, queryset, lambda pk: queue_resume(product_id=pk), "resumed")

    @admin.action(description="Process waiting requests now (wake the consumer)")
    def wake(self, request, queryset):
        self._each(request, queryset, lambda pk: queue_wake(product_id=pk), "woken")

    @admin.action(description="Mark sold out (refuse new queue requests)")
    def mark_sold_out(self, request, queryset):
        self._each(request, queryset, lambda pk: queue_close(product_id=pk, closed=True), "marked sold out")

    @admin.action(description="Clear sold-out flags (admit requests again)")
    def clear_sold_out(self, request, queryset):
        self._each(request, queryset, lambda pk: queue_close(product_id=pk, closed=False), "reopened")


@admin.register(QueueRequest)
class QueueRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "request_id",
        "user",
        "kind",
        "product",
        "quantity",
        "status",
        "mode",
        "queue_position",
        "order",
        "error_code",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "kind", "mode", "error_code")
    search_fields = ("=request_id", "user__username")
    list_select_related = ("user", "product", "order")
    readonly_fields = [f.name for f in QueueRequest._meta.fields]
    admin_allows = ("change",)
