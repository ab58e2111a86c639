from django.urls import path, re_path

from shop.api import cart, catalog, coupons, users, wallet

urlpatterns = [
    path("auth/token", users.TokenView.as_view(), name="auth-token"),
    path("auth/token/refresh", users.RefreshView.as_view(), name="auth-token-refresh"),
    path("users", users.UserCreateView.as_view(), name="user-create"),
    path("users/me", users.MeView.as_view(), name="user-me"),
    # the fixed product paths first, before products/<id>
    path("products", catalog.ProductListView.as_view(), name="product-list"),
    path("products/popular", catalog.ProductPopularView.as_view(), name="product-popular"),
    re_path(
        r"^products/ranking/(?P<period>daily|weekly|total)$",
        catalog.ProductRankingView.as_view(),
        name="product-ranking",
    ),
    path("products/<int:product_id>", catalog.ProductDetailView.as_view(), name="product-detail"),
    path("products/<int:product_id>/ranking", catalog.ProductRankView.as_view(), name="product-rank"),
    path("points/<int:user_id>", wallet.BalanceView.as_view(), name="points-balance"),
    path("points/<int:user_id>/charge", wallet.ChargeView.as_view(), name="points-charge"),
    path("points/<int:user_id>/histories", wallet.HistoryView.as_view(), name="points-histories"),
    path("coupons", coupons.CouponListView.as_view(), name="coupons"),
    path("coupons/issue", coupons.CouponIssueView.as_view(), name="coupons-issue"),
    path("coupons/users/<int:user_id>", coupons.UserCouponListView.as_view(), name="coupons-of-user"),
    path(
        "coupons/users/<int:user_id>/available",
        coupons.UsableUserCouponListView.as_view(),
        name="coupons-of-user-usable",
    ),
    path("cart", cart.CartDetailView.as_view(), name="cart"),
    path("cart/items", cart.CartItemSetView.as_view(), name="cart-items"),
    path("cart/items/<int:item_id>", cart.CartItemView.as_view(), name="cart-item"),
]
