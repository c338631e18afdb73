"""API keys, scopes and who is asking.

A key is `tm_` followed by 43 URL-safe random characters (256 bits from `secrets`). It is shown
once, when created; the database keeps only its SHA-256. A presented key is hashed, its row is
looked up by that digest and the digests are compared in constant time. Looking a row up by the
digest of a high-entropy secret reveals nothing an attacker can use. A server remembers a
lookup for the data version it was made at (app/datacache.py): creating or revoking a key
bumps that version, so a revoked key still stops working on its next request, in every worker
process.

Scopes (`Scope`) form a ladder, `admin` > `write` > `read`: a key may do what its scopes imply.
`partner` is a restriction rather than a rung: it implies `read`, but a partner key runs only
the documents in `queries/` (app/persisted.py) and sees no introspection, so it is never combined
with another scope.

Keyless access (the embedded demo) is allowed only while the server binds to a loopback address
and no key has ever been created; creating the first key ends it, and revoking keys does not
bring it back. Each request must also have come in over loopback itself (`Origin`): reached a
loopback address of the server, from a loopback client, not forwarded by a proxy. So a server
started some other way than `tidemill serve` (a bare `uvicorn --host 0.0.0.0`, a Unix socket, a
local reverse proxy) never lets a remote request in without a key.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.datacache import VersionedMemo
from app.errors import NotFound, UserError
from app.ids import bigint
from app.tables import api_key

KEY_PREFIX = "tm_"
KEY_RANDOM_BYTES = 32
TOUCH_EVERY = datetime.timedelta(minutes=1)  # last_used_at is kept to this precision


class Scope(StrEnum):
    READ = "read"  # queries
    WRITE = "write"  # mutations: segments, attributes, imports
    ADMIN = "admin"  # sources and keys
    PARTNER = "partner"  # only the registered persisted queries, no introspection


SCOPE_NAMES = frozenset(scope.value for scope in Scope)
IMPLIED: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.WRITE: frozenset({Scope.WRITE, Scope.READ}),
    Scope.ADMIN: frozenset({Scope.ADMIN, Scope.WRITE, Scope.READ}),
    Scope.PARTNER: frozenset({Scope.PARTNER, Scope.READ}),
}
OPERATION_SCOPES = {"query": Scope.READ, "mutation": Scope.WRITE, "subscription": Scope.READ}


class Unauthenticated(UserError):
    """No usable API key: missing, malformed, unknown or revoked."""

    code = "UNAUTHENTICATED"


class Forbidden(UserError):
    """A valid key that lacks the scope the request needs."""

    code = "FORBIDDEN"


@dataclass(frozen=True)
class Principal:
    """Who is asking: the key `name` with its `scopes`, or keyless access (`key_id` None)."""

    name: str
    scopes: frozenset[Scope]
    key_id: int | None = None

    @property
    def is_partner(self) -> bool:
        return Scope.PARTNER in self.scopes


@dataclass(frozen=True)
class Origin:
    """How a request reached the server: the server's address it came in on, the client's
    address (None when unknown, as on a Unix socket), and whether a proxy forwarded it."""

    server: str | None
    client: str | None
    forwarded: bool = False

    @property
    def is_loopback(self) -> bool:
        addresses = (self.server, self.client)
        return not self.forwarded and all(a is not None and is_loopback(a) for a in addresses)


KEYLESS = Principal("keyless loopback access", frozenset({Scope.READ, Scope.WRITE, Scope.ADMIN}))


@dataclass(frozen=True)
class ApiKey:
    """A stored key as `tidemill keys list` shows it (never the key itself)."""

    id: int
    name: str
    scopes: tuple[str, ...]
    created_at: datetime.datetime
    last_used_at: datetime.datetime | None
    revoked_at: datetime.datetime | None


# --- pure functions --------------------------------------------------------------------------


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scope names (repeated or comma-separated) as scopes; every problem is reported at once."""
    names = [name.strip().lower() for value in values for name in value.split(",")]
    valid = ", ".join(scope.value for scope in Scope)
    problems = [
        f"unknown scope {name!r}; valid: {valid}" for name in names if name not in SCOPE_NAMES
    ]
    scopes = frozenset(Scope(name) for name in names if name in SCOPE_NAMES)
    if not scopes and not problems:
        problems.append(f"give at least one scope; valid: {valid}")
    if Scope.PARTNER in scopes and len(scopes) > 1:
        problems.append("partner is a restriction and cannot be combined with other scopes")
    if problems:
        raise UserError("; ".join(problems), problems)
    return scopes


def granted(scopes: Iterable[Scope]) -> frozenset[Scope]:
    """Every scope that `scopes` imply (admin implies write, write implies read)."""
    return frozenset().union(*(IMPLIED[scope] for scope in scopes))


def permits(scopes: Iterable[Scope], needed: Scope) -> bool:
    return needed in granted(scopes)


def operation_scope(operation: str) -> Scope:
    """The scope an operation kind needs: queries read, mutations write."""
    return OPERATION_SCOPES[operation]


def require(principal: Principal, needed: Scope) -> None:
    """Raise Forbidden unless `principal` may act with scope `needed`."""
    if not permits(principal.scopes, needed):
        held = ", ".join(sorted(principal.scopes)) or "none"
        raise Forbidden(f"this needs an API key with the {needed} scope (key scopes: {held})")


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The key of an `Authorization: Bearer tm_...` header; None when there is no header."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX):
        raise Unauthenticated("the Authorization header must be `Bearer tm_...` (a Tidemill key)")
    return token


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- database ----------------------------------------------------------------------------------


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        row.id, row.name, tuple(row.scopes), row.created_at, row.last_used_at, row.revoked_at
    )


def _principal(row: Any) -> Principal:
    scopes = frozenset(Scope(name) for name in row.scopes if name in SCOPE_NAMES)
    return Principal(row.name, scopes, row.id)


async def create_key(
    engine: AsyncEngine, name: str, scopes: frozenset[Scope]
) -> tuple[ApiKey, str]:
    """Store a new key named `name`; returns it with the key, which is never shown again."""
    name = name.strip()
    if not name:
        raise UserError("a key needs a name (what uses it: dashboard, partner-acme, ...)")
    key = generate_key()
    values = {"name": name, "key_hash": key_hash(key), "scopes": sorted(scopes)}
    statement = (
        insert(api_key)
        .values(values)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(*api_key.c)
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).one_or_none()
    if row is None:
        raise UserError(f"a key named {name!r} already exists (revoked keys keep their name)")
    return _api_key(row), key


async def list_keys(engine: AsyncEngine) -> list[ApiKey]:
    async with engine.connect() as connection:
        rows = await connection.execute(sa.select(*api_key.c).order_by(api_key.c.id))
    return [_api_key(row) for row in rows]


async def _revoke_where(engine: AsyncEngine, condition: sa.ColumnElement[bool]) -> ApiKey | None:
    statement = (
        sa.update(api_key)
        .where(condition)
        .values(revoked_at=sa.func.coalesce(api_key.c.revoked_at, sa.func.now()))
        .returning(*api_key.c)
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).one_or_none()
    return _api_key(row) if row is not None else None


def _key_id(text: str) -> int | None:
    """`text` as a key's id, None when it is no id (ASCII digits within 64 bits): a name."""
    try:
        return bigint(text)
    except ValueError:
        return None


async def revoke_key(engine: AsyncEngine, name_or_id: str) -> ApiKey:
    """Revoke the key with this name (or, failing that, this id); it stops working at once."""
    revoked = await _revoke_where(engine, api_key.c.name == name_or_id)
    if revoked is None and (ident := _key_id(name_or_id)) is not None:
        revoked = await _revoke_where(engine, api_key.c.id == ident)
    if revoked is None:
        raise NotFound(f"no API key named (or with id) {name_or_id!r}; see `tidemill keys list`")
    return revoked


async def any_key_exists(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        return bool(await connection.scalar(sa.select(sa.exists().select_from(api_key))))


async def _touch(engine: AsyncEngine, row: Any) -> None:
    """Record a use, at most once per TOUCH_EVERY per key (no write on every request)."""
    now = datetime.datetime.now(datetime.UTC)
    if row.last_used_at is not None and now - row.last_used_at < TOUCH_EVERY:
        return
    async with engine.begin() as connection:
        await connection.execute(
            sa.update(api_key).where(api_key.c.id == row.id).values(last_used_at=sa.func.now())
        )


async def key_principal(engine: AsyncEngine, key: str) -> Principal:
    """The principal of a presented key; Unauthenticated when it is unknown or revoked."""
    digest = key_hash(key)
    query = sa.select(*api_key.c).where(api_key.c.key_hash == digest)
    async with engine.connect() as connection:
        row = (await connection.execute(query)).one_or_none()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise Unauthenticated("unknown API key")
    if row.revoked_at is not None:
        raise Unauthenticated(f"the API key {row.name!r} has been revoked")
    await _touch(engine, row)
    return _principal(row)


class Authenticator:
    """Turns a request's Authorization header into a Principal, for one server.

    `loopback` says whether the server binds to a loopback address only: the one case where a
    request without a key is let in, and only while no key exists.
    """

    def __init__(self, engine: AsyncEngine, loopback: bool) -> None:
        self.engine = engine
        self.loopback = loopback
        self._keys_exist = False  # once true, it stays true (keys are revoked, never deleted)
        self.memo = VersionedMemo()

    async def keyless_allowed(self, version: Hashable | None = None) -> bool:
        """Whether this server lets keyless requests in (that come in over loopback); with the
        data `version` just read, remembered until a key is created."""
        if not self.loopback or self._keys_exist:
            return False
        if version is None:
            self._keys_exist = await any_key_exists(self.engine)
        else:
            found = await self.memo.get(("keys", version), lambda: any_key_exists(self.engine))
            self._keys_exist = found
        return not self._keys_exist

    async def authenticate(
        self, authorization: str | None, origin: Origin, version: Hashable | None = None
    ) -> Principal:
        """The principal of a request; with the data `version` just read, a key's lookup is
        remembered for that version (a revocation bumps it)."""
        key = bearer_token(authorization)
        if key is not None:
            if version is None:
                return await key_principal(self.engine, key)
            # and for at most TOUCH_EVERY, so that its last use is still recorded
            minute = int(datetime.datetime.now(datetime.UTC).timestamp() // TOUCH_EVERY.seconds)
            return await self.memo.get(
                ("key", key_hash(key), version, minute), lambda: key_principal(self.engine, key)
            )
        if origin.is_loopback and await self.keyless_allowed(version):
            return KEYLESS
        raise Unauthenticated("this server needs an API key: send `Authorization: Bearer tm_...`")
