from shop.admin import cart, catalog, coupons, users, wallet  # noqa: F401 - registers the pages
