"""Resolver of `viewer`: what the caller's key (or keyless access) allows."""

from __future__ import annotations

from app.security.access import Access, access
from app.security.keys import Principal
from resolvers.context import Context


def viewer(context: Context) -> Access:
    """The HTTP edge's context carries the authenticated principal; a plain (in-process)
    context has none and is trusted."""
    principal = getattr(context, "principal", None)
    return access(principal if isinstance(principal, Principal) else None)
