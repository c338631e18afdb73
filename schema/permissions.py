"""Who is asking, and field permissions by scope (`RequireScope`): used by the secure view
(schema/security.py) and by the admin fields of the schema itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strawberry.permission import BasePermission

from app.datacache import Version
from app.security import keys as auth
from app.security.keys import Principal, Scope, Unauthenticated
from resolvers.context import Context


@dataclass
class SecureContext(Context):
    """The request context over HTTP: who is asking (None until authenticated)."""

    principal: Principal | None = None
    primary_version: Version | None = None  # the data version the primary showed the request


def _principal(context: Any) -> Principal | None:
    """The caller of an operation; the trusted in-process caller when the context has none."""
    if not isinstance(context, SecureContext):
        return None
    if context.principal is None:
        raise Unauthenticated("not authenticated")
    return context.principal


def RequireScope(scope: Scope) -> type[BasePermission]:  # noqa: N802 (reads as a class)
    """A field permission: `permission_classes=[RequireScope(Scope.ADMIN)]`."""

    class Permission(BasePermission):
        def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
            principal = _principal(info.context)
            if principal is not None:
                auth.require(principal, scope)
            return True

    Permission.__name__ = f"Require{scope.value.title()}"
    return Permission


ADMIN: list[type[BasePermission]] = [RequireScope(Scope.ADMIN)]
