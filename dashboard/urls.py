from django.contrib import admin
from django.urls import path

from dashboard.views import dashboard_control, dashboard_data, dashboard_page

# admin_view: staff only (others go to the admin login), never cached, CSRF-protected.
urlpatterns = [
    path("", admin.site.admin_view(dashboard_page), name="sale-dashboard"),
    path("data", admin.site.admin_view(dashboard_data), name="sale-dashboard-data"),
    path("control", admin.site.admin_view(dashboard_control), name="sale-dashboard-control"),
]
