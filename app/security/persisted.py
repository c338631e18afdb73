"""Persisted queries, by Apollo's automatic persisted queries (APQ) protocol.

The registered set is every `queries/*.graphql` document, read when the server starts. Each is
registered under the sha256 of its canonical text: the document as GraphQL's printer prints it
(comments and layout dropped), which is the text that `gql` and Apollo's persisted-query link
send and hash. Apollo Client's default cache adds `__typename` to every selection set before
hashing, so each document is also registered in that form (as Apollo's own persisted-query
manifests are). A client sends `extensions.persistedQuery = {version: 1, sha256Hash}` with or
without the document:

- hash only: the registered document runs; an unknown hash is `PERSISTED_QUERY_NOT_FOUND`, and
  the client resends the document with the hash;
- document and hash: the hash must be the document's sha256 (else `BAD_USER_INPUT`); a document
  that runs is then stored in `persisted_query`, so every server process knows it.

Partner keys run only the registered set from `queries/`: for them a stored document does not
exist and sending any other document is `FORBIDDEN`. Other keys may also send plain documents.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from graphql import (
    FieldNode,
    GraphQLError,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Visitor,
    parse,
    print_ast,
    visit,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import QUERIES_DIR
from app.errors import UserError
from app.security.keys import Forbidden
from app.tables import persisted_query

SHA256 = re.compile(r"[0-9a-f]{64}")
APQ_VERSION = 1


class PersistedQueryNotFound(UserError):
    """The hash is not registered; the message is the one Apollo clients look for."""

    code = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("PersistedQueryNotFound")


@dataclass(frozen=True)
class Document:
    name: str
    sha256: str
    text: str  # canonical


@dataclass(frozen=True)
class Resolved:
    """The document a request runs, and whether to store it once it ran (APQ registration)."""

    text: str | None
    sha256: str | None = None
    register: bool = False


def canonical(text: str) -> str:
    return print_ast(parse(text))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _AddTypename(Visitor):
    """Apollo Client's document transform: `__typename` in every selection set but the
    operation's own (and those that already ask for it or for introspection)."""

    def enter_selection_set(self, node: SelectionSetNode, _key: Any, parent: Any, *_: Any) -> Any:
        if isinstance(parent, OperationDefinitionNode):
            return None
        names = [s.name.value for s in node.selections if isinstance(s, FieldNode)]
        if any(name.startswith("__") for name in names):
            return None
        typename = FieldNode(name=NameNode(value="__typename"), arguments=(), directives=())
        return SelectionSetNode(selections=(*node.selections, typename))


def as_apollo_sends(text: str) -> str:
    """`text` as Apollo Client sends it with its default cache (which adds `__typename`)."""
    return print_ast(visit(parse(text), _AddTypename()))


def read_documents(path: Path) -> tuple[Document, Document]:
    """A `queries/` file as registered: its canonical text, and that text as Apollo sends it."""
    try:
        text = canonical(path.read_text(encoding="utf-8"))
    except GraphQLError as error:
        raise UserError(f"persisted query {path}: {error.message}") from None
    apollo = as_apollo_sends(text)
    return Document(path.stem, sha256_hex(text), text), Document(
        path.stem, sha256_hex(apollo), apollo
    )


def load_documents(directory: Path = QUERIES_DIR) -> dict[str, Document]:
    """The registered set, by sha256: every `*.graphql` in `directory`, in both forms."""
    paths = sorted(directory.glob("*.graphql"))
    return {doc.sha256: doc for path in paths for doc in read_documents(path)}


def requested_hash(extensions: Mapping[str, Any] | None) -> str | None:
    """The checked `extensions.persistedQuery.sha256Hash` of a request; None without one."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, Mapping) or persisted.get("version") != APQ_VERSION:
        raise UserError(f"extensions.persistedQuery must be {{version: {APQ_VERSION}, sha256Hash}}")
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        raise UserError("extensions.persistedQuery.sha256Hash must be 64 lowercase hex digits")
    return sha256


MAX_STORED = 10_000  # documents registered by clients (APQ) kept at most


class Registry:
    """The registered documents (from `queries/`) and the stored ones (APQ), for one server."""

    def __init__(
        self,
        engine: AsyncEngine,
        documents: Mapping[str, Document],
        max_stored: int = MAX_STORED,
    ) -> None:
        self.engine = engine
        self.documents = dict(documents)
        self.max_stored = max_stored

    async def stored(self, sha256: str) -> str | None:
        query = sa.select(persisted_query.c.document).where(persisted_query.c.sha256 == sha256)
        async with self.engine.connect() as connection:
            return await connection.scalar(query)

    async def store(self, sha256: str, text: str) -> None:
        """Keep a client's document; beyond `max_stored`, the oldest are forgotten (a client
        that sends one of those gets PERSISTED_QUERY_NOT_FOUND and registers it again)."""
        statement = insert(persisted_query).values(sha256=sha256, document=text)
        oldest = (
            sa.select(persisted_query.c.sha256)
            .order_by(persisted_query.c.created_at.desc(), persisted_query.c.sha256)
            .offset(self.max_stored)
        )
        async with self.engine.begin() as connection:
            inserted = await connection.execute(statement.on_conflict_do_nothing())
            if inserted.rowcount:
                await connection.execute(
                    sa.delete(persisted_query).where(persisted_query.c.sha256.in_(oldest))
                )

    async def _by_hash(self, sha256: str, partner: bool) -> Resolved:
        if sha256 in self.documents:
            return Resolved(self.documents[sha256].text, sha256)
        text = None if partner else await self.stored(sha256)
        if text is None:
            raise PersistedQueryNotFound()
        return Resolved(text, sha256)

    def _with_document(self, text: str, sha256: str, partner: bool) -> Resolved:
        if sha256_hex(text) != sha256:
            raise UserError("extensions.persistedQuery.sha256Hash is not the sha256 of the query")
        registered = sha256 in self.documents
        if partner and not registered:
            raise Forbidden("partner keys may run only the registered persisted queries")
        return Resolved(text, sha256, register=not registered)

    async def resolve(self, query: str | None, sha256: str | None, partner: bool) -> Resolved:
        """The document to run for a request's `query` and persisted-query hash."""
        if sha256 is None:
            if partner:
                raise Forbidden("partner keys may run only the registered persisted queries")
            return Resolved(query)
        if query is None:
            return await self._by_hash(sha256, partner)
        return self._with_document(query, sha256, partner)
