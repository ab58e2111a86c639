"""Wallet admin, read-only: balances change only through the wallet services (each with its ledger row)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from common.admin import ReadOnlyAdminMixin
from shop.models import PointHistory, PointWallet

LEDGER_ROWS = 100


@admin.register(PointWallet)
class PointWalletAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "balance", "updated_at")
    search_fields = ("=user__id", "user__username")
    list_select_related = ("user",)
    ordering = ("-updated_at",)
    fields = ("user", "balance", "updated_at", "ledger")
    readonly_fields = fields

    @admin.display(description=f"ledger (latest {LEDGER_ROWS})")
    def ledger(self, wallet: PointWallet):
        """The ledger shown inline (PointHistory points at the user, not the wallet, so no real inline)."""
        rows = PointHistory.objects.filter(user_id=wallet.user_id).order_by("-id")[:LEDGER_ROWS]
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td style='text-align:right'>{}</td>"
            "<td style='text-align:right'>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (r.pk, r.created_at, r.type, f"{r.amount:,}", f"{r.balance_after:,}", r.order_id or "", r.description)
                for r in rows
            ),
        )
        everything = reverse("admin:shop_pointhistory_changelist") + f"?user__id__exact={wallet.user_id}"
        return format_html(
            "<table><tr><th>id</th><th>at</th><th>type</th><th>amount</th><th>balance after</th><th>order</th>"
            "<th>description</th></tr>{}</table><p><a href='{}'>all entries</a></p>",
            body,
            everything,
        )


@admin.register(PointHistory)
class PointHistoryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "user", "type", "amount", "balance_after", "order_id", "description", "created_at")
    list_filter = ("type",)
    search_fields = ("=user__id", "user__username", "=order_id")
    list_select_related = ("user",)
    ordering = ("-id",)
    show_full_result_count = False
