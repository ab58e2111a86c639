"""Brute-force protection for `/admin/login/` (django-axes), and only for it.

Every `authenticate()` call passes through axes' backend, including the API's `POST /auth/token`
(simplejwt). The API has its own limit (the `auth` throttle scope, common.throttling); recording
its failures here too would cost database writes per failed API login and lock API callers out
with an HTML page. So AXES_ONLY_ADMIN_SITE keeps lockouts to the admin, and this handler keeps
the records to it as well.

Reset a lockout: `manage.py axes_reset` (all), `axes_reset_ip <address>`, `axes_reset_username <name>`.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler


class AdminLoginHandler(AxesDatabaseHandler):
    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is not None and self.is_admin_request(request):
            super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender, request, user, **kwargs):
        if request is not None and self.is_admin_request(request):
            super().user_logged_in(sender, request, user, **kwargs)

    def user_logged_out(self, sender, request, user, **kwargs):
        if request is not None and self.is_admin_request(request):
            super().user_logged_out(sender, request, user, **kwargs)
