"""Customer attributes: typed definitions, one value per (customer, key), CSV import.

A value is stored in the column of its attribute's type, so filters compare typed values and
use the per-type indexes. A value that does not parse as its type is refused with the reason,
and an import is all or nothing.
"""

from __future__ import annotations

import enum
import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import ColumnElement

from app import strict
from app.db import Database
from app.errors import MAX_REPORTED, ImportFailed, NotFound, UserError
from app.ingest.csvfile import TextLines, with_header
from app.limits import DAYS, FIRST_DAY, LAST_DAY, magnitude_problem
from app.metrics.cube import Dimension, Level, Sources, filter_clause
from app.metrics.spec import Filter, FilterOp
from app.tables import attribute, customer, customer_attribute

KEY = re.compile(r"[a-z][a-z0-9_]{0,62}")
SOURCES = ("stripe", "csv", "api", "computed")
MAX_VALUES = 1000  # distinct values served per request
VALUE_COLUMNS = ("string_value", "number_value", "boolean_value", "date_value")
TRUE, FALSE = {"true", "yes", "1", "y", "t"}, {"false", "no", "0", "n", "f"}
# A number attribute stays exact as a JSON number: below 10^15, at most 15 decimal places.
NUMBER_DIGITS, NUMBER_DECIMALS = 15, 15

Value = str | Decimal | bool | date


class AttributeType(enum.Enum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"

    @property
    def column(self) -> str:
        return f"{self.value}_value"


@dataclass(frozen=True)
class AttributeDefinition:
    key: str
    label: str
    type: AttributeType
    source: str
    description: str


def parse_value(kind: AttributeType, text: str) -> Value:
    """`text` as a value of `kind`; ValueError says why it is not one."""
    value = text.strip()
    match kind:
        case AttributeType.STRING:
            return value
        case AttributeType.NUMBER:
            try:
                number = strict.decimal(value)
            except (ValueError, InvalidOperation):
                raise ValueError(f"{text!r} is not a number") from None
            if not number.is_finite():
                raise ValueError(f"{text!r} is not a finite number")
            if problem := magnitude_problem(number, NUMBER_DIGITS, NUMBER_DECIMALS):
                raise ValueError(f"{text!r} {problem}")
            return number
        case AttributeType.BOOLEAN:
            if value.lower() in TRUE | FALSE:
                return value.lower() in TRUE
            raise ValueError(f"{text!r} is not a boolean (true/false, yes/no, 1/0)")
        case AttributeType.DATE:
            try:
                day = strict.day(value)
            except ValueError:
                raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
            if not FIRST_DAY <= day <= LAST_DAY:
                raise ValueError(f"{text!r} is outside {DAYS}")
            return day


def attribute_column(kind: AttributeType) -> ColumnElement[Any]:
    return customer_attribute.c[kind.column]


def typed_literal(kind: AttributeType, text: str) -> Value:
    """A filter value for an attribute of `kind`, or a user error naming the problem."""
    try:
        return parse_value(kind, text)
    except ValueError as error:
        raise UserError(f"attribute value {error} (type {kind.value})") from None


PREFIX = "attr."
# Operators whose complement is a plain condition: a customer without the attribute matches.
COMPLEMENTS = {
    FilterOp.NEQ: FilterOp.EQ,
    FilterOp.NOT_IN: FilterOp.IN,
    FilterOp.IS_NULL: FilterOp.IS_NOT_NULL,
}


@functools.lru_cache(maxsize=1024)
def dimension(definition: AttributeDefinition) -> Dimension:
    """`attr.<key>`: a customer-level dimension and filter. A breakdown outer-joins the values
    once; a filter is a semi-join on the attribute's (key, value) index. One object per
    definition: a cube with the same attributes is the same cube after a write, so the
    statements remembered for it (app.metrics.service) are found again."""
    kind = definition.type
    grouped = customer_attribute.alias(f"attr_{definition.key}")
    holders = customer_attribute.alias(f"attr_{definition.key}_holders")

    def join(sources: Sources) -> tuple[sa.FromClause, ColumnElement[bool]]:
        on = sa.and_(grouped.c.customer_id == sources.customer_id, grouped.c.key == definition.key)
        return grouped, on

    def condition(sources: Sources, item: Filter) -> ColumnElement[bool]:
        positive = Filter(item.field, COMPLEMENTS.get(item.op, item.op), item.values)
        matching_ids = (
            sa.select(holders.c.customer_id)
            .where(
                holders.c.key == definition.key,
                filter_clause(holders.c[kind.column], positive, lambda t: parse_value(kind, t)),
            )
            .correlate(None)
        )
        matching = sources.customer_id.in_(matching_ids)
        return sa.not_(matching) if item.op in COMPLEMENTS else matching

    return Dimension(
        PREFIX + definition.key,
        definition.label + (f": {definition.description}" if definition.description else ""),
        Level.CUSTOMER,
        lambda _sources: grouped.c[kind.column],
        kind=kind.value,
        reads_customer=True,
        keyed_by_customer=True,
        parse=lambda text: parse_value(kind, text),
        condition=condition,
        join=join,
    )


async def dimensions(connection: AsyncConnection) -> list[Dimension]:
    """The `attr.*` dimensions of the attributes defined now."""
    return [dimension(d) for d in (await definitions(connection)).values()]


def _definition(row: Any) -> AttributeDefinition:
    return AttributeDefinition(
        row["key"], row["label"], AttributeType(row["type"]), row["source"], row["description"]
    )


async def definitions(connection: AsyncConnection) -> dict[str, AttributeDefinition]:
    rows = await connection.execute(sa.select(attribute).order_by(attribute.c.key))
    return {row["key"]: _definition(row) for row in rows.mappings()}


async def list_definitions(engine: Database) -> list[AttributeDefinition]:
    async with engine.connect() as connection:
        return list((await definitions(connection)).values())


async def create(engine: Database, definition: AttributeDefinition) -> AttributeDefinition:
    problems = []
    if not definition.label.strip():
        problems.append("an attribute label cannot be empty")
    if not KEY.fullmatch(definition.key):
        problems.append(
            f"key {definition.key!r} must be lower-case letters, digits and _ (a letter first)"
        )
    if definition.source not in SOURCES:
        problems.append(f"source {definition.source!r} is not one of: {', '.join(SOURCES)}")
    if problems:
        raise UserError("; ".join(problems), problems)
    values = {
        "key": definition.key,
        "label": definition.label,
        "type": definition.type.value,
        "source": definition.source,
        "description": definition.description,
    }
    async with engine.begin() as connection:
        inserted = await connection.execute(
            insert(attribute).values(values).on_conflict_do_nothing().returning(attribute.c.key)
        )
        if inserted.first() is None:
            raise UserError(f"attribute {definition.key!r} already exists")
    return definition


async def update(
    engine: Database, key: str, label: str | None, description: str | None
) -> AttributeDefinition:
    """Change the label and/or description (the key, type and source are fixed)."""
    if label is not None and not label.strip():
        raise UserError("an attribute label cannot be empty")
    changes = {
        name: value.strip()
        for name, value in (("label", label), ("description", description))
        if value is not None
    }
    async with engine.begin() as connection:
        if changes:
            await connection.execute(
                sa.update(attribute).where(attribute.c.key == key).values(changes)
            )
        found = (await definitions(connection)).get(key)
    if found is None:
        raise NotFound(f"no attribute {key!r}")
    return found


async def _require(connection: AsyncConnection, key: str) -> AttributeDefinition:
    found = (await definitions(connection)).get(key)
    if found is None:
        raise NotFound(f"no attribute {key!r}; define it first")
    return found


async def _require_customer(connection: AsyncConnection, customer_id: int) -> None:
    found = await connection.scalar(sa.select(customer.c.id).where(customer.c.id == customer_id))
    if found is None:
        raise NotFound(f"no customer with id {customer_id}")


async def set_values(
    engine: Database, customer_id: int, values: Sequence[tuple[str, str]]
) -> dict[str, Value]:
    """Upsert values (key, text) on one customer: all of them, or none when any is wrong."""
    async with engine.begin() as connection:
        await _require_customer(connection, customer_id)
        known = await definitions(connection)
        unknown = sorted({key for key, _ in values if key not in known})
        if unknown:
            raise NotFound(f"no attribute {', '.join(map(repr, unknown))}; define it first")
        parsed: dict[str, Value] = {}
        given = Counter(key for key, _ in values)
        problems = [
            f"{key}: given {count} times; give each key once"
            for key, count in sorted(given.items())
            if count > 1
        ]
        for key, text in values:
            try:
                parsed[key] = parse_value(known[key].type, text)
            except ValueError as error:
                problems.append(f"{key}: {error} (type {known[key].type.value})")
        if problems:
            raise UserError("; ".join(problems), problems)
        await upsert_values(
            connection, [(customer_id, k, known[k].type, value) for k, value in parsed.items()]
        )
    return parsed


async def remove_value(engine: Database, customer_id: int, key: str) -> bool:
    """Remove one value; False when the customer had none for `key`."""
    async with engine.begin() as connection:
        await _require_customer(connection, customer_id)
        await _require(connection, key)
        deleted = await connection.execute(
            sa.delete(customer_attribute).where(
                customer_attribute.c.customer_id == customer_id, customer_attribute.c.key == key
            )
        )
    return bool(deleted.rowcount)


async def upsert_values(
    connection: AsyncConnection, values: Sequence[tuple[int, str, AttributeType, Value]]
) -> None:
    """Store typed values (customer id, key, type, value), replacing what was there."""
    rows = [
        {
            "customer_id": customer_id,
            "key": key,
            "string_value": None,
            "number_value": None,
            "boolean_value": None,
            "date_value": None,
            kind.column: value,
        }
        for customer_id, key, kind, value in values
    ]
    if not rows:
        return
    statement = insert(customer_attribute).values(rows)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["customer_id", "key"],
            set_={column: statement.excluded[column] for column in VALUE_COLUMNS},
        )
    )


async def distinct_values(engine: Database, key: str, limit: int = 100) -> list[str]:
    """Observed values of an attribute (for autocomplete), most frequent first."""
    async with engine.connect() as connection:
        definition = await _require(connection, key)
        column = attribute_column(definition.type)
        rows = await connection.execute(
            sa.select(sa.cast(column, sa.Text))
            .where(customer_attribute.c.key == key, column.is_not(None))
            .group_by(column)
            .order_by(sa.func.count().desc(), column)
            .limit(limit)
        )
        return [str(value) for value in rows.scalars()]


async def values_of(engine: Database, ids: Sequence[int]) -> list[dict[str, Value]]:
    """Every attribute value of many customers, in one statement (for a dataloader)."""
    ca = customer_attribute
    query = sa.select(ca).where(ca.c.customer_id.in_(ids))
    found: dict[int, dict[str, Value]] = {ident: {} for ident in ids}
    async with engine.connect() as connection:
        for row in (await connection.execute(query)).mappings():
            value = next(row[c] for c in VALUE_COLUMNS if row[c] is not None)
            found[row["customer_id"]][row["key"]] = value
    return [found[ident] for ident in ids]


async def import_csv(
    engine: Database,
    lines: TextLines | Iterable[str],
    filename: str,
    progress: Callable[[int], None] = lambda _: None,
) -> tuple[int, int]:
    """Values from a CSV whose first column is the customer (id or external id) and whose
    other columns are attribute keys. All or nothing; every bad row is reported (the first 20,
    and how many more). Returns (rows read, values upserted); `progress` is called with the
    line reached.

    The file streams through: rows and values are COPYed into temporary tables as they are
    parsed (nothing but a batch is held in memory, whatever the number of customers), the
    customers are resolved and checked in SQL, and the values are upserted a chunk of lines
    per statement, all in one transaction."""
    header, unreadable, rows = with_header(lines)
    if unreadable:
        raise ImportFailed(filename, [(1, unreadable)])
    async with engine.begin() as connection:
        known = await definitions(connection)
        _check_header(filename, header, known)
        stage = await _Stage.create(connection)
        count = line = 0
        for line, row, read_problem in rows:
            if not row and not read_problem:
                continue
            count += 1
            parsed, problem = _parse_row(row, header, known)
            await stage.add(line, row, read_problem, problem, parsed)
            if line % 1000 == 0:
                progress(line)
        values = await stage.apply(filename)
    progress(line)
    return count, values


SETTLE_AFTER = 10_000  # values imported from the CLI after which the table is vacuumed


async def settle(engine: AsyncEngine) -> None:
    """After a large import, VACUUM (ANALYZE) the values: their visibility map, so that a
    filter's or a segment's holders are read from the value indexes alone (index-only scans,
    migration 0037) at once, not after autovacuum's next round (or never, where it is off).
    Outside a transaction and without the requests' statement timeout, as the subscriptions'
    settling (app.ingest.subscriptions.settle): seconds at a million customers."""
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(sa.text("SET statement_timeout = 0"))
        await connection.execute(sa.text("VACUUM (ANALYZE) customer_attribute"))


class _Stage:
    """Rows and values copied (COPY) into temporary tables as they are parsed; customers
    resolved, rows checked, values upserted in chunks of lines; all in the import's
    transaction, so a failed import leaves nothing."""

    BATCH = 10_000
    CHUNK_LINES = 50_000  # lines upserted per statement

    def __init__(self, connection: AsyncConnection, driver: Any) -> None:
        self.connection = connection
        self.driver = driver
        self.rows: list[tuple[Any, ...]] = []
        self.values: list[tuple[Any, ...]] = []
        self.count = 0

    @classmethod
    async def create(cls, connection: AsyncConnection) -> _Stage:
        await connection.execute(
            sa.text(
                "CREATE TEMP TABLE stage_attribute_row (line integer, ref text, ref_repr text, "
                "read_problem text, problem text) ON COMMIT DROP"
            )
        )
        await connection.execute(
            sa.text(
                "CREATE TEMP TABLE stage_attribute (line integer, key text, "
                "string_value text, number_value numeric, boolean_value boolean, "
                "date_value date) ON COMMIT DROP"
            )
        )
        raw = await connection.get_raw_connection()
        return cls(connection, raw.driver_connection)

    async def add(
        self,
        line: int,
        row: list[str],
        read_problem: str | None,
        problem: str | None,
        values: Sequence[tuple[str, AttributeType, Value]],
    ) -> None:
        ref = row[0].strip() if row else ""
        self.rows.append((line, ref, repr(ref), read_problem, problem))
        if not (read_problem or problem):
            for key, kind, value in values:
                typed = tuple(value if column == kind.column else None for column in VALUE_COLUMNS)
                self.values.append((line, key, *typed))
        if len(self.rows) >= self.BATCH or len(self.values) >= self.BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self.rows:
            columns = ["line", "ref", "ref_repr", "read_problem", "problem"]
            await self.driver.copy_records_to_table(
                "stage_attribute_row", records=self.rows, columns=columns
            )
            self.rows = []
        if self.values:
            await self.driver.copy_records_to_table("stage_attribute", records=self.values)
            self.count += len(self.values)
            self.values = []

    async def _execute(self, statement: str, **values: Any) -> Any:
        return await self.connection.execute(sa.text(statement), values)

    async def apply(self, filename: str) -> int:
        await self._flush()
        # customers by external id, else by id (as a person would read the column)
        await self._execute(
            """
            CREATE TEMP TABLE stage_attribute_customer ON COMMIT DROP AS
            SELECT r.line, r.ref_repr, r.read_problem, r.problem,
                   coalesce(e.id, i.id) AS customer_id
            FROM stage_attribute_row r
            LEFT JOIN (SELECT external_id, min(id) AS id FROM customer GROUP BY external_id) e
                   ON e.external_id = r.ref
            LEFT JOIN customer i
                   ON i.id = CASE WHEN r.ref ~ '^[0-9]{1,18}$' THEN r.ref::bigint END
            """
        )
        await self._check(filename)
        await self._execute("CREATE INDEX ON stage_attribute (line)")
        await self._execute("CREATE INDEX ON stage_attribute_customer (line)")
        await self._execute("ANALYZE stage_attribute, stage_attribute_customer")
        last = await self.connection.scalar(sa.text("SELECT max(line) FROM stage_attribute"))
        columns = ", ".join(("customer_id", "key", *VALUE_COLUMNS))
        typed = ", ".join(f"v.{column}" for column in VALUE_COLUMNS)
        updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in VALUE_COLUMNS)
        for start in range(0, int(last or 0) + 1, self.CHUNK_LINES):
            await self._execute(
                f"INSERT INTO customer_attribute ({columns}) SELECT r.customer_id, v.key, "
                f"{typed} FROM stage_attribute v JOIN stage_attribute_customer r USING (line) "
                "WHERE v.line >= :start AND v.line < :end "
                f"ON CONFLICT (customer_id, key) DO UPDATE SET {updates}",
                start=start,
                end=start + self.CHUNK_LINES,
            )
        # dropped now, not at commit: a GraphQL operation may import twice in one transaction
        await self._execute(
            "DROP TABLE stage_attribute, stage_attribute_row, stage_attribute_customer"
        )
        if self.count >= 1000:  # plans of the filters and loaders need current statistics
            await self._execute("ANALYZE customer_attribute")
        return self.count

    async def _check(self, filename: str) -> None:
        """Each bad row with its first problem: unreadable, unknown customer, a bad value,
        a customer given on an earlier line (even a bad one)."""
        found = (
            await self._execute(
                """
                SELECT line, coalesce(read_problem,
                    CASE WHEN customer_id IS NULL
                         THEN 'no customer with id or external id ' || ref_repr END,
                    problem,
                    CASE WHEN line <> first_line
                         THEN 'customer ' || ref_repr || ' is already given on line '
                              || first_line END) AS problem,
                    count(*) OVER ()
                FROM (
                    SELECT *, min(line) OVER (PARTITION BY coalesce(customer_id, -line))
                              AS first_line
                    FROM stage_attribute_customer
                ) checked
                WHERE read_problem IS NOT NULL OR customer_id IS NULL OR problem IS NOT NULL
                   OR line <> first_line
                ORDER BY line LIMIT :reported
                """,
                reported=MAX_REPORTED,
            )
        ).all()
        if found:
            listed = [(line, problem) for line, problem, _ in found]
            raise ImportFailed(filename, listed, found[0][2] - len(listed))


def _check_header(filename: str, header: list[str], known: dict[str, AttributeDefinition]) -> None:
    unknown = [key for key in header[1:] if key not in known]
    twice = sorted({key for key in header[1:] if header[1:].count(key) > 1})
    if len(header) < 2:
        reason = "needs a customer column (id or external id) and at least one attribute column"
    elif unknown:
        defined = ", ".join(known) or "none yet"
        reason = (
            f"unknown attribute(s): {', '.join(unknown)} (define them first; defined: {defined})"
        )
    elif twice:
        reason = f"column(s) given twice: {', '.join(twice)}"
    else:
        return
    raise ImportFailed(filename, [(1, reason)])


def _parse_row(
    row: list[str], header: list[str], known: dict[str, AttributeDefinition]
) -> tuple[list[tuple[str, AttributeType, Value]], str | None]:
    if len(row) > len(header):
        return [], f"{len(row)} columns, but the header has {len(header)}"
    parsed = []
    for key, text in zip(header[1:], row[1:], strict=False):
        if not text.strip():
            continue
        kind = known[key].type
        try:
            parsed.append((key, kind, parse_value(kind, text)))
        except ValueError as error:
            return [], f"{key}: {error} (type {kind.value})"
    return parsed, None
