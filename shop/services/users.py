from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from shop.errors import UsernameTaken, WeakPassword
from shop.models import User


def user_create(*, username: str, email: str, password: str, name: str) -> User:
    user = User(username=username, email=email, name=name)
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise WeakPassword(" ".join(exc.messages)) from None
    user.set_password(password)
    if User.objects.filter(username=username).exists():
        raise UsernameTaken()
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise UsernameTaken() from None
    return user
