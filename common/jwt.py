"""The authenticated user of a stateless JWT: the token's claims, no database row."""

from functools import cached_property

from rest_framework_simplejwt.models import TokenUser
from rest_framework_simplejwt.settings import api_settings


class ShopTokenUser(TokenUser):
    """simplejwt stores the user id claim as a string; our ids are integers everywhere."""

    @cached_property
    def id(self) -> int:  # type: ignore[override]
        return int(self.token[api_settings.USER_ID_CLAIM])

    @cached_property
    def pk(self) -> int:  # type: ignore[override]
        return self.id
