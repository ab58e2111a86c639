"""Admin pages over rows the domain services own."""

from __future__ import annotations


class ReadOnlyAdminMixin:
    """For an admin page (or inline) over rows only the domain services write: the admin never adds,
    changes or deletes one. `admin_allows` names what a page keeps of Django's defaults: "change"
    when its actions need the change permission (they run the guarded services; its fields stay
    read-only), "delete" when an operator may remove rows. Put it before the admin base class."""

    admin_allows: tuple[str, ...] = ()

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return "change" in self.admin_allows and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return "delete" in self.admin_allows and super().has_delete_permission(request, obj)
