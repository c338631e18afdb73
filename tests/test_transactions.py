"""One mutation operation, one transaction: its fields are saved together or not at all."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from tests.conftest import execute, execute_errors, import_text, table_counts
from tests.edge import real_app, serving
from tests.test_attributes import PEOPLE, ids

SETUP = """mutation Setup($customer: ID!) {
  createAttribute(key: "tier", label: "Tier", type: STRING) { key }
  setCustomerAttributes(customerId: $customer, values: [{key: "tier", value: "gold"}]) {
    externalId mrr status attributes { key value } subscriptions { plan mrr }
    activities { day kind amount }
  }
  createSegment(name: "Gold", definition: {field: "attr.tier", values: ["gold"]}) { id name }
}"""
BROKEN_LAST = SETUP.replace(
    "}\n}", '}\n  broken: createSegment(name: "Bad", definition: {field: "nope"}) { id }\n}'
)
STATE = "{ attributes { key } segments { name } }"


async def saved(metrics: MetricsEngine) -> dict[str, Any]:
    return await execute(metrics, STATE)


async def customer_a(engine: AsyncEngine, metrics: MetricsEngine) -> str:
    await import_text(engine, PEOPLE)
    return (await ids(metrics))["A"]


async def test_every_field_is_saved_and_sees_the_earlier_ones(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    customer = await customer_a(engine, metrics)
    data = await execute(metrics, SETUP, {"customer": customer})
    assert data["setCustomerAttributes"]["attributes"] == [{"key": "tier", "value": "gold"}]
    assert data["setCustomerAttributes"]["subscriptions"] == [{"plan": "Pro", "mrr": 15000}]
    assert len(data["setCustomerAttributes"]["activities"]) == 2
    assert data["createSegment"]["name"] == "Gold"  # attr.tier, created by the first field
    assert await saved(metrics) == {"attributes": [{"key": "tier"}], "segments": [{"name": "Gold"}]}


async def test_a_failing_last_field_leaves_nothing_of_the_first_ones(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    customer = await customer_a(engine, metrics)
    before = await table_counts(engine)
    errors = await execute_errors(metrics, BROKEN_LAST, {"customer": customer})
    assert [error["path"] for error in errors] == [["broken"]]
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await saved(metrics) == {"attributes": [], "segments": []}
    assert await table_counts(engine) == before


async def test_a_rerun_fails_whole_and_keeps_the_first_run(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    customer = await customer_a(engine, metrics)
    await execute(metrics, SETUP, {"customer": customer})
    state = await saved(metrics)
    errors = await execute_errors(metrics, SETUP, {"customer": customer})
    assert errors[0]["message"] == "attribute 'tier' already exists"
    assert await saved(metrics) == state


async def post(client: Any, body: Any) -> Any:
    return (await client.post("/graphql", json=body)).json()


async def test_over_http_each_operation_of_a_batch_is_its_own_transaction(
    engine: AsyncEngine, metrics: MetricsEngine, database_url: str
) -> None:
    customer = await customer_a(engine, metrics)
    variables = {"customer": customer}
    async with serving(real_app(database_url)) as client:
        refused = await post(client, {"query": BROKEN_LAST, "variables": variables})
        assert refused["data"] is None
        assert await saved(metrics) == {"attributes": [], "segments": []}
        batch = [
            {"query": SETUP, "variables": variables},
            {"query": 'mutation { createSegment(name: "Bad", definition: {field: "no"}) { id } }'},
            {"query": "{ segments { name } }"},
        ]
        first, second, third = await post(client, batch)
    assert first["data"]["createSegment"]["name"] == "Gold"
    assert second["data"] is None
    assert third["data"]["segments"] in ([], [{"name": "Gold"}])  # ran beside the mutation
    assert await saved(metrics) == {"attributes": [{"key": "tier"}], "segments": [{"name": "Gold"}]}


async def test_two_imports_in_one_operation(
    engine: AsyncEngine, metrics: MetricsEngine, database_url: str
) -> None:
    await import_text(engine, PEOPLE)
    await execute(
        metrics, 'mutation { createAttribute(key: "tier", label: "T", type: STRING) { key } }'
    )
    operations = {
        "query": "mutation($a: Upload!, $b: Upload!) { first: importAttributes(file: $a) { rows }"
        " second: importAttributes(file: $b) { rows } }",
        "variables": {"a": None, "b": None},
    }
    files = {
        "0": ("a.csv", b"customer,tier\nA,gold\n", "text/csv"),
        "1": ("b.csv", b"customer,tier\nB,silver\n", "text/csv"),
    }
    mapping = {"0": ["variables.a"], "1": ["variables.b"]}
    async with serving(real_app(database_url)) as client:
        response = await client.post(
            "/graphql",
            data={"operations": json.dumps(operations), "map": json.dumps(mapping)},
            files=files,
        )
    assert response.json() == {"data": {"first": {"rows": 1}, "second": {"rows": 1}}}
    values = await execute(metrics, '{ attributeValues(key: "tier") }')
    assert sorted(values["attributeValues"]) == ["gold", "silver"]
