from common.errors import Conflict, DomainError, NotFound


class UsernameTaken(Conflict):
    code, message = "USERNAME_TAKEN", "This username is already taken."


class ProductNotFound(NotFound):
    code, message = "PRODUCT_NOT_FOUND", "Product not found."


class CategoryNotFound(NotFound):
    code, message = "CATEGORY_NOT_FOUND", "Category not found."


__all__ = ["DomainError", "UsernameTaken", "ProductNotFound", "CategoryNotFound"]
