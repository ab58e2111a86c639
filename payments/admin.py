from django.contrib import admin

from common.admin import ReadOnlyAdminMixin
from payments.models import Payment


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "payment_number", "order", "user", "amount", "method", "status", "created_at")
    list_filter = ("status", "method")
    search_fields = ("payment_number", "order__order_number", "user__username")
    list_select_related = ("order", "user")
    readonly_fields = [f.name for f in Payment._meta.fields]
    admin_allows = ("change",)
