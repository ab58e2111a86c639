import factory
from django.utils import timezone

from shop.models import Category, Coupon, Product, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"shopper{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    name = factory.Faker("name")
    password = factory.django.Password("correct-horse-battery")


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Category {n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Product {n}")
    description = "A fine product."
    price = 10_000
    category = factory.SubFactory(CategoryFactory)


class CouponFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Coupon

    name = factory.Sequence(lambda n: f"Coupon {n}")
    discount_type = Coupon.DiscountType.FIXED
    discount_value = 1_000
    minimum_order_amount = 0
    total_quantity = 100
    valid_from = factory.LazyFunction(lambda: timezone.now() - timezone.timedelta(days=1))
    valid_to = factory.LazyFunction(lambda: timezone.now() + timezone.timedelta(days=30))
