"""Customer attributes: definitions, typed values, imports (GraphQL upload and CLI), and the
`attr.<key>` dimensions and filters they give every metric."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app.attributes import AttributeDefinition, AttributeType
from app.attributes import dimension as attribute_dimension
from app.cli import cli
from app.metrics.mrr import MRR_CUBE, movement_source
from app.metrics.service import MetricsEngine, series_statement
from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec, SeriesRequest
from tests.conftest import execute, execute_errors, import_text, table_counts
from tests.edge import real_app, serving

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount,plan,country\n"
PEOPLE = (
    HEADER
    + """\
a1,A,2024-01-01,2024-03-01,100,Basic,US
a1,A,2024-03-01,,150,Pro,US
b1,B,2024-01-15,2024-02-10,50,Basic,GB
c1,C,2024-02-01,,200,Pro,DE
d1,D,2024-02-01,,80,Basic,US
"""
)
DEFINE = """mutation($key: String!, $label: String!, $type: AttributeType!) {
  createAttribute(key: $key, label: $label, type: $type) { key label type source dimension } }"""
SET = """mutation($id: ID!, $values: [AttributeValueInput!]!) {
  setCustomerAttributes(customerId: $id, values: $values) {
    externalId attributes { key type value text } } }"""
SERIES = """query($spec: QuerySpecInput) {
  series(start: "2024-01-01", end: "2024-03-31", spec: $spec) {
    points { mrr customers new expansion churn }
    breakdown { key points { mrr customers } } } }"""
VALUES = {
    "A": {"industry": "saas", "seats": "10", "enterprise": "no", "renewal": "2025-01-01"},
    "B": {"industry": "retail", "seats": "3"},
    "C": {"industry": "SaaS ".lower(), "seats": "25.5", "enterprise": "true"},
}


async def ids(metrics: MetricsEngine) -> dict[str, str]:
    data = await execute(metrics, "{ customers(first: 50) { edges { node { id externalId } } } }")
    return {e["node"]["externalId"]: e["node"]["id"] for e in data["customers"]["edges"]}


async def define(metrics: MetricsEngine) -> None:
    for key, kind in (
        ("industry", "STRING"),
        ("seats", "NUMBER"),
        ("enterprise", "BOOLEAN"),
        ("renewal", "DATE"),
    ):
        await execute(metrics, DEFINE, {"key": key, "label": key.title(), "type": kind})


@pytest.fixture
async def people(engine: AsyncEngine, metrics: MetricsEngine) -> dict[str, str]:
    return await with_attributes(engine, metrics)


async def with_attributes(engine: AsyncEngine, metrics: MetricsEngine) -> dict[str, str]:
    """PEOPLE imported, the four attributes defined and VALUES set; customer ids by name."""
    await import_text(engine, PEOPLE)
    await define(metrics)
    customers = await ids(metrics)
    for name, values in VALUES.items():
        pairs = [{"key": k, "value": v} for k, v in values.items()]
        await execute(metrics, SET, {"id": customers[name], "values": pairs})
    return customers


async def series(metrics: MetricsEngine, **spec: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await execute(metrics, SERIES, {"spec": spec}))["series"]
    return result


def mrr(result: dict[str, Any]) -> list[int]:
    return [point["mrr"] for point in result["points"]]


async def test_definitions_are_created_listed_and_updated(metrics: MetricsEngine) -> None:
    created = await execute(
        metrics, DEFINE, {"key": "industry", "label": "Industry", "type": "STRING"}
    )
    assert created["createAttribute"] == {
        "key": "industry",
        "label": "Industry",
        "type": "STRING",
        "source": "api",
        "dimension": "attr.industry",
    }
    updated = await execute(
        metrics,
        """mutation { updateAttribute(key: "industry", description: "NAICS sector") {
            label description } }""",
    )
    assert updated["updateAttribute"] == {"label": "Industry", "description": "NAICS sector"}
    listed = await execute(metrics, "{ attributes { key type description } }")
    assert listed["attributes"] == [
        {"key": "industry", "type": "STRING", "description": "NAICS sector"}
    ]


async def test_bad_definitions_are_refused(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    await execute(metrics, DEFINE, {"key": "industry", "label": "Industry", "type": "STRING"})
    [twice] = await execute_errors(
        metrics, DEFINE, {"key": "industry", "label": "Again", "type": "NUMBER"}
    )
    assert twice["extensions"]["code"] == "BAD_USER_INPUT"
    assert twice["message"] == "attribute 'industry' already exists"
    [bad] = await execute_errors(metrics, DEFINE, {"key": "Bad Key", "label": "", "type": "STRING"})
    assert bad["extensions"]["code"] == "BAD_USER_INPUT"
    assert "an attribute label cannot be empty" in bad["message"]
    assert "key 'Bad Key' must be lower-case letters, digits and _" in bad["message"]
    [source] = await execute_errors(
        metrics,
        'mutation { createAttribute(key: "k", label: "K", type: STRING, source: "crm") { key } }',
    )
    assert "source 'crm' is not one of: stripe, csv, api, computed" in source["message"]
    [missing] = await execute_errors(
        metrics, 'mutation { updateAttribute(key: "nope", label: "X") { key } }'
    )
    assert missing["extensions"]["code"] == "NOT_FOUND"
    assert (await table_counts(engine))["attribute"] == 1


async def test_values_are_typed_and_read_through_a_loader(
    metrics: MetricsEngine, people: dict[str, str]
) -> None:
    query = "query($id: ID!) { customer(id: $id) { attributes { key type value text } } }"
    found = (await execute(metrics, query, {"id": people["A"]}))["customer"]["attributes"]
    assert found == [
        {"key": "enterprise", "type": "BOOLEAN", "value": False, "text": "false"},
        {"key": "industry", "type": "STRING", "value": "saas", "text": "saas"},
        {"key": "renewal", "type": "DATE", "value": "2025-01-01", "text": "2025-01-01"},
        {"key": "seats", "type": "NUMBER", "value": 10, "text": "10"},
    ]
    seats = (await execute(metrics, query, {"id": people["C"]}))["customer"]["attributes"]
    assert {"key": "seats", "type": "NUMBER", "value": 25.5, "text": "25.5"} in seats
    values = await execute(metrics, '{ attributeValues(key: "industry") }')
    assert values["attributeValues"] == ["saas", "retail"]  # most frequent first


async def test_a_bad_value_changes_nothing(
    engine: AsyncEngine, metrics: MetricsEngine, people: dict[str, str]
) -> None:
    before = await table_counts(engine)
    pairs = [{"key": "industry", "value": "media"}, {"key": "seats", "value": "many"}]
    [error] = await execute_errors(metrics, SET, {"id": people["D"], "values": pairs})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "seats: 'many' is not a number (type number)"
    [unknown] = await execute_errors(
        metrics, SET, {"id": people["D"], "values": [{"key": "tier", "value": "gold"}]}
    )
    assert unknown["extensions"]["code"] == "NOT_FOUND"
    assert "no attribute 'tier'; define it first" in unknown["message"]
    [nobody] = await execute_errors(metrics, SET, {"id": "424242", "values": pairs[:1]})
    assert nobody["extensions"]["code"] == "NOT_FOUND"
    assert await table_counts(engine) == before


async def test_remove_a_value(metrics: MetricsEngine, people: dict[str, str]) -> None:
    removed = await execute(
        metrics,
        """mutation($id: ID!) { removeCustomerAttribute(customerId: $id, key: "seats") {
            attributes { key } } }""",
        {"id": people["B"]},
    )
    assert removed["removeCustomerAttribute"]["attributes"] == [{"key": "industry"}]
    [error] = await execute_errors(
        metrics,
        'mutation($id: ID!) { removeCustomerAttribute(customerId: $id, key: "x") { id } }',
        {"id": people["B"]},
    )
    assert error["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.usefixtures("people")
async def test_attribute_filters_select_customers(metrics: MetricsEngine) -> None:
    # Jan: A 100 + B 50; Feb: A 100 + C 200 + D 80 (B churned); Mar: A 150 + C 200 + D 80.
    assert mrr(await series(metrics)) == [15000, 38000, 43000]
    saas = await series(metrics, filters=[{"field": "attr.industry", "values": ["saas"]}])
    assert mrr(saas) == [10000, 30000, 35000]  # A and C
    assert [p["expansion"] for p in saas["points"]] == [0, 0, 5000]
    other = await series(
        metrics, filters=[{"field": "attr.industry", "op": "NEQ", "values": ["saas"]}]
    )
    assert mrr(other) == [5000, 8000, 8000]  # B and D (no industry is "not saas")
    assert [p["churn"] for p in other["points"]] == [0, -5000, 0]
    unset = await series(metrics, filters=[{"field": "attr.industry", "op": "IS_NULL"}])
    assert mrr(unset) == [0, 8000, 8000]  # D
    big = await series(metrics, filters=[{"field": "attr.seats", "op": "GT", "values": ["5"]}])
    assert mrr(big) == mrr(saas)
    enterprise = await series(metrics, filters=[{"field": "attr.enterprise", "values": ["yes"]}])
    assert mrr(enterprise) == [0, 20000, 20000]  # C
    renewing = await series(
        metrics, filters=[{"field": "attr.renewal", "op": "LT", "values": ["2025-06-30"]}]
    )
    assert mrr(renewing) == [10000, 10000, 15000]  # A


@pytest.mark.usefixtures("people")
async def test_attribute_breakdown_adds_up(metrics: MetricsEngine) -> None:
    result = await series(metrics, dimensions=["attr.industry"])
    by_key = {tuple(b["key"]): [p["mrr"] for p in b["points"]] for b in result["breakdown"]}
    assert by_key == {
        ("saas",): [10000, 30000, 35000],
        ("retail",): [5000, 0, 0],
        ("(none)",): [0, 8000, 8000],
    }
    totals = [sum(column) for column in zip(*by_key.values(), strict=True)]
    assert totals == mrr(result)


@pytest.mark.usefixtures("people")
async def test_attribute_dimensions_are_discovered_and_validated(metrics: MetricsEngine) -> None:
    data = await execute(
        metrics, "{ metrics { name dimensions { name kind } filters { name ops } } }"
    )
    mrr_family = data["metrics"][0]
    assert {"name": "attr.seats", "kind": "number"} in mrr_family["dimensions"]
    ops = {f["name"]: f["ops"] for f in mrr_family["filters"]}
    assert ops["attr.enterprise"] == ["EQ", "NEQ", "IS_NULL", "IS_NOT_NULL"]
    assert "GT" in ops["attr.renewal"]
    assert "CONTAINS" not in ops["attr.renewal"]
    cases = [
        ({"dimensions": ["attr.tier"]}, "unknown dimension 'attr.tier'; valid: plan, "),
        (
            {"filters": [{"field": "attr.industry", "op": "GT", "values": ["a"]}]},
            "filter attr.industry (string) does not take GT; accepted: EQ, NEQ, IN, NOT_IN, "
            "CONTAINS, IS_NULL, IS_NOT_NULL",
        ),
        (
            {"filters": [{"field": "attr.seats", "values": ["ten"]}]},
            "filter attr.seats: 'ten' is not a number",
        ),
        (
            {"filters": [{"field": "attr.renewal", "values": ["soon"]}]},
            "filter attr.renewal: 'soon' is not a date (YYYY-MM-DD)",
        ),
    ]
    for spec, message in cases:
        [error] = await execute_errors(metrics, SERIES, {"spec": spec})
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert message in error["message"], error["message"]


CSV = "customer,industry,seats\nA,media,12\nB,,4\n"


async def upload(client: Any, text: str, name: str = "attributes.csv") -> dict[str, Any]:
    operations = {
        "query": "mutation($file: Upload!) { importAttributes(file: $file) { rows values } }",
        "variables": {"file": None},
    }
    response = await client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": (name, text.encode(), "text/csv")},
    )
    result: dict[str, Any] = response.json()
    return result


async def test_import_through_a_multipart_upload(
    engine: AsyncEngine, metrics: MetricsEngine, database_url: str, people: dict[str, str]
) -> None:
    async with serving(real_app(database_url)) as client:
        result = await upload(client, CSV)
        assert result == {"data": {"importAttributes": {"rows": 2, "values": 3}}}
        before = await table_counts(engine)
        bad = "customer,industry,seats\nA,media,lots\nZ,retail,1\nA,,2\n"
        refused = await upload(client, bad, "bad.csv")
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == (
        "import failed, nothing was saved: bad.csv, line 2: seats: 'lots' is not a number "
        "(type number); bad.csv, line 3: no customer with id or external id 'Z'; bad.csv, "
        "line 4: customer 'A' is already given on line 2"
    )
    assert await table_counts(engine) == before
    industries = await series(metrics, dimensions=["attr.industry"])
    keys = {b["key"][0] for b in industries["breakdown"]}
    assert keys == {"media", "retail", "saas", "(none)"}  # B keeps retail: empty cells skip


async def test_import_through_the_cli(
    engine: AsyncEngine,
    metrics: MetricsEngine,
    database_url: str,
    people: dict[str, str],
    tmp_path: Path,
) -> None:
    env = {"TIDEMILL_DATABASE_URL": database_url}
    good = tmp_path / "attributes.csv"
    good.write_text(CSV.replace("A,", f"{people['A']},"))  # an id works as well as an external id
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["import", "attributes", str(good)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "imported 3 attribute values for 2 customers" in result.output
    media = await series(metrics, filters=[{"field": "attr.industry", "values": ["media"]}])
    assert mrr(media) == [10000, 10000, 15000]
    before = await table_counts(engine)
    bad = tmp_path / "bad.csv"
    bad.write_text("customer,tier\nA,gold\n")
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["import", "attributes", str(bad)], env=env
    )
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "bad.csv, line 1: unknown attribute(s): tier (define them first" in output
    assert await table_counts(engine) == before


async def test_a_large_cli_import_leaves_the_values_vacuumed(
    engine: AsyncEngine,
    database_url: str,
    people: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A large import from the CLI ends with VACUUM (ANALYZE) of the values, so that their
    pages are marked all-visible and their holders are read from the value indexes alone, with
    autovacuum off (as here). What the command controls is that it runs: whether a page is then
    marked depends on the snapshots other sessions hold meanwhile (a connection starting up, on
    another database, holds one back too), so the vacuum and analyze counts are checked."""
    monkeypatch.setattr("app.attributes.SETTLE_AFTER", 3)  # this import's 3 values are many
    counts = sa.text(
        "SELECT vacuum_count, analyze_count FROM pg_stat_user_tables"
        " WHERE relname = 'customer_attribute'"
    )
    async with engine.connect() as connection:
        vacuums, analyzes = (await connection.execute(counts)).one()
    good = tmp_path / "attributes.csv"
    good.write_text(CSV)
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["import", "attributes", str(good)],
        env={"TIDEMILL_DATABASE_URL": database_url},
    )
    assert result.exit_code == 0, result.output
    async with engine.connect() as connection:
        assert tuple((await connection.execute(counts)).one()) == (vacuums + 1, analyzes + 1)


async def test_an_upload_that_is_not_a_file_is_refused(metrics: MetricsEngine) -> None:
    [error] = await execute_errors(
        metrics,
        'mutation { importAttributes(file: "customer,industry") { rows } }',
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("file must be a file part of a GraphQL multipart request")


@pytest.mark.usefixtures("people")
async def test_attribute_breakdown_with_subscription_level_dimensions(
    metrics: MetricsEngine,
) -> None:
    async def by_key(*dimensions: str) -> dict[tuple[str, ...], list[int]]:
        result = await series(metrics, dimensions=list(dimensions))
        return {tuple(b["key"]): mrr(b) for b in result["breakdown"]}

    # per-plan movements as stored (plan is materialized), then the industry joined
    assert await by_key("plan", "attr.industry") == {
        ("Basic", "saas"): [10000, 10000, 0],
        ("Pro", "saas"): [0, 20000, 35000],
        ("Basic", "retail"): [5000, 0, 0],
        ("Basic", "(none)"): [0, 8000, 8000],
    }
    # movements derived from the ledger (status is not materialized)
    assert await by_key("status", "attr.industry") == {
        ("active", "saas"): [10000, 30000, 35000],
        ("active", "retail"): [5000, 0, 0],
        ("active", "(none)"): [0, 8000, 8000],
    }


def test_movements_by_attribute_read_no_customer_row() -> None:
    # An attribute is keyed by the customer's id, which every movement carries: broken down
    # or filtered by one, the movements are not joined with their customers (at a million
    # customers that join was a third of a breakdown's time); by the customer's country, they
    # are.
    def tier(kind: AttributeType) -> AttributeDefinition:
        return AttributeDefinition("tier", "Tier", kind, "csv", "")

    for kind in AttributeType:
        cube = MRR_CUBE.with_dimensions([attribute_dimension(tier(kind))])
        end = sa.bindparam("end", datetime.date(2024, 12, 31), type_=sa.Date)
        by_tier = QuerySpec(dimensions=("attr.tier",))
        filtered = QuerySpec(filters=(Filter("attr.tier", FilterOp.IS_NOT_NULL),))
        by_country = QuerySpec(dimensions=("attr.tier", "customer_country"))
        for spec, joined in ((by_tier, False), (filtered, False), (by_country, True)):
            sql = str(sa.select(movement_source(cube, spec, end)).compile())
            assert "customer_attribute" in sql
            assert ("JOIN customer ON" in sql) is joined, (kind, spec)


async def test_a_write_keeps_the_cube_and_its_statements(
    metrics: MetricsEngine, people: dict[str, str]
) -> None:
    # The cube (every attribute a dimension) is read again after each write; with the same
    # definitions it is the same cube, so a series asked again finds its statement remembered
    # (app.metrics.service) instead of building it again.
    before = await metrics.current_cube()
    pairs = [{"key": "industry", "value": "media"}]
    await execute(metrics, SET, {"id": people["D"], "values": pairs})
    after = await metrics.current_cube()
    assert after == before
    assert hash(after) == hash(before)
    request = SeriesRequest(
        datetime.date(2024, 1, 1),
        datetime.date(2024, 3, 31),
        Interval.MONTH,
        QuerySpec(dimensions=("attr.industry",)),
    )
    present = frozenset({"USD"})
    statement = series_statement(before, request, "USD", present, None)
    assert series_statement(after, request, "USD", present, None) is statement
    await execute(metrics, DEFINE, {"key": "tier", "label": "Tier", "type": "STRING"})
    assert await metrics.current_cube() != before
