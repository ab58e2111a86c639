from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A shopper (or a staff operator). `name` is the display name of the old API."""

    name = models.CharField(max_length=100, blank=True)
