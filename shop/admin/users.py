from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from shop.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("id", "username", "email", "name", "is_staff")
    search_fields = ("username", "email", "name")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Profile", {"fields": ("name",)}))
