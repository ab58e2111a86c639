"""Catalog endpoints: exact payloads, cursor paging, validation, popular list and rankings."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from shop.models import Product, SalesDaily
from shop.services.catalog import product_create, products_set_status
from shop.tests.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/products"


def payload(p: Product) -> dict:
    return {"id": p.pk, "name": p.name, "description": p.description, "price": p.price, "categoryId": p.category_id}


def data(response, status=200):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is True
    return body["data"]


def sold(product: Product, quantity: int, days_ago: int = 0) -> None:
    SalesDaily.objects.create(product=product, day=timezone.localdate() - timedelta(days=days_ago), quantity=quantity)


# --- list ----------------------------------------------------------------------------------


def test_cursor_pages_walk_the_catalog_by_id(api):
    products = ProductFactory.create_batch(5)
    first = data(api.get(URL, {"size": 2}))
    assert first == {"contents": [payload(p) for p in products[:2]], "lastId": products[1].pk}
    second = data(api.get(URL, {"size": 2, "lastId": first["lastId"]}))
    assert second == {"contents": [payload(p) for p in products[2:4]], "lastId": products[3].pk}
    last = data(api.get(URL, {"size": 2, "lastId": second["lastId"]}))
    assert last == {"contents": [payload(products[4])], "lastId": None}


def test_exactly_full_last_page_has_no_next_cursor(api):
    products = ProductFactory.create_batch(4)
    assert data(api.get(URL, {"size": 4}))["lastId"] is None
    assert data(api.get(URL, {"size": 2, "lastId": products[1].pk}))["lastId"] is None


def test_default_size_is_20(api):
    products = ProductFactory.create_batch(21)
    page = data(api.get(URL))
    assert [p["id"] for p in page["contents"]] == [p.pk for p in products[:20]]
    assert page["lastId"] == products[19].pk


def test_list_filtered_by_category_pages_within_it(api):
    books, toys = CategoryFactory(name="Books"), CategoryFactory(name="Toys")
    b1, _, b2 = ProductFactory(category=books), ProductFactory(category=toys), ProductFactory(category=books)
    page = data(api.get(URL, {"categoryId": books.pk}))
    assert page == {"contents": [payload(b1), payload(b2)], "lastId": None}
    assert data(api.get(URL, {"categoryId": books.pk, "lastId": b1.pk})) == {"contents": [payload(b2)], "lastId": None}


def test_unknown_category_is_404_and_an_empty_one_is_an_empty_page(api):
    empty = CategoryFactory()
    assert data(api.get(URL, {"categoryId": empty.pk})) == {"contents": [], "lastId": None}
    response = api.get(URL, {"categoryId": empty.pk + 1000})
    assert response.status_code == 404
    assert response.json()["errorCode"] == "CATEGORY_NOT_FOUND"


def test_inactive_products_are_not_listed(api):
    shown, hidden = ProductFactory(), ProductFactory(status=Product.Status.INACTIVE)
    page = data(api.get(URL))
    assert page == {"contents": [payload(shown)], "lastId": None}
    assert hidden.pk not in [p["id"] for p in page["contents"]]


def test_empty_parameters_mean_absent(api):
    product = ProductFactory()
    assert data(api.get(f"{URL}?lastId=&size=&categoryId=")) == {"contents": [payload(product)], "lastId": None}


def test_old_clients_user_id_header_is_ignored(api):
    product = ProductFactory()
    assert data(api.get(f"{URL}/{product.pk}", HTTP_USER_ID="12345")) == payload(product)


BAD_QUERIES = [
    (URL, "lastId=abc"),
    (URL, "lastId=-1"),
    (URL, "lastId=1.5"),
    (URL, "lastId=1e3"),
    (URL, "lastId=9223372036854775808"),
    (URL, "lastId=" + "9" * 5000),
    (URL, "size=0"),
    (URL, "size=101"),
    (URL, "size=-5"),
    (URL, "size=ten"),
    (URL, "categoryId=0"),
    (URL, "categoryId=x"),
    (URL, "categoryId=%00"),
    (f"{URL}/popular", "limit=0"),
    (f"{URL}/popular", "limit=51"),
    (f"{URL}/popular", "limit=abc"),
    (f"{URL}/ranking/daily", "limit=0"),
    (f"{URL}/ranking/weekly", "limit=51"),
    (f"{URL}/ranking/total", "limit=%F0%9F%92%A5"),
]


@pytest.mark.parametrize(("path", "query"), BAD_QUERIES)
def test_bad_parameters_are_400(api, path, query):
    response = api.get(f"{path}?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["errorCode"] == "INVALID_PARAMETER"
    assert body["errorMessage"].startswith(query.split("=")[0])


# --- cursor paging while products are added --------------------------------------------------


def walk(api, size: int, between_pages=lambda: None) -> list[int]:
    seen, last_id = [], None
    while True:
        query = {"size": size} if last_id is None else {"size": size, "lastId": last_id}
        page = data(api.get(URL, query))
        seen += [p["id"] for p in page["contents"]]
        last_id = page["lastId"]
        if last_id is None:
            return seen
        between_pages()


def test_paging_never_skips_or_repeats_while_products_are_added(api, django_capture_on_commit_callbacks):
    category = CategoryFactory()
    before = [p.pk for p in ProductFactory.create_batch(10, category=category)]
    added: list[int] = []

    def add_two():
        with django_capture_on_commit_callbacks(execute=True):  # the cache invalidation runs, as after a commit
            for _ in range(2):
                added.append(product_create(name="new", price=1_000, category_id=category.pk).pk)

    walk(api, 3)  # every page is cached now: the inserts must invalidate them
    seen = walk(api, 3, between_pages=add_two)
    assert len(seen) == len(set(seen)), "a product was repeated"
    assert seen == sorted(seen)
    assert set(before) <= set(seen), "a product that existed before paging was skipped"
    assert seen == before + added  # everything added while paging shows up, at the end, once


@pytest.mark.django_db(transaction=True)
def test_paging_while_another_thread_adds_products(api):
    category = CategoryFactory()
    before = [p.pk for p in ProductFactory.create_batch(30, category=category)]
    stop, added = threading.Event(), []

    def writer():
        try:
            while not stop.is_set():
                added.append(product_create(name="concurrent", price=1_000, category_id=category.pk).pk)
                stop.wait(0.002)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = walk(api, 4)
    finally:
        stop.set()
        thread.join()
    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    assert seen[: len(before)] == before
    assert set(seen) - set(before) <= set(added)
    assert added, "the writer did not run while the reader paged"


# --- detail --------------------------------------------------------------------------------


def test_product_detail_answers_the_products_fields(api):
    product = ProductFactory(name="Kettle", description="Boils.", price=39_000)
    assert data(api.get(f"{URL}/{product.pk}")) == payload(product)


@pytest.mark.parametrize("path", ["/0", "/999999", "/99999999999999999999999"])
def test_unknown_product_is_404(api, path):
    ProductFactory()
    response = api.get(f"{URL}{path}")
    assert response.status_code == 404
    assert response.json()["errorCode"] == "PRODUCT_NOT_FOUND"


def test_inactive_product_detail_is_404(api):
    product = ProductFactory(status=Product.Status.INACTIVE)
    response = api.get(f"{URL}/{product.pk}")
    assert response.status_code == 404 and response.json()["errorCode"] == "PRODUCT_NOT_FOUND"


@pytest.mark.parametrize("path", ["/abc", "/-1", "/1.5", "/%20"])
def test_non_numeric_product_path_is_404_route(api, path):
    response = api.get(f"{URL}{path}")
    assert response.status_code == 404 and response.json()["errorCode"] == "NOT_FOUND"


# --- popular -------------------------------------------------------------------------------


def test_popular_is_the_last_three_days_best_first_ties_by_id(api):
    a, b, c, d, old = ProductFactory.create_batch(5)
    sold(a, 5), sold(a, 5, days_ago=2)  # 10 within the window
    sold(b, 7)
    sold(c, 10, days_ago=1)  # ties with a: the lower id first
    sold(d, 1), sold(d, 100, days_ago=3)  # 3 days ago is outside
    sold(old, 50, days_ago=5)
    expected = [
        {**payload(a), "salesCount": 10},
        {**payload(c), "salesCount": 10},
        {**payload(b), "salesCount": 7},
        {**payload(d), "salesCount": 1},
    ]
    assert data(api.get(f"{URL}/popular")) == expected
    assert data(api.get(f"{URL}/popular", {"limit": 2})) == expected[:2]


def test_popular_skips_inactive_products_and_defaults_to_ten(api):
    products = ProductFactory.create_batch(12)
    for n, product in enumerate(products, start=1):
        sold(product, n)
    products_set_status(product_ids=[products[-1].pk], status=Product.Status.INACTIVE)
    popular = data(api.get(f"{URL}/popular"))
    assert [p["id"] for p in popular] == [p.pk for p in reversed(products[:-1])][:10]
    assert [p["salesCount"] for p in popular] == list(range(11, 1, -1))


def test_popular_is_empty_without_sales(api):
    ProductFactory()
    assert data(api.get(f"{URL}/popular")) == []


# --- rankings ------------------------------------------------------------------------------


def entry(rank: int, product: Product, count: int) -> dict:
    return {"rank": rank, "productId": product.pk, "productName": product.name, "salesCount": count}


def test_daily_weekly_and_total_rankings_count_their_own_periods(api):
    a, b, c = ProductFactory.create_batch(3)
    sold(a, 3)
    sold(b, 5)
    sold(a, 4, days_ago=6)  # still in the week
    sold(c, 20, days_ago=7)  # only in the total
    assert data(api.get(f"{URL}/ranking/daily")) == [entry(1, b, 5), entry(2, a, 3)]
    assert data(api.get(f"{URL}/ranking/weekly")) == [entry(1, a, 7), entry(2, b, 5)]
    assert data(api.get(f"{URL}/ranking/total")) == [entry(1, c, 20), entry(2, a, 7), entry(3, b, 5)]
    assert data(api.get(f"{URL}/ranking/total", {"limit": 1})) == [entry(1, c, 20)]


def test_ranking_ties_are_ordered_by_product_id(api):
    products = ProductFactory.create_batch(12)  # ids cross a decimal digit boundary in string order
    for product in products:
        sold(product, 4)
    assert [e["productId"] for e in data(api.get(f"{URL}/ranking/daily", {"limit": 12}))] == [p.pk for p in products]
    assert [e["productId"] for e in data(api.get(f"{URL}/ranking/daily", {"limit": 3}))] == [p.pk for p in products[:3]]


def test_unknown_ranking_period_is_404(api):
    response = api.get(f"{URL}/ranking/monthly")
    assert response.status_code == 404 and response.json()["errorCode"] == "NOT_FOUND"


def test_a_products_own_rank_today_matches_the_daily_ranking(api):
    a, b, c, idle = ProductFactory.create_batch(4)
    sold(a, 2)
    sold(b, 9)
    sold(c, 2)
    sold(idle, 50, days_ago=1)  # yesterday does not count
    assert data(api.get(f"{URL}/{b.pk}/ranking")) == entry(1, b, 9)
    assert data(api.get(f"{URL}/{a.pk}/ranking")) == entry(2, a, 2)
    assert data(api.get(f"{URL}/{c.pk}/ranking")) == entry(3, c, 2)
    assert data(api.get(f"{URL}/{idle.pk}/ranking")) == entry(0, idle, 0)
    # the same positions as the daily list
    assert data(api.get(f"{URL}/ranking/daily")) == [entry(1, b, 9), entry(2, a, 2), entry(3, c, 2)]


def test_own_rank_of_unknown_product_is_404(api):
    response = api.get(f"{URL}/424242/ranking")
    assert response.status_code == 404 and response.json()["errorCode"] == "PRODUCT_NOT_FOUND"


def test_catalog_is_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    for path in ("/api/v1/products", "/api/v1/products/{product_id}", "/api/v1/products/popular",
                 "/api/v1/products/ranking/{period}", "/api/v1/products/{product_id}/ranking",
                 "/api/v1/inventory/products/{product_id}"):  # fmt: skip
        assert path in paths, path
    listing = paths["/api/v1/products"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"lastId", "size", "categoryId"}
    assert "404" in listing["responses"] and "400" in listing["responses"]
    assert paths["/api/v1/products/{product_id}"]["get"]["security"] == [{}]  # public: no credentials


def test_the_schema_serializers_describe_exactly_what_the_views_send():
    from shop.api.catalog import PopularOutput, ProductOutput, ProductPageOutput, RankingOutput
    from shop.caches import (
        PopularItem,
        ProductData,
        ProductPage,
        RankingEntry,
        page_payload,
        popular_payload,
        product_payload,
        ranking_payload,
    )

    product = ProductData(1, "Kettle", "Boils.", 39_000, 2)
    popular = [PopularItem(1, "Kettle", "Boils.", 39_000, 2, sales_count=5)]
    page = ProductPage(contents=(product,), last_id=None)
    ranking = [RankingEntry(rank=1, product_id=1, product_name="Kettle", sales_count=5)]
    assert ProductOutput(product).data == product_payload(product)
    assert PopularOutput(popular, many=True).data == popular_payload(popular)
    assert ProductPageOutput(page).data == page_payload(page)
    assert RankingOutput(ranking, many=True).data == ranking_payload(ranking)
