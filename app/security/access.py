"""What the caller of a request may do, told to the caller (the dashboard's key panel)."""

from __future__ import annotations

from dataclasses import dataclass

from app.security.keys import KEYLESS, Principal, Scope, granted

# What each scope lets a key do, in the order a reader climbs the ladder.
ALLOWS: dict[Scope, str] = {
    Scope.PARTNER: "run only the persisted queries of queries/ (the dashboard's among them)",
    Scope.READ: "run any query, persisted or not",
    Scope.WRITE: "run mutations: segments, attributes, imports",
    Scope.ADMIN: "run admin operations: sources and keys",
}


@dataclass(frozen=True)
class Access:
    name: str  # the key's name, or how the caller was let in
    scopes: tuple[str, ...]  # every scope the caller holds, implied ones included
    keyless: bool  # let in without a key (loopback demo) or in-process
    allows: tuple[str, ...]  # what those scopes allow, one sentence each


TRUSTED = Principal("in-process caller", KEYLESS.scopes)


def access(principal: Principal | None) -> Access:
    """The caller's access; None is the trusted in-process caller (no HTTP edge)."""
    caller = principal or TRUSTED
    scopes = granted(caller.scopes)
    if Scope.PARTNER in scopes:  # a restriction: read, but only the persisted queries
        allowed = [ALLOWS[Scope.PARTNER]]
    else:
        allowed = [text for scope, text in ALLOWS.items() if scope in scopes]
    return Access(
        name=caller.name,
        scopes=tuple(scope.value for scope in Scope if scope in scopes),
        keyless=caller.key_id is None,
        allows=tuple(allowed),
    )
