from django.contrib import admin

from payments.models import Payment


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("id", "payment_number", "order", "user", "amount", "method", "status", "created_at")
    list_filter = ("status", "method")
    search_fields = ("payment_number", "order__order_number", "user__username")
    list_select_related = ("order", "user")
    readonly_fields = [f.name for f in Payment._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
