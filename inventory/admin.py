"""Stock admin. Quantities move only through inventory.services (locked, guarded, version bumped):
the form never writes the row it loaded, so it cannot overwrite a concurrent reservation."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import F

from common.admin import ReadOnlyAdminMixin
from inventory.models import Reservation, Stock
from inventory.services import stock_add


class StockForm(forms.ModelForm):
    add_units = forms.IntegerField(
        required=False, min_value=1, max_value=10_000_000, help_text="Units to add to the shelf (restock)."
    )

    class Meta:
        model = Stock
        fields: list[str] = []


class RestockActionForm(ActionForm):
    """The changelist's action bar gets a "units" box, read by the `restock` action. A plain text
    field here: Django skips every action when this form is invalid, without saying why."""

    units = forms.CharField(required=False, max_length=12, label="units")


RESTOCK_UNITS = forms.IntegerField(min_value=1, max_value=10_000_000)


class AvailabilityFilter(admin.SimpleListFilter):
    title = "availability"
    parameter_name = "availability"

    def lookups(self, request, model_admin):
        return [("sold_out", "Sold out"), ("low", "Low (1-10 available)"), ("available", "Available")]

    def queryset(self, request, queryset):
        available = F("quantity") - F("reserved_quantity")
        queryset = queryset.alias(available=available)
        if self.value() == "sold_out":
            return queryset.filter(available__lte=0)
        if self.value() == "low":
            return queryset.filter(available__gte=1, available__lte=10)
        if self.value() == "available":
            return queryset.filter(available__gt=0)
        return queryset


@admin.register(Stock)
class StockAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    form = StockForm
    list_display = ("product_id", "product", "quantity", "reserved_quantity", "available", "version", "updated_at")
    list_filter = (AvailabilityFilter, "product__is_flash_sale", "product__status")
    search_fields = ("=product__id", "product__name")
    list_select_related = ("product",)
    readonly_fields = ("product", "quantity", "reserved_quantity", "version", "updated_at")
    ordering = ("product_id",)
    action_form = RestockActionForm
    actions = ["restock"]
    admin_allows = ("change",)  # a stock row is created with its product, never deleted

    @admin.action(description="Restock the selected products by the units given", permissions=["change"])
    def restock(self, request, queryset):
        try:
            units = RESTOCK_UNITS.clean(request.POST.get("units", "").strip())
        except forms.ValidationError:
            self.message_user(request, "Give the number of units to add (1..10,000,000).", messages.ERROR)
            return
        product_ids = list(queryset.values_list("product_id", flat=True))
        stock_add(product_ids=product_ids, quantity=units)  # all or nothing, rows locked in product-id order
        self.message_user(request, f"Added {units:,} units to {len(product_ids)} product(s).", messages.SUCCESS)

    @admin.display(description="available")
    def available(self, obj: Stock) -> int:
        return obj.available_quantity

    def save_model(self, request, obj, form, change):
        units = form.cleaned_data.get("add_units")
        if units:
            stock_add(product_ids=[obj.pk], quantity=units)


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: reservations are created and moved by checkout, payment, expiry and cancel."""

    list_display = ("id", "order_id", "product", "quantity", "status", "expires_at", "created_at")
    # (no date_hierarchy on a DateTimeField: it needs MariaDB's time zone tables)
    list_filter = ("status", "expires_at")
    search_fields = ("=order_id", "=product__id", "product__name")
    list_select_related = ("product",)
    ordering = ("-id",)
