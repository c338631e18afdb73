"""Dimensions added to the rollups (`tidemill rollups add status`): their breakdowns and
one-value series read rollup rows that give exactly the scan's answer, every recompute keeps
them (a first import, a chunked one, a corrected re-import), dropping them goes back to the
scan, and what cannot be rolled up, or not now, is refused saying why."""

from __future__ import annotations

import asyncio
import io
import zlib
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import apply, worker
from app.ingest.subscriptions import load_periods
from app.metrics import rollup as rollups
from app.metrics import rollup_delta
from app.metrics.plans import collecting
from app.metrics.service import MetricsEngine
from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec, SeriesRequest
from app.tables import rollup_build, rollup_build_part
from connectors.csv.subscriptions import read_periods
from connectors.registry import TRANSLATORS
from tests.conftest import import_text
from tests.edge import real_app, serving
from tests.test_auth import tidemill
from tests.test_chunked_import import applying_after_two_chunks, empty, jobs, load
from tests.test_ingest_worker import late_product_account, store
from tests.test_rollups import FIRST, LAST, company, corrected, rollup_rows, whole_ranges
from tests.test_stripe_scenario import new_source, reset

MODELS = ("flat", "per_unit", "tiered")
SPECS: tuple[QuerySpec, ...] = (
    QuerySpec(dimensions=("status",)),
    QuerySpec(dimensions=("pricing_model",)),
    QuerySpec(dimensions=("collection_method",)),
    QuerySpec(filters=(Filter("status", FilterOp.EQ, ("past_due",)),)),
    QuerySpec(filters=(Filter("pricing_model", FilterOp.EQ, ("tiered",)),)),
)
BY_STATUS = (SPECS[0], SPECS[3])


def with_models(text: str) -> str:
    """Periods with a pricing model each, chosen by the line (so that subscriptions change
    model, and a line unchanged in a corrected file keeps its own)."""
    lines = text.splitlines()
    rows = [f"{line},{MODELS[zlib.crc32(line.encode()) % len(MODELS)]}" for line in lines[1:]]
    return "\n".join([f"{lines[0]},pricing_model", *rows]) + "\n"


def priced(seed: int, customers: int) -> str:
    return with_models(company(seed, customers))


async def compared(engine: AsyncEngine, specs: tuple[QuerySpec, ...] = SPECS) -> set[str]:
    """Each spec over whole periods of every interval and over a range that cuts its first
    and last months, rollups on and off: the same answers field by field. The plans taken."""
    plans: set[str] = set()
    ranges = [*whole_ranges(FIRST, LAST), (Interval.MONTH, date(2022, 3, 9), date(2024, 5, 20))]
    for interval, start, end in ranges:
        for spec in specs:
            for fields in (frozenset(), frozenset({"mrr", "churned_customers", "customers"})):
                request = SeriesRequest(start, end, interval, spec, fields)
                answer = MetricsEngine(engine).breakdown if spec.dimensions else series_of(engine)
                with collecting() as taken:
                    rolled = await answer(request)
                scanned = await (
                    MetricsEngine(engine, rollups=False).breakdown
                    if spec.dimensions
                    else series_of(engine, rollups=False)
                )(request)
                assert [asdict(x) for x in rolled] == [asdict(x) for x in scanned], (
                    interval,
                    spec,
                )
                plans |= set(taken)
    return plans


def series_of(engine: AsyncEngine, rollups: bool = True) -> Any:
    return MetricsEngine(engine, rollups=rollups).series


async def add(engine: AsyncEngine, *names: str) -> tuple[list[str], bool]:
    added = await rollups.add_dimensions(engine, names)
    return added.names, added.built


async def drop(engine: AsyncEngine, *names: str) -> list[str]:
    async with engine.begin() as connection:
        return await rollups.drop_dimensions(connection, names)


async def dimension_rows(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        return await rollups.dimension_rows(connection)


async def test_added_dimensions_read_rollups_that_equal_the_scan(engine: AsyncEngine) -> None:
    await import_text(engine, priced(21, 60))
    assert await compared(engine) == {"scan"}
    before = await rollup_rows(engine)

    steps: list[tuple[int, int]] = []
    added = await rollups.add_dimensions(
        engine, ["pricing_model", "status", "collection_method"], progress_to(steps)
    )
    assert added == rollups.Added(["status", "pricing_model", "collection_method"], True)
    assert steps[0] == (0, 60)
    assert sum(done for done, _ in steps[1:]) == 60

    rows = await dimension_rows(engine)
    assert rows["status"] > 0
    assert rows["pricing_model"] > rows["collection_method"] > 0
    # the rows kept before are untouched, and every added row is the new dimensions'
    after = await rollup_rows(engine)
    assert [row for row in after if row[1] in rollups.OPTIONAL] == sorted(set(after) - set(before))
    assert await compared(engine) == {"rollup"}
    # a full rebuild makes the same rows
    async with engine.begin() as connection:
        await rollups.rebuild(connection)
    assert await rollup_rows(engine) == after
    # added again: nothing to do
    assert await add(engine, "status") == ([], False)


def progress_to(steps: list[tuple[int, int]]) -> Any:
    def progress(done: int, total: int) -> None:
        steps.append((done, total))

    return progress


async def test_every_recompute_keeps_the_added_dimensions(engine: AsyncEngine) -> None:
    assert await add(engine, "status", "pricing_model") == (["status", "pricing_model"], True)
    text = company(22, 60)
    await import_text(engine, with_models(text))  # a first import: a full rebuild
    built = await rollup_rows(engine)
    assert {row[1] for row in built} >= {"status", "pricing_model"}
    assert "collection_method" not in {row[1] for row in built}

    result = await import_text(engine, with_models(corrected(text, {"c1", "c2", "c3"}, 22)))
    assert 1 <= result.changed_customers <= 4  # kept by difference
    kept = await rollup_rows(engine)
    assert kept != built
    async with engine.begin() as connection:
        await rollups.rebuild(connection)
    assert await rollup_rows(engine) == kept
    assert await compared(engine, (*BY_STATUS, SPECS[1], SPECS[4])) == {"rollup"}
    assert await compared(engine, (SPECS[2],)) == {"scan"}  # not added


@pytest.mark.parametrize("names", [("status",), ("customer_country", "region")])
async def test_a_chunked_first_import_keeps_them_as_one_transaction(
    engine: AsyncEngine, names: tuple[str, ...]
) -> None:
    await add(engine, *names)
    text = with_countries(priced(23, 60))
    await load(engine, text)
    expected = await rollup_rows(engine)
    await empty(engine)  # every table, rollup_dimension included
    await add(engine, *names)
    await load(engine, text, chunk_rows=60)
    assert [state for state, _, _ in await jobs(engine)] == ["done"]
    assert await rollup_rows(engine) == expected
    assert set(names) <= {row[1] for row in expected}


async def test_dropped_dimensions_scan_again(engine: AsyncEngine) -> None:
    await import_text(engine, priced(24, 40))
    before = await rollup_rows(engine)
    await add(engine, "status", "pricing_model", "collection_method")
    assert await drop(engine, "pricing_model", "collection_method", "pricing_model") == [
        "pricing_model",
        "collection_method",
    ]
    assert set(await dimension_rows(engine)) == {"", "plan", "currency", "plan_interval", "status"}
    assert await drop(engine, "status", "collection_method") == ["status"]
    assert await rollup_rows(engine) == before
    assert await compared(engine) == {"scan"}


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["customer_age"], "'customer_age' cannot be rolled up (it is read neither from the"),
        (["attr.segment"], "'attr.segment' cannot be rolled up"),
        (["plan"], "'plan' is always rolled up; accepted: status, pricing_model, collection"),
        (["status", "nope"], "'nope' is not a dimension; accepted: status, pricing_model, "),
        ([], "name a dimension to roll up: status, pricing_model, collection_method"),
    ],
)
async def test_what_cannot_be_rolled_up_is_refused(
    engine: AsyncEngine, names: list[str], message: str
) -> None:
    with pytest.raises(rollups.DimensionError) as refused:
        await add(engine, *names)
    assert str(refused.value).startswith(message)
    with pytest.raises(rollups.DimensionError):
        await drop(engine, *names)
    assert await dimension_rows(engine) == {}
    async with engine.connect() as connection:
        assert await connection.scalar(sa.text("SELECT count(*) FROM rollup_dimension")) == 0


async def test_not_while_a_chunked_import_is_applied(engine: AsyncEngine) -> None:
    text = priced(25, 60)
    await applying_after_two_chunks(engine, text)
    for change in (add, drop):
        with pytest.raises(rollups.DimensionError) as refused:
            await change(engine, "status")
        assert "an import is being applied (import job" in str(refused.value)
    await load(engine, text, chunk_rows=60)  # resumed to its end
    assert await add(engine, "status") == (["status"], True)
    assert await compared(engine, BY_STATUS) == {"rollup"}


async def test_rollups_marked_behind_get_the_dimension_at_their_rebuild(
    engine: AsyncEngine,
) -> None:
    await import_text(engine, priced(26, 40))
    async with engine.begin() as connection:
        await rollups.request_rebuild(connection)
    assert await add(engine, "status") == (["status"], False)
    assert "status" not in await dimension_rows(engine)
    assert await compared(engine, BY_STATUS) == {"scan"}  # behind: everything scans
    async with engine.begin() as connection:
        assert await rollups.rebuild_if_requested(connection)
    assert (await dimension_rows(engine))["status"] > 0
    assert await compared(engine, BY_STATUS) == {"rollup"}


async def wait_for_lock(engine: AsyncEngine) -> None:
    """Until some backend waits for an advisory lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
    )
    for _ in range(500):
        async with engine.connect() as connection:
            if await connection.scalar(query):
                return
        await asyncio.sleep(0.02)
    raise AssertionError("nothing waited for the advisory lock")


async def test_adding_waits_for_the_recomputes_under_way(engine: AsyncEngine) -> None:
    """A recompute reads the dimensions to keep under the shared lock: a dimension added
    meanwhile waits for it to commit, then builds from what it wrote."""
    await import_text(engine, priced(27, 30))
    async with engine.begin() as recompute:
        assert await rollups.kept(recompute) == ["plan", "currency", "plan_interval"]
        adding = asyncio.create_task(add(engine, "status"))
        await wait_for_lock(engine)
        assert not adding.done()
    assert await adding == (["status"], True)
    async with engine.begin() as recompute:
        assert await rollups.kept(recompute) == ["plan", "currency", "plan_interval", "status"]


BY_PRODUCT = (
    QuerySpec(dimensions=("product",)),
    QuerySpec(filters=(Filter("product", FilterOp.EQ, ("API",)),)),
    QuerySpec(filters=(Filter("product", FilterOp.EQ, ("Seats",)),)),
    QuerySpec(filters=(Filter("product", FilterOp.EQ, ("Seats Pro",)),)),
)


async def test_rolled_up_products_follow_a_plan_whose_product_changes(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A price's product arrives after its subscribers, then is renamed: each time the plan's
    product changes under customers whose ledger is already derived (app.ingest.apply moves
    their `product` rows before the recompute reads them, a few customers per statement)."""
    monkeypatch.setattr(apply, "CHUNK_CUSTOMERS", 3)  # the 8 customers of the plan: 3 statements
    account = late_product_account(8)
    product = account.events.pop()  # product.created, delivered after the customers
    # more customers on another product, so that the recomputes are incremental (under half)
    account.product("prod_api", "API", date(2024, 1, 1))
    account.price("price_api", "prod_api", date(2024, 1, 1), 2500)
    for number in range(12):
        day = date(2024, 2, 1) + timedelta(days=3 * number)
        account.customer(f"cus_api_{number:02d}", day, "2025")
        account.subscribe(f"sub_api_{number:02d}", f"cus_api_{number:02d}", day, [("price_api", 1)])
    account.rename_product("prod_seat", "Seats Pro", date(2024, 6, 1))
    renamed = account.events.pop()
    await reset(engine)
    await new_source(engine)
    assert await add(engine, "product") == (["product"], True)
    for events in (account.events, [product], [renamed]):
        await store(engine, events)
        await worker.drain(engine, TRANSLATORS)
        kept = await rollup_rows(engine)
        assert {row[1] for row in kept} >= {"product"}
        async with engine.begin() as connection:
            await rollups.rebuild(connection)
        assert await rollup_rows(engine) == kept  # the upkeep's rows are a rebuild's
        assert await compared(engine, BY_PRODUCT) == {"rollup"}
    async with engine.connect() as connection:
        names = await connection.scalars(sa.text("SELECT DISTINCT product FROM plan"))
        assert set(names) == {"Seats Pro", "API"}


class Stop(Exception):
    """Raised from a build's progress: the run interrupted after some committed slices."""


def stopping_after(slices: int, steps: list[tuple[int, int]] | None = None) -> Any:
    """A progress that raises Stop once `slices` slices were committed."""
    seen: list[tuple[int, int]] = [] if steps is None else steps

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) > slices:  # (0, total) first, then one per committed slice
            raise Stop

    return progress


async def build_state(engine: AsyncEngine) -> tuple[Any, int]:
    """The unfinished build's row (or None) and its parts."""
    async with engine.connect() as connection:
        row = (await connection.execute(sa.select(rollup_build))).first()
        parts = await connection.scalar(sa.select(sa.func.count()).select_from(rollup_build_part))
    return row, int(parts or 0)


async def customer_ids(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as connection:
        low, high = (
            await connection.execute(sa.text("SELECT min(id), max(id) FROM customer"))
        ).one()
    return int(low), int(high)


async def test_an_interrupted_add_resumes_after_its_last_committed_slice(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await import_text(engine, priced(30, 60))
    low, high = await customer_ids(engine)
    total = high - low + 1
    monkeypatch.setattr(rollups, "CHUNK_CUSTOMERS", 10)
    with pytest.raises(Stop):
        await rollups.add_dimensions(engine, ["status"], stopping_after(2))
    row, parts = await build_state(engine)
    assert (row.dimensions, row.next_customer) == (["status"], low + 20)
    assert parts > 0
    # nothing is rolled up until the build ends: its queries scan, exactly
    assert "status" not in await dimension_rows(engine)
    assert await compared(engine, BY_STATUS) == {"scan"}
    listed = await tidemill(database_url, "rollups", "list", "--format", "csv")
    assert f"status,no (an interrupted add built {20 / total:.0%}: run it again to resume),0" in (
        listed.output.splitlines()
    ), listed.output

    steps: list[tuple[int, int]] = []
    added = await rollups.add_dimensions(engine, ["status"], progress_to(steps))
    assert added == rollups.Added(["status"], True, low + 20)
    assert steps[:2] == [(0, total), (20, total)]  # the ids done before, then each slice left
    assert sum(done for done, _ in steps[2:]) == total - 20
    assert len(steps[2:]) == -(-(total - 20) // 10)
    assert await build_state(engine) == (None, 0)
    built = await rollup_rows(engine)
    async with engine.begin() as connection:  # the same rows as built in one run
        await rollups.rebuild(connection)
    assert await rollup_rows(engine) == built
    assert await compared(engine, BY_STATUS) == {"rollup"}


async def sparse_company(engine: AsyncEngine) -> None:
    """30 customers, then 10 of another source whose ids start after a gap of a million (the
    gaps customers removed, or ids an insert drew and rolled back, leave)."""
    await import_text(engine, priced(41, 30))
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("SELECT setval(pg_get_serial_sequence('customer', 'id'), 1000000)")
        )
    _, rows = read_periods(io.StringIO(priced(42, 10)), "USD")
    await load_periods(engine, rows, filename="late.csv", sha256="late", source="late")


async def test_slices_hold_customers_not_id_ranges(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sparse_company(engine)
    monkeypatch.setattr(rollups, "CHUNK_CUSTOMERS", 10)
    kept = await rollup_rows(engine)
    slices = [(0, 40), (10, 40), (10, 40), (10, 40), (10, 40)]  # not 100,001 ranges of 10 ids
    steps: list[tuple[int, int]] = []
    async with engine.begin() as connection:
        await rollups.rebuild(connection, progress_to(steps))
    assert steps == slices
    assert await rollup_rows(engine) == kept
    steps = []
    checked = await rollups.check(engine, progress_to(steps), per_slice=10)
    assert (checked.differences, sorted(steps)) == (0, slices)

    # an add interrupted after two slices resumes from the 21st customer
    with pytest.raises(Stop):
        await rollups.add_dimensions(engine, ["status"], stopping_after(2))
    async with engine.connect() as connection:
        assert await rollups.unfinished_build(connection) == (["status"], 20, 40)
    steps = []
    await rollups.add_dimensions(engine, ["status"], progress_to(steps))
    assert steps == [(0, 40), (20, 40), (10, 40), (10, 40)]
    assert await compared(engine, BY_STATUS) == {"rollup"}


async def test_an_interrupted_add_starts_again_when_something_was_written_since(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = company(31, 40)
    await import_text(engine, with_models(text))
    monkeypatch.setattr(rollups, "CHUNK_CUSTOMERS", 10)
    with pytest.raises(Stop):
        await rollups.add_dimensions(engine, ["status"], stopping_after(1))
    # a recompute meanwhile (the build's lock was released with its connection): the slice
    # committed may hold the customers' contribution as they were
    result = await import_text(engine, with_models(corrected(text, {"c1", "c2"}, 31)))
    assert result.changed_customers >= 1
    steps: list[tuple[int, int]] = []
    added = await rollups.add_dimensions(engine, ["status"], progress_to(steps))
    assert added == rollups.Added(["status"], True, None, ("status",))
    assert sum(done for done, _ in steps[1:]) == steps[0][1]  # every customer id again
    built = await rollup_rows(engine)
    async with engine.begin() as connection:
        await rollups.rebuild(connection)
    assert await rollup_rows(engine) == built
    assert await compared(engine, BY_STATUS) == {"rollup"}


async def test_dropping_it_or_adding_others_discards_an_interrupted_add(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await import_text(engine, priced(32, 30))
    monkeypatch.setattr(rollups, "CHUNK_CUSTOMERS", 10)
    with pytest.raises(Stop):
        await rollups.add_dimensions(engine, ["status"], stopping_after(1))
    assert (await build_state(engine))[0] is not None
    assert await drop(engine, "status") == []  # it was not rolled up yet
    assert await build_state(engine) == (None, 0)

    with pytest.raises(Stop):
        await rollups.add_dimensions(engine, ["status"], stopping_after(1))
    added = await tidemill(database_url, "rollups", "add", "pricing_model")
    assert added.exit_code == 0, added.output
    assert "rolled up: pricing_model (the interrupted add of status was discarded)" in (
        " ".join(added.output.split())
    )
    assert await build_state(engine) == (None, 0)
    rows = await dimension_rows(engine)
    assert "status" not in rows
    assert rows["pricing_model"] > 0
    assert await compared(engine, (SPECS[1],)) == {"rollup"}
    assert await compared(engine, (SPECS[0],)) == {"scan"}


async def test_the_cli_lists_adds_and_drops(engine: AsyncEngine, database_url: str) -> None:
    await import_text(engine, priced(28, 20))
    added = await tidemill(database_url, "rollups", "add", "status")
    assert added.exit_code == 0, added.output
    assert "rolled up: status" in added.output
    listed = await tidemill(database_url, "rollups", "list", "--format", "csv")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == "dimension,rolled up,rows"
    found = {line.split(",")[0]: line.split(",")[1:] for line in lines[1:]}
    assert found["plan"][0] == "always"
    assert int(found["plan"][1]) > 0
    assert found["status"][0] == "yes"
    assert int(found["status"][1]) > 0
    assert found["pricing_model"] == ["no", "0"]
    assert found["region"] == ["no", "0"]
    refused = await tidemill(database_url, "rollups", "add", "customer_age")
    assert refused.exit_code == 1
    assert "'customer_age' cannot be rolled up" in refused.output
    dropped = await tidemill(database_url, "rollups", "drop", "status")
    assert dropped.exit_code == 0, dropped.output
    assert "no longer rolled up: status" in dropped.output
    assert "status" not in await dimension_rows(engine)


BY_STATUS_QUERY = """
query ByStatus($spec: QuerySpecInput) {
  series(start: "2022-01-01", end: "2024-12-31", interval: MONTH, spec: $spec) {
    breakdown { key points { date mrr newCustomers churnedCustomers nrr } }
  }
}
"""


async def test_a_running_server_reads_a_dimension_added_after_it_started(
    engine: AsyncEngine, database_url: str
) -> None:
    """Its caches are keyed by the data version, which adding a dimension moves: the next
    request reads the rollups, with the same answer the scan gave."""
    await import_text(engine, priced(29, 40))
    body = {"query": BY_STATUS_QUERY, "variables": {"spec": {"dimensions": ["status"]}}}
    async with serving(real_app(database_url)) as client:
        scanned = (await client.post("/graphql", json=body)).json()
        assert scanned["extensions"]["plan"] == "scan"
        assert len(scanned["data"]["series"]["breakdown"]) >= 2
        await add(engine, "status")
        rolled = (await client.post("/graphql", json=body)).json()
        assert rolled["extensions"]["plan"] == "rollup"
        assert rolled["data"] == scanned["data"]
        await drop(engine, "status")
        again = (await client.post("/graphql", json=body)).json()
        assert again["extensions"]["plan"] == "scan"
        assert again["data"] == scanned["data"]


# --- customer-level dimensions: read from the customer row ---------------------------------

COUNTRIES = ("US", "DE", "BR", "JP", "FR", "")  # "" gives no country: "(none)"
BY_COUNTRY: tuple[QuerySpec, ...] = (
    QuerySpec(dimensions=("customer_country",)),
    QuerySpec(dimensions=("region",)),
    QuerySpec(filters=(Filter("customer_country", FilterOp.EQ, ("DE",)),)),
    QuerySpec(filters=(Filter("region", FilterOp.EQ, ("Latin America",)),)),
)


def with_countries(text: str, moved: dict[str, str] | None = None) -> str:
    """The periods with each customer's country (chosen by its id, or `moved`'s)."""
    lines = text.splitlines()
    rows = []
    for line in lines[1:]:
        customer = line.split(",")[1]
        country = COUNTRIES[zlib.crc32(customer.encode()) % len(COUNTRIES)]
        rows.append(f"{line},{(moved or {}).get(customer, country)}")
    return "\n".join([f"{lines[0]},country", *rows]) + "\n"


async def countries(engine: AsyncEngine) -> dict[str, str | None]:
    async with engine.connect() as connection:
        found = await connection.execute(sa.text("SELECT external_id, country FROM customer"))
        return {str(external): country for external, country in found}


async def kept_as_rebuilt(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    """The rollup rows, checked equal to a full rebuild's (which then replaces them)."""
    kept = await rollup_rows(engine)
    async with engine.begin() as connection:
        await rollups.rebuild(connection)
    assert await rollup_rows(engine) == kept
    return kept


async def test_rolled_up_countries_and_regions_equal_the_scan(engine: AsyncEngine) -> None:
    await import_text(engine, with_countries(company(31, 60)))
    assert await compared(engine, BY_COUNTRY) == {"scan"}
    before = await rollup_rows(engine)
    assert await add(engine, "region", "customer_country") == (
        ["customer_country", "region"],
        True,
    )
    after = await kept_as_rebuilt(engine)
    by_dimension = {row[1] for row in sorted(set(after) - set(before))}
    assert by_dimension == {"customer_country", "region"}
    values = {row[2] for row in after if row[1] == "customer_country"}
    assert {"US", "DE", "BR", "JP", "FR", "(none)"} <= values
    assert await compared(engine, BY_COUNTRY) == {"rollup"}


async def test_rolled_up_countries_follow_customers_who_move(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer whose country changes, with or without a change to its subscriptions, in
    an import in one transaction and in a chunked one: its rows move from the old country
    and region to the new ones (the customer table's trigger, then the recompute, a few
    customers per statement)."""
    monkeypatch.setattr(rollup_delta, "CHUNK_CUSTOMERS", 3)  # the 4 movers: 2 slices
    assert await add(engine, "customer_country", "region") == (
        ["customer_country", "region"],
        True,
    )
    text = company(32, 60)
    await import_text(engine, with_countries(text))  # a first import: a full rebuild
    first = await rollup_rows(engine)
    stored = await countries(engine)
    movers = {"c1": "JP", "c2": "BR", "c3": "DE", "c7": "FR"}
    assert all(stored[c] != country for c, country in movers.items())
    assert None in {stored[c] for c in movers}  # one of them had no country

    result = await import_text(engine, with_countries(text, movers))  # only countries change
    assert result.changed_customers == 0
    assert await countries(engine) == stored | movers
    moved = await kept_as_rebuilt(engine)
    assert moved != first
    assert await compared(engine, BY_COUNTRY) == {"rollup"}

    # countries and subscriptions changed together, a customer never seen before
    again = {"c1": "FR", "c4": "JP", "c9999": "DE"}
    result = await import_text(
        engine, with_countries(corrected(text, {"c1", "c4", "c5"}, 32), again)
    )
    assert result.changed_customers >= 3
    assert (await countries(engine))["c1"] == "FR"
    assert await kept_as_rebuilt(engine) != moved
    assert await compared(engine, BY_COUNTRY) == {"rollup"}

    # a chunked import of the whole file moving others, chunks side by side
    chunked = {"c1": "US", "c2": "JP", "c10": "BR", "c11": "DE", "c12": "FR"}
    await load(engine, with_countries(text, movers | chunked), chunk_rows=60)
    assert [state for state, _, _ in await jobs(engine)][-1] == "done"
    assert (await countries(engine))["c12"] == "FR"
    await kept_as_rebuilt(engine)
    assert await compared(engine, BY_COUNTRY) == {"rollup"}


async def test_rolled_up_countries_follow_a_source_customer_who_moves(engine: AsyncEngine) -> None:
    """A Stripe customer's address moves (customer.updated, no subscription change): the
    worker's recompute moves its rows."""
    account = late_product_account(4)
    for number in range(12):  # more customers, so that the recomputes are incremental
        day = date(2024, 2, 1) + timedelta(days=3 * number)
        account.customer(f"cus_de_{number:02d}", day, "2025", country="DE")
        account.subscribe(f"sub_de_{number:02d}", f"cus_de_{number:02d}", day, [("price_seat", 1)])
    await reset(engine)
    await new_source(engine)
    assert await add(engine, "customer_country", "region") == (
        ["customer_country", "region"],
        True,
    )
    await store(engine, account.events)
    await worker.drain(engine, TRANSLATORS)
    before = await kept_as_rebuilt(engine)
    account.events.clear()
    account.move_customer("cus_00", "BR", date(2024, 7, 1))
    account.move_customer("cus_de_03", "US", date(2024, 7, 1))
    await store(engine, account.events)
    await worker.drain(engine, TRANSLATORS)
    after = await kept_as_rebuilt(engine)
    assert after != before
    moved = {row[2] for row in set(after) - set(before) if row[1] == "customer_country"}
    assert "BR" in moved
    assert await compared(engine, BY_COUNTRY) == {"rollup"}


async def test_the_trigger_records_moves_only_while_a_customer_dimension_is_rolled_up(
    engine: AsyncEngine,
) -> None:
    await import_text(engine, with_countries(company(33, 20)))
    move = sa.text("UPDATE customer SET country = 'NZ' WHERE external_id IN ('c1', 'c2')")
    recorded = sa.text("SELECT to_regclass('pg_temp.customer_moved') IS NOT NULL")
    for names, expected in (((), False), (("status",), False), (("region",), True)):
        if names:
            await add(engine, *names)
        async with engine.connect() as connection:
            await connection.execute(move)
            assert await connection.scalar(recorded) is expected
            await connection.rollback()
