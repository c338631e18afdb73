"""The dashboard in a real browser (Playwright driving Debian's chromium) against a real server
on the demo company: every figure on screen is the API's, the controls and the URL drive the
views, a drill-down reaches a customer, a partner key can use it, and no request leaves the
server's origin. Each test saves screenshots under tests/artifacts/ (gitignored)."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.browser import Visit, chromium, delete_keys, demo_database, screenshot, visit
from tests.conftest import _server_url
from tests.edge import bearer, new_key, real_app, running

PHONE = {"width": 390, "height": 844}
TIMEOUT = 20_000  # ms; the machine is shared


@pytest.fixture(scope="module")
async def demo_url() -> AsyncIterator[str]:
    async with demo_database(_server_url()) as url:
        yield url


@pytest.fixture(scope="module")
def server(demo_url: str) -> Iterator[str]:
    with running(real_app(demo_url)) as base:
        yield base


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as found:
        yield found


async def rendered(page: Page, chart: str) -> None:
    await page.wait_for_selector(f'[data-chart="{chart}"][data-rendered="true"]', timeout=TIMEOUT)


def graphql_requests(seen: Visit, name: str) -> list[dict[str, Any]]:
    """The persisted-query requests the page sent for `name`: their query parameters."""
    found = []
    for url in seen.requests:
        parts = urlsplit(url)
        if parts.path != "/graphql" or not parts.query:
            continue
        params = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if params.get("operationName") == name:
            found.append(params)
    return found


def _resend(server: str, params: dict[str, Any], key: str | None = None) -> httpx.Response:
    """The same request the page sent (the same hash and variables), sent again."""
    body = {
        "variables": json.loads(params["variables"]),
        "extensions": json.loads(params["extensions"]),
    }
    return httpx.post(f"{server}/graphql", json=body, headers=bearer(key), timeout=60)


def replay(server: str, params: dict[str, Any], key: str | None = None) -> Any:
    """The API's answer to the same request the page sent."""
    response = _resend(server, params, key)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def replay_errors(server: str, params: dict[str, Any]) -> Any:
    """The API's errors for the same request the page sent."""
    return _resend(server, params).json()["errors"]


async def clean_visit(seen: Visit, server: str) -> None:
    """Nothing left the origin, no CSP violation, no uncaught error; only hashes were sent."""
    assert seen.foreign(server) == []
    watched = await seen.watched()
    assert watched == {"violations": [], "errors": []}
    for url in seen.requests:
        parts = urlsplit(url)
        if parts.path == "/graphql" and parts.query:
            params = parse_qs(parts.query)
            assert "query" not in params, url
            assert json.loads(params["extensions"][0])["persistedQuery"]["sha256Hash"]


async def test_the_overview_shows_the_apis_figures(browser: Browser, server: str) -> None:
    async with visit(browser) as seen:
        await seen.page.goto(f"{server}/")
        await rendered(seen.page, "mrr")
        await rendered(seen.page, "movements")
        await rendered(seen.page, "waterfall")
        [sent] = graphql_requests(seen, "DashboardOverview")
        series = replay(server, sent)["series"]
        tiles = seen.page.locator("[data-tile]")
        assert await tiles.count() == 8
        for index in range(8):
            tile = tiles.nth(index)
            field = await tile.get_attribute("data-tile")
            assert field is not None
            value = await tile.get_attribute("data-value")
            expected = series[field]["current"]
            assert value == ("" if expected is None else _js_number(expected)), field
            change = series[field]["percentageChange"]
            assert await tile.locator(".change").get_attribute("data-change") == (
                "" if change is None else _js_number(change)
            )
            text = await tile.locator(".value").inner_text()
            assert text == "—" if expected is None else any(c.isdigit() for c in text)
        await screenshot(seen.page, "overview")
        await clean_visit(seen, server)


def _js_number(value: float) -> str:
    """A JSON number as JavaScript's String() writes it."""
    return str(int(value)) if float(value).is_integer() else repr(value)


async def test_breakdown_and_interval_update_the_chart(browser: Browser, server: str) -> None:
    async with visit(browser) as seen:
        page = seen.page
        await page.goto(f"{server}/")
        await rendered(page, "mrr")
        await page.select_option("select[name=dimension]", "plan")
        await page.wait_for_selector("#mrr-title:has-text('MRR by breakdown')", timeout=TIMEOUT)
        await rendered(page, "mrr")
        [sent] = graphql_requests(seen, "DashboardBreakdown")
        assert json.loads(sent["variables"])["top"] == 8
        entries = replay(server, sent)["series"]["breakdown"]
        assert 1 < len(entries) <= 9
        headers = await _table_headers(page, "mrr")
        assert headers[2:] == [*(f"{entry['label']} mrr_cents" for entry in entries), "Details"]
        await page.select_option("select[name=interval]", "QUARTER")
        await page.wait_for_function(
            "() => new URLSearchParams(location.search).get('interval') === 'QUARTER'"
        )
        await _until_sent(seen, "DashboardBreakdown", 2)
        await rendered(page, "mrr")
        quarterly = replay(server, graphql_requests(seen, "DashboardBreakdown")[-1])
        points = quarterly["series"]["breakdown"][0]["points"]
        rows = page.locator('figure:has([data-chart="mrr"]) tbody tr')
        await rows.first.wait_for(state="attached")
        assert await rows.count() == len(points)
        assert "dimension=plan" in page.url
        await screenshot(page, "overview-breakdown-quarterly")
        await clean_visit(seen, server)


async def _until_sent(seen: Visit, name: str, count: int) -> None:
    for _ in range(200):
        if len(graphql_requests(seen, name)) >= count:
            return
        await seen.page.wait_for_timeout(50)
    raise AssertionError(f"{name} was not sent {count} times")


async def _table_headers(page: Page, chart: str) -> list[str]:
    figure = page.locator(f'figure:has([data-chart="{chart}"])')
    return [text.strip() for text in await figure.locator("thead th").all_text_contents()]


async def test_a_drill_down_reaches_a_customer(browser: Browser, server: str) -> None:
    async with visit(browser) as seen:
        page = seen.page
        await page.goto(f"{server}/?range=all")
        await rendered(page, "movements")
        [sent] = graphql_requests(seen, "DashboardOverview")
        points = replay(server, sent)["series"]["points"]
        index = max(i for i, point in enumerate(points) if point["churn"] < 0)
        figure = page.locator('figure:has([data-chart="movements"])')
        await figure.locator("summary").click()
        await figure.locator("tbody tr").nth(index).locator('button[data-drill="churn"]').click()
        totals = page.locator("[data-total-amount]")
        await totals.wait_for(timeout=TIMEOUT)
        # The churned customers of that period, adding up to the bar that was clicked.
        assert await totals.get_attribute("data-total-amount") == str(points[index]["churn"])
        assert f"from={points[index]['date']}" in page.url
        assert "kind=churn" in page.url
        await screenshot(page, "movements")
        await page.locator("table.movements tbody tr a").first.click()
        await page.wait_for_selector("#customer-title", timeout=TIMEOUT)
        await rendered(page, "customer-mrr")
        assert "view=customer" in page.url
        assert await page.locator('[data-fact="status"]').inner_text() in {"churned", "active"}
        await screenshot(page, "customer")
        await page.go_back()
        await page.wait_for_selector("[data-total-amount]", timeout=TIMEOUT)
        await clean_visit(seen, server)


async def test_a_breakdown_line_drills_into_its_own_scope(browser: Browser, server: str) -> None:
    async with visit(browser) as seen:
        page = seen.page
        await page.goto(f"{server}/?range=all&dimension=plan")
        await rendered(page, "mrr")
        [sent] = graphql_requests(seen, "DashboardBreakdown")
        entries = replay(server, sent)["series"]["breakdown"]
        plan = entries[0]["key"][-1]
        period = entries[0]["points"][-1]
        drill = f"?view=movements&from={period['date']}&to={period['endDate']}&scope=plan~EQ~{plan}"
        await page.goto(f"{server}/{drill}")
        totals = page.locator("[data-total-amount]")
        await totals.wait_for(timeout=TIMEOUT)
        [movements] = graphql_requests(seen, "DashboardMovements")
        variables = json.loads(movements["variables"])
        assert variables["spec"]["filters"] == [{"field": "plan", "op": "EQ", "values": [plan]}]
        page_total = replay(server, movements)["movements"]["totalAmount"]
        assert await totals.get_attribute("data-total-amount") == str(page_total)
        assert plan in await page.locator("h1").inner_text()
        await clean_visit(seen, server)


async def test_the_url_round_trips_a_view(browser: Browser, server: str) -> None:
    query = "?view=cohorts&range=all&interval=QUARTER&currency=EUR&cohorts=mrr"
    async with visit(browser) as seen:
        page = seen.page
        await page.goto(f"{server}/{query}")
        await rendered(page, "cohorts")
        assert await page.input_value("select[name=range]") == "all"
        assert await page.input_value("select[name=interval]") == "QUARTER"
        assert await page.input_value("select[name=currency]") == "EUR"
        assert await page.locator("input[name=cohorts]").nth(1).is_checked()
        [sent] = graphql_requests(seen, "DashboardCohorts")
        assert json.loads(sent["variables"])["spec"]["currency"] == "EUR"
        await page.get_by_role("link", name="Trials").click()
        await rendered(page, "trials")
        assert "view=trials" in page.url
        await page.go_back()
        await rendered(page, "cohorts")
        assert urlsplit(page.url).query == query[1:]
        await page.reload()
        await rendered(page, "cohorts")
        assert await page.input_value("select[name=currency]") == "EUR"
        await clean_visit(seen, server)


VIEWS = ("overview", "cohorts", "trials", "churn", "usage", "access")
READY = {"overview": "mrr", "cohorts": "cohorts", "trials": "trials", "usage": "usage"}


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
async def test_every_view_at_desktop_and_phone_width(
    browser: Browser, server: str, viewport: str
) -> None:
    size = PHONE if viewport == "phone" else {"width": 1280, "height": 900}
    async with visit(browser, **size) as seen:
        page = seen.page
        for view in VIEWS:
            await page.goto(f"{server}/?view={view}&range=all")
            if view in READY:
                await rendered(page, READY[view])
            elif view == "churn":
                await page.wait_for_selector("[data-list=revenue] tbody tr", timeout=TIMEOUT)
            else:
                await page.wait_for_selector("[data-scopes]", timeout=TIMEOUT)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{view} scrolls sideways at {size['width']} px"
            await screenshot(page, f"{view}-{viewport}")
        await clean_visit(seen, server)


async def test_keyboard_reaches_the_controls_and_views(browser: Browser, server: str) -> None:
    async with visit(browser) as seen:
        page = seen.page
        await page.goto(f"{server}/")
        await rendered(page, "mrr")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")  # Overview, then Cohorts
        await page.keyboard.press("Enter")
        await rendered(page, "cohorts")
        unlabelled = await page.evaluate(
            """[...document.querySelectorAll('select, input')]
                 .filter((e) => !e.closest('label') && !e.getAttribute('aria-label')).length"""
        )
        assert unlabelled == 0
        await clean_visit(seen, server)


async def test_exports_are_the_apis_data_as_csv_and_a_png(browser: Browser, server: str) -> None:
    async with visit(browser) as seen:
        page = seen.page
        await page.goto(f"{server}/")
        await rendered(page, "mrr")
        [sent] = graphql_requests(seen, "DashboardOverview")
        points = replay(server, sent)["series"]["points"]
        figure = page.locator('figure:has([data-chart="movements"])')
        async with page.expect_download() as csv_download:
            await figure.locator("button[data-export=csv]").click()
        csv_path = await (await csv_download.value).path()
        lines = csv_path.read_text().splitlines()
        assert lines[0] == (
            "date,end_date,mrr_cents,new_cents,expansion_cents,reactivation_cents,"
            "contraction_cents,churn_cents,net_new_mrr_cents"
        )
        kinds = ("mrr", "new", "expansion", "reactivation", "contraction", "churn", "netNewMrr")
        assert lines[1:] == [
            ",".join([p["date"], p["endDate"], *(str(p[k]) for k in kinds)]) for p in points
        ]
        async with page.expect_download() as png_download:
            await figure.locator("button[data-export=png]").click()
        png = (await (await png_download.value).path()).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        await clean_visit(seen, server)


async def test_a_partner_key_can_use_the_dashboard(browser: Browser, demo_url: str) -> None:
    engine: AsyncEngine = create_async_engine(make_url(demo_url))
    key = await new_key(engine, "partner", name="board")
    try:
        with running(real_app(demo_url)) as server:
            async with visit(browser) as seen:
                page = seen.page
                await page.goto(f"{server}/")
                await page.wait_for_selector("input[name=apiKey]", timeout=TIMEOUT)
                await screenshot(page, "access-asks-for-a-key")
                await page.fill("input[name=apiKey]", key)
                await page.click("text=Use this key")
                await rendered(page, "mrr")
                stored = await page.evaluate("sessionStorage.getItem('tidemill.apiKey')")
                assert stored == key
                assert await page.evaluate("localStorage.length") == 0
                assert key not in page.url
                await page.get_by_role("link", name="Access").click()
                scopes = page.locator("[data-scopes]")
                await scopes.wait_for(timeout=TIMEOUT)
                assert await scopes.inner_text() == "read, partner"
                await screenshot(page, "access-partner")
                # the usage view too: its documents are registered persisted queries
                await page.get_by_role("link", name="Usage").click()
                await rendered(page, "usage")
                await page.wait_for_selector("table.usage-top tbody tr", timeout=TIMEOUT)
                await clean_visit(seen, server)
    finally:
        await delete_keys(engine)  # the other tests run keyless
        await engine.dispose()


# The demo's usage metrics (app/demo/usage.py), as the usage view lists them.
DEMO_METRICS = [
    ["api_calls", "COUNT", "INDEXED", "api_call"],
    ["tokens", "SUM", "INDEXED", "api_call"],
    ["large_model_tokens", "SUM", "SIMPLE", "api_call"],
    ["active_users", "UNIQUE_COUNT", "INDEXED", "seat_active"],
    ["storage_gb", "LATEST", "INDEXED", "storage"],
    ["tokens_per_call", "—", "COMPOSITE", "—"],
]


USAGE_VALUE = """query($id: ID!, $customer: ID!, $timeframe: TimeframeInput) {
    usageMetricValue(id: $id, customerId: $customer, timeframe: $timeframe) { value } }"""


def usage_value(server: str, metric: str, customer: str, timeframe: dict[str, str]) -> Any:
    """The API's usageMetricValue, asked by the test itself (not the page's request)."""
    variables = {"id": metric, "customer": customer, "timeframe": timeframe}
    body = {"query": USAGE_VALUE, "variables": variables}
    response = httpx.post(f"{server}/graphql", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.text
    return response.json()["data"]["usageMetricValue"]["value"]


async def _csv(page: Page, chart: str) -> list[str]:
    figure = page.locator(f'figure:has([data-chart="{chart}"])')
    async with page.expect_download() as download:
        await figure.locator("button[data-export=csv]").click()
    return (await (await download.value).path()).read_text().splitlines()


def _csv_cell(value: float | None) -> str:
    return "" if value is None else _js_number(value)


async def _top_rows(page: Page) -> list[tuple[str | None, str | None, str]]:
    rows = page.locator("table.usage-top tbody tr")
    return [
        (
            await row.get_attribute("data-customer"),
            await row.locator("td[data-value]").get_attribute("data-value"),
            (await row.locator("a").inner_text()).strip(),
        )
        for row in await rows.all()
    ]


async def test_the_usage_view_shows_the_apis_usage(browser: Browser, server: str) -> None:
    async with visit(browser) as seen:
        page = seen.page
        await page.goto(f"{server}/?view=usage&range=3m")
        await rendered(page, "usage")
        await page.wait_for_selector("table.usage-top tbody tr", timeout=TIMEOUT)
        # The demo's metrics, listed with the API's definitions; the first is shown.
        rows = page.locator("table.usage-metrics tbody tr")
        listed = [
            [c.strip() for c in (await r.locator("td").all_text_contents())]
            for r in await rows.all()
        ]
        names = await rows.evaluate_all("rows => rows.map(r => r.dataset.metric)")
        assert names == [m[0] for m in DEMO_METRICS]
        assert [[row[1], row[2], row[3]] for row in listed] == [m[1:] for m in DEMO_METRICS]
        [listing] = graphql_requests(seen, "DashboardUsageMetrics")
        metrics = {m["name"]: m for m in replay(server, listing)["usageMetrics"]}
        [sent] = graphql_requests(seen, "DashboardUsage")
        variables = json.loads(sent["variables"])
        assert variables["id"] == metrics["api_calls"]["id"]
        assert variables["spec"]["currency"] is None
        answer = replay(server, sent)
        assert "breakdown" not in answer["usageSeries"]  # no breakdown asked: not computed
        # The chart's data (its CSV) and the top customers are the API's values, exactly.
        points = answer["usageSeries"]["points"]
        assert await _csv(page, "usage") == [
            "date,end_date,api_calls",
            *(f"{p['date']},{p['endDate']},{_csv_cell(p['value'])}" for p in points),
        ]
        assert sum(p["value"] for p in points) > 0  # the demo's last 90 days fall in range
        top = answer["usageTop"]
        assert len(top) == 10
        assert await _top_rows(page) == [
            (t["customerId"], _js_number(t["value"]), t["customer"]["name"]) for t in top
        ]
        # ... and agree with the per-customer value over the same days ([start, end + 1 day)).
        best = top[0]
        end = datetime.date.fromisoformat(variables["end"]) + datetime.timedelta(days=1)
        timeframe = {"from": f"{variables['start']}T00:00:00Z", "to": f"{end}T00:00:00Z"}
        value = usage_value(server, variables["id"], best["customerId"], timeframe)
        assert value == best["value"]
        await screenshot(page, "usage")

        # A COMPOSITE metric, broken down by country: one line per country, the API's.
        await page.get_by_role("link", name="tokens_per_call").click()
        await page.select_option("select[name=dimension]", "customer_country")
        await page.wait_for_selector(
            "#usage-title:has-text('tokens_per_call by breakdown')", timeout=TIMEOUT
        )
        await rendered(page, "usage")
        assert f"metric={metrics['tokens_per_call']['id']}" in page.url
        assert "dimension=customer_country" in page.url
        last = graphql_requests(seen, "DashboardUsage")[-1]
        assert json.loads(last["variables"])["spec"]["dimensions"] == ["customer_country"]
        composite = replay(server, last)
        assert "points" not in composite["usageSeries"]  # the total is not drawn: not computed
        lines = composite["usageSeries"]["breakdown"]
        assert len(lines) > 1
        assert (await _csv(page, "usage"))[0] == ",".join(
            ["date", "end_date", *(f"{line['label']} tokens_per_call" for line in lines)]
        )
        assert await _top_rows(page) == [
            (t["customerId"], _js_number(t["value"]), t["customer"]["name"])
            for t in composite["usageTop"]
        ]
        await screenshot(page, "usage-composite-by-country")

        # A ranked customer opens its page, with its usage this month, metric by metric.
        first = composite["usageTop"][0]
        await page.locator("table.usage-top tbody tr a").first.click()
        await page.wait_for_selector("#customer-title", timeout=TIMEOUT)
        assert f"customer={first['customerId']}" in page.url
        section = page.locator("[data-list=customer-usage]")
        cells = section.locator("td[data-value]")
        await page.wait_for_function(
            "() => document.querySelectorAll('[data-list=customer-usage] td[data-value]').length"
            f" === {len(DEMO_METRICS)}",
            timeout=TIMEOUT,
        )
        shown = {
            await row.get_attribute("data-metric"): await row.locator(
                "td[data-value]"
            ).get_attribute("data-value")
            for row in await section.locator("tbody tr").all()
        }
        assert list(shown) == [m[0] for m in DEMO_METRICS]
        today = replay(server, graphql_requests(seen, "DashboardMeta")[0])["dataRange"]["today"]
        month = datetime.date.fromisoformat(today).replace(day=1)
        following = (month + datetime.timedelta(days=31)).replace(day=1)
        # One request for the six metrics (slots m0..m5 of the document).
        [request] = graphql_requests(seen, "DashboardCustomerUsage")
        asked = json.loads(request["variables"])
        timeframe = {"from": f"{month}T00:00:00Z", "to": f"{following}T00:00:00Z"}
        slots = {f"m{i}": metrics[m[0]]["id"] for i, m in enumerate(DEMO_METRICS)}
        switches = {f"use{i}": True for i in range(len(DEMO_METRICS))}
        assert asked == {"id": first["customerId"], "timeframe": timeframe, **slots, **switches}
        answer = replay(server, request)["customer"]
        for slot, (name, *_) in enumerate(DEMO_METRICS):
            expected = answer[f"m{slot}"]
            assert shown[name] == ("" if expected is None else _js_number(expected)), name
            # ... the value usageMetricValue gives for the same customer and month
            value = usage_value(server, metrics[name]["id"], first["customerId"], timeframe)
            assert value == expected, name
        assert await cells.count() == len(DEMO_METRICS)
        await screenshot(page, "customer-usage")
        await clean_visit(seen, server)


async def test_the_usage_view_says_when_nothing_is_defined_and_shows_errors(
    browser: Browser, server: str, database_url: str
) -> None:
    async with visit(browser) as seen:
        page = seen.page
        # An unknown attribute as the breakdown (by URL): the API's error, on the page.
        await page.goto(f"{server}/?view=usage&dimension=attr.nope")
        alert = page.locator("section[aria-labelledby=usage-view-title] [role=alert]")
        await alert.wait_for(timeout=TIMEOUT)
        [sent] = graphql_requests(seen, "DashboardUsage")
        [error] = replay_errors(server, sent)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert await alert.inner_text() == error["message"]
        assert "unknown dimension 'attr.nope'" in error["message"]
        await clean_visit(seen, server)
    # A metric id the URL names but the server does not have: the first metric instead.
    async with visit(browser) as seen:
        page = seen.page
        await page.goto(f"{server}/?view=usage&metric=999999")
        await page.wait_for_selector("#usage-title:has-text('api_calls')", timeout=TIMEOUT)
        await rendered(page, "usage")
        ids = [
            json.loads(sent["variables"])["id"] for sent in graphql_requests(seen, "DashboardUsage")
        ]
        assert ids[0] == "999999"  # asked at once, beside the list of metrics
        assert ids[-1] != "999999"
        assert await page.locator("[role=alert]").count() == 0
        await clean_visit(seen, server)
    # A company without usage metrics (an empty database): the view says how to define one.
    with running(real_app(database_url)) as empty:
        async with visit(browser) as seen:
            await seen.page.goto(f"{empty}/?view=usage")
            note = seen.page.locator("[data-empty=usage]")
            await note.wait_for(timeout=TIMEOUT)
            assert "No usage metrics are defined yet" in await note.inner_text()
            assert graphql_requests(seen, "DashboardUsage") == []
            await clean_visit(seen, empty)


async def test_graphiql_renders_offline_and_runs_a_query(browser: Browser, server: str) -> None:
    async with visit(browser) as seen:
        page = seen.page
        origin = server + "/"
        # Air-gapped: anything not of the server's origin fails, as without a network.
        await page.context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(origin)
                else route.abort("internetdisconnected")
            ),
        )
        await page.goto(f"{server}/graphql")
        editor = page.locator(".graphiql-query-editor .CodeMirror")
        await editor.wait_for(timeout=TIMEOUT)
        await editor.click()
        await page.keyboard.press("Control+A")
        await page.keyboard.type("{ dataRange { today baseCurrency } }")
        await page.locator(".graphiql-execute-button").click()
        response = page.locator(".graphiql-response")
        await page.wait_for_function(
            "() => document.querySelector('.graphiql-response')?.textContent.includes('today')",
            timeout=TIMEOUT,
        )
        assert '"baseCurrency": "USD"' in await response.inner_text()
        await screenshot(page, "graphiql")
        await clean_visit(seen, server)
