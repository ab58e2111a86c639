"""Coupon admin. `issued_quantity` is a live counter moved only by issuing: the change form never
writes it (saving a stale copy would hand out units twice), and the total cannot go below it."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import F

from common.admin import ReadOnlyAdminMixin
from shop.models import Coupon, UserCoupon
from shop.services.coupons import coupon_sold_out_flag_clear

EDITABLE = (
    "name",
    "discount_type",
    "discount_value",
    "minimum_order_amount",
    "max_discount_amount",
    "total_quantity",
    "valid_from",
    "valid_to",
)


class CouponForm(forms.ModelForm):
    class Meta:
        model = Coupon
        fields = EDITABLE

    def clean(self):
        data = super().clean()
        if data.get("valid_from") and data.get("valid_to") and data["valid_from"] > data["valid_to"]:
            raise forms.ValidationError("valid_from must not be after valid_to.")
        if data.get("discount_type") == Coupon.DiscountType.PERCENTAGE and (data.get("discount_value") or 0) > 100:
            self.add_error("discount_value", "A percentage is at most 100.")
        if self.instance.pk and data.get("total_quantity") is not None:
            issued = Coupon.objects.filter(pk=self.instance.pk).values_list("issued_quantity", flat=True).first() or 0
            if data["total_quantity"] < issued:
                self.add_error("total_quantity", f"{issued} units are already issued.")
        return data


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin):
    form = CouponForm
    list_display = (
        "id",
        "name",
        "discount_type",
        "discount_value",
        "minimum_order_amount",
        "max_discount_amount",
        "total_quantity",
        "issued_quantity",
        "remaining_quantity",
        "valid_from",
        "valid_to",
    )
    list_filter = ("discount_type",)
    search_fields = ("=id", "name")
    readonly_fields = ("issued_quantity", "remaining_quantity", "created_at")
    ordering = ("id",)

    @admin.display(description="remaining", ordering=F("total_quantity") - F("issued_quantity"))
    def remaining_quantity(self, coupon: Coupon) -> int:
        return coupon.total_quantity - coupon.issued_quantity

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Write only the edited fields, and only while the total still covers what was issued.
        updated = Coupon.objects.filter(pk=obj.pk, issued_quantity__lte=obj.total_quantity).update(
            **{name: getattr(obj, name) for name in EDITABLE}
        )
        if not updated:
            self.message_user(request, "Not saved: more units were issued meanwhile; reload.", messages.ERROR)
        transaction.on_commit(lambda: coupon_sold_out_flag_clear(coupon_ids=[obj.pk]))


@admin.register(UserCoupon)
class UserCouponAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: coupons change state only through issuing, checkout, payment, expiry and cancel."""

    list_display = ("id", "user", "coupon", "status", "held_order_id", "used_order_id", "issued_at", "used_at")
    list_filter = ("status", "coupon")
    search_fields = ("=user__id", "user__username", "=held_order_id", "=used_order_id")
    list_select_related = ("user", "coupon")
    ordering = ("-id",)
    show_full_result_count = False  # a coupon rush leaves many rows; skip the second COUNT(*)
