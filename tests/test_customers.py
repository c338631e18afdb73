"""Customers: list, search, sort, pagination, facts (METRICS.md 8), and dataloader batching."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import attributes, cursors
from app import customers as customers_module
from app.attributes import AttributeDefinition, AttributeType
from app.customers import search_conditions
from app.metrics.service import MetricsEngine
from app.tables import CUSTOMER_SEARCH_INDEX, customer
from tests.conftest import execute, execute_errors, import_text

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount,plan,customer_name,email,country\n"
PEOPLE = (
    HEADER
    + """\
a1,A,2024-01-01,2024-03-01,100,Basic,Acme Corp,billing@acme.example,US
a1,A,2024-03-01,,150,Pro,Acme Corp,billing@acme.example,US
b1,B,2024-01-15,2024-02-10,50,Basic,Bolt Ltd,ops@bolt.example,GB
c1,C,2024-02-01,,200,Pro,Cargo GmbH,CFO@Cargo.example,DE
"""
)
FACTS = """query($id: ID!) { customer(id: $id) {
  externalId name mrr arr currency status customerSince churnedAt churnedMrr
  subscriptions { externalId plan quantity interval status mrr started ended }
  activities { day kind amount description } } }"""


async def page(metrics: MetricsEngine, **arguments: Any) -> dict[str, Any]:
    query = """query($search: String, $first: Int!, $after: String, $sort: CustomerSort!,
                     $spec: QuerySpecInput) {
      customers(search: $search, first: $first, after: $after, sort: $sort, spec: $spec) {
        totalCount pageInfo { endCursor hasNextPage }
        edges { cursor node { id externalId name } } } }"""
    variables = {"first": 50, "sort": "NAME", **arguments}
    result: dict[str, Any] = (await execute(metrics, query, variables))["customers"]
    return result


def external_ids(result: dict[str, Any]) -> list[str]:
    return [edge["node"]["externalId"] for edge in result["edges"]]


async def customer_id(metrics: MetricsEngine, external_id: str) -> str:
    result = await page(metrics, search=external_id)
    [edge] = [e for e in result["edges"] if e["node"]["externalId"] == external_id]
    ident: str = edge["node"]["id"]
    return ident


@pytest.fixture
async def people(engine: AsyncEngine) -> None:
    await import_text(engine, PEOPLE)


@pytest.mark.usefixtures("people")
async def test_search_sort_and_filters(metrics: MetricsEngine) -> None:
    assert external_ids(await page(metrics)) == ["A", "B", "C"]  # by name
    assert external_ids(await page(metrics, search="cfo@cargo.EXAMPLE")) == ["C"]  # email
    assert external_ids(await page(metrics, search="olt")) == ["B"]  # name substring
    assert external_ids(await page(metrics, sort="MRR")) == ["C", "A", "B"]  # 200, 150, 0
    assert external_ids(await page(metrics, sort="CUSTOMER_SINCE")) == ["A", "B", "C"]
    pro = {"filters": [{"field": "plan", "values": ["Pro"]}]}
    assert external_ids(await page(metrics, spec=pro)) == ["A", "C"]
    europe = {"filters": [{"field": "region", "values": ["Europe"]}]}
    assert (await page(metrics, spec=europe))["totalCount"] == 2


@pytest.mark.usefixtures("people")
async def test_a_search_reads_the_trigram_index_where_the_database_has_one(
    engine: AsyncEngine,
) -> None:
    """Each condition of a search (the email exactly, the name or external id as a substring)
    is one the trigram index answers where the database has pg_trgm (migration 0028), so a
    search over a million customers costs its matches; without it the table is read. The
    table is tiny here, so sequential scans are priced out to see what the planner can use."""
    matches = sa.select(sa.func.count()).select_from(customer)
    statement = matches.where(*search_conditions("cfo@cargo.EXAMPLE"))
    sql = statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    trigrams = "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm')"
    async with engine.connect() as connection:
        await connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(await connection.scalars(sa.text(f"EXPLAIN {sql}")))
        found = await connection.scalar(statement)
        indexed = await connection.scalar(sa.text(trigrams))
    assert found == 1  # Cargo GmbH, by its email in another case
    if indexed:
        assert plan.count(f"Bitmap Index Scan on {CUSTOMER_SEARCH_INDEX}") == 3, plan
        assert "Seq Scan" not in plan
    else:
        assert "Seq Scan on customer" in plan


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize(
    ("sort", "cursor", "index"),
    [
        (customers_module.CustomerSort.NAME, ("Cargo GmbH", 2), "customer_name_sort_idx"),
        (
            customers_module.CustomerSort.CUSTOMER_SINCE,
            ("2024-01-01", 1),
            "customer_since_sort_idx",
        ),
    ],
)
async def test_a_page_by_name_or_since_reads_an_index_in_order(
    engine: AsyncEngine,
    sort: customers_module.CustomerSort,
    cursor: tuple[object, ...],
    index: str,
) -> None:
    """These sorts' keys have an index (migrations 0029 and 0030): a page walks it from the
    cursor instead of sorting every customer (about 0.2 s at a million). Planned as a generic
    plan of the statement as sent, its parameters unknown: a key with a parameter in it (the
    never-active customers' day, say) would match no index. Sequential scans priced out."""
    query = customers_module.CustomerQuery(sort=sort, after=cursors.encode(cursor))
    page = customers_module.page_statement(query, []).compile(dialect=engine.dialect)
    parameters = tuple(page.params[name] for name in page.positiontup or ())
    async with engine.connect() as connection:
        await connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        await connection.execute(sa.text("SET LOCAL plan_cache_mode = force_generic_plan"))
        explained = await connection.exec_driver_sql(f"EXPLAIN {page}", parameters)
        plan = "\n".join(explained.scalars())
    assert f"Index Scan using {index}" in plan, plan
    assert "Sort" not in plan


@pytest.mark.usefixtures("people")
async def test_customer_facts(metrics: MetricsEngine) -> None:
    acme = (await execute(metrics, FACTS, {"id": await customer_id(metrics, "A")}))["customer"]
    assert (acme["mrr"], acme["arr"], acme["currency"], acme["status"]) == (
        15000,
        180000,
        "USD",
        "active",
    )
    assert (acme["customerSince"], acme["churnedAt"]) == ("2024-01-01", None)
    assert acme["subscriptions"] == [
        {
            "externalId": "a1",
            "plan": "Pro",
            "quantity": 1,
            "interval": "month",
            "status": "active",
            "mrr": 15000,
            "started": "2024-01-01",
            "ended": None,
        }
    ]
    assert acme["activities"] == [
        {
            "day": "2024-03-01",
            "kind": "expansion",
            "amount": 5000,
            "description": "upgraded from Basic to Pro",
        },
        {"day": "2024-01-01", "kind": "new", "amount": 10000, "description": "subscribed to Basic"},
    ]
    bolt = (await execute(metrics, FACTS, {"id": await customer_id(metrics, "B")}))["customer"]
    assert (bolt["status"], bolt["mrr"], bolt["churnedAt"], bolt["churnedMrr"]) == (
        "churned",
        0,
        "2024-02-10",
        5000,
    )
    assert bolt["activities"][0]["description"] == "canceled Basic"


async def test_pagination_is_stable_under_inserts(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    rows = "".join(f"s{i},C{i:02},2024-01-01,,{i},P,Name {i:02},,\n" for i in range(10))
    await import_text(engine, HEADER + rows)
    first = await page(metrics, first=4)
    assert external_ids(first) == ["C00", "C01", "C02", "C03"]
    # customers inserted before and after the cursor do not shift the next page
    await import_text(
        engine, HEADER + "x,C00a,2024-01-01,,1,P,Name 00a,,\ny,C05a,2024-01-01,,1,P,Name 05a,,\n"
    )
    second = await page(metrics, first=4, after=first["pageInfo"]["endCursor"])
    assert external_ids(second) == ["C04", "C05", "C05a", "C06"]
    assert second["totalCount"] == 12


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_page_costs_the_same_number_of_statements_for_10_and_100(
    engine: AsyncEngine, metrics: MetricsEngine, statements: list[str]
) -> None:
    rows = "".join(f"s{i},C{i:03},2024-01-01,2024-03-01,{i + 1},P,,,US\n" for i in range(100))
    await import_text(engine, HEADER + rows)
    tier = AttributeDefinition("tier", "Tier", AttributeType.STRING, "csv", "")
    await attributes.create(engine, tier)
    values = ["customer,tier\n", *(f"C{i:03},gold\n" for i in range(100))]
    assert await attributes.import_csv(engine, values, "tiers.csv") == (100, 100)
    query = """query($first: Int!) { customers(first: $first, sort: MRR) { edges { node {
        mrr arr status churnedAt churnedMrr subscriptions { plan } activities { description }
        attributes { key value }
    } } } }"""
    counts = []
    for size in (10, 100):
        statements.clear()
        result = await execute(metrics, query, {"first": size})
        assert len(result["customers"]["edges"]) == size
        assert {e["node"]["attributes"][0]["value"] for e in result["customers"]["edges"]} == {
            "gold"
        }
        counts.append(len(statements))
    assert counts[0] == counts[1]
    assert counts[0] <= 9  # cube, page, count, state (2), subscriptions, activities, attributes


@pytest.mark.usefixtures("people")
async def test_bad_ids_and_cursors(metrics: MetricsEngine) -> None:
    [missing] = await execute_errors(metrics, FACTS, {"id": "999999"})
    assert missing["extensions"]["code"] == "NOT_FOUND"
    assert missing["message"] == "no customer with id 999999"
    [bad] = await execute_errors(metrics, FACTS, {"id": "acme"})
    assert bad["extensions"]["code"] == "BAD_USER_INPUT"
    [cursor] = await execute_errors(metrics, '{ customers(after: "%%%") { totalCount } }')
    assert cursor["extensions"]["code"] == "BAD_USER_INPUT"
    [first] = await execute_errors(metrics, "{ customers(first: 1000) { totalCount } }")
    assert "first must be between 1 and 200, not 1000" in first["message"]


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize(
    ("sort", "values"),
    [
        ("MRR", (-(2**63), 1)),  # its negation, which the MRR index compares, is beyond 64 bits
        ("MRR", (2**63, 1)),
        ("MRR", (-(2**70), 1)),
        ("MRR", (100, 2**63)),
        ("MRR", (100, -(2**63))),
        ("NAME", ("Acme Corp", 2**63)),
        ("NAME", ("Acme Corp", -(2**63))),
        ("CUSTOMER_SINCE", ("2024-01-01", 10**30)),
        ("CUSTOMER_SINCE", ("2024-01-01", -(2**63))),
    ],
)
async def test_a_cursor_whose_numbers_no_column_holds_is_not_a_cursor(
    metrics: MetricsEngine, sort: str, values: tuple[object, object]
) -> None:
    """An MRR of -2^63 was an INTERNAL error (negated for the index, beyond 64 bits)."""
    after = cursors.encode(values)
    query = "query($after: String, $sort: CustomerSort!) { customers(after: $after, sort: $sort) "
    [error] = await execute_errors(
        metrics, query + "{ totalCount } }", {"after": after, "sort": sort}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == f"after {after!r} is not a cursor for sort {sort}"


@pytest.mark.usefixtures("people")
async def test_a_cursor_at_the_edges_of_64_bits_still_pages(metrics: MetricsEngine) -> None:
    highest = cursors.encode((2**63 - 1, 0))
    lowest = cursors.encode((-(2**63) + 1, 2**63 - 1))
    assert external_ids(await page(metrics, sort="MRR", after=highest)) == ["C", "A", "B"]
    assert external_ids(await page(metrics, sort="MRR", after=lowest)) == []
