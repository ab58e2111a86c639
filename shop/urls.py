from django.urls import path

from shop.api import cart, catalog, coupons, users, wallet

urlpatterns = [
    path("auth/token", users.TokenView.as_view(), name="auth-token"),
    path("auth/token/refresh", users.RefreshView.as_view(), name="auth-token-refresh"),
    path("users", users.UserCreateView.as_view(), name="user-create"),
    path("users/me", users.MeView.as_view(), name="user-me"),
    *catalog.urlpatterns,
    *wallet.urlpatterns,
    *coupons.urlpatterns,
    *cart.urlpatterns,
]
