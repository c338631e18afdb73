"""Strawberry types. Resolvers return the service's dataclasses; these declare their fields
(a resolver is annotated with the dataclass it returns and names its GraphQL type with
`graphql_type`)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TypeVar

import strawberry

from app.customers import Activity as ActivityResult
from app.customers import CustomerRow, CustomerState, MrrAt, SubscriptionFacts
from app.metrics.churn import LOGO, REVENUE
from app.metrics.churn import ChurnPage as ChurnPageResult
from app.metrics.cube import Dimension
from app.metrics.points import Point as PointResult
from app.metrics.points import Summary as SummaryResult
from app.metrics.service import Breakdown as BreakdownResult
from app.metrics.spec import QuerySpec, SeriesRequest
from app.metrics.waterfall import Waterfall as WaterfallResult
from resolvers import customers as resolve_customers
from resolvers import metrics as resolve
from resolvers import usage as resolve_usage
from resolvers.context import Context
from resolvers.customers import Facts
from schema.attributes import AttributeValue
from schema.enums import FilterOp, Interval
from schema.fields import field
from schema.scalars import Cents
from schema.usage import TimeframeInput, window_of


@strawberry.input(description="A filter: `field op values`; names come from the metric's cube.")
class FilterInput:
    field: str
    op: FilterOp = FilterOp.EQ
    values: list[str] = strawberry.field(default_factory=list)


@strawberry.input(description="What to slice and how.")
class QuerySpecInput:
    dimensions: list[str] = strawberry.field(
        default_factory=list, description="Breakdown (GROUP BY); names from `metrics`."
    )
    filters: list[FilterInput] = strawberry.field(default_factory=list)
    segment: strawberry.ID | None = strawberry.field(
        default=None, description="A saved segment: only its customers are counted."
    )
    compare_segments: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="Up to 10 segments, one breakdown entry each (a customer may be in several).",
    )
    currency: str | None = strawberry.field(
        default=None, description="Report currency (ISO 4217); default the base currency."
    )
    fix_fx: bool = strawberry.field(
        default=False, description="Convert at the rate of the first point's date."
    )

    def to_spec(self) -> QuerySpec:
        filters = ((f.field, f.op, f.values) for f in self.filters)
        return resolve.to_spec(self.dimensions, filters, self.currency, self.fix_fx)


@strawberry.type(description="One period of a series (METRICS.md 4). Money in integer cents.")
class Point:
    date: datetime.date = strawberry.field(
        description="First day of the period (not before start)."
    )
    end_date: datetime.date = strawberry.field(description="Last day (not after end).")
    mrr: Cents = strawberry.field(description="MRR at endDate.")
    arr: Cents
    customers: int = strawberry.field(description="Active customers at endDate.")
    arpa: Cents | None
    asp: Cents | None = strawberry.field(description="new / newCustomers.")
    new: Cents
    expansion: Cents
    contraction: Cents
    churn: Cents
    reactivation: Cents
    net_new_mrr: Cents
    customers_diff: int
    new_customers: int
    expansion_customers: int
    contraction_customers: int
    churn_customers: int
    reactivation_customers: int
    churned_customers: int = strawberry.field(
        description="Active at the day before date and not active at endDate."
    )
    customer_churn_rate: float | None
    mrr_churn_rate: float | None
    net_mrr_churn_rate: float | None
    customer_retention_rate: float | None
    mrr_retention_rate: float | None
    nrr: float | None
    grr: float | None
    quick_ratio: float | None
    customer_churn_avg: float | None = strawberry.field(
        description="Mean customerChurnRate of the 6 calendar months before endDate's month."
    )
    ltv: Cents | None = strawberry.field(description="arpa / customerChurnAvg.")
    fx_adjustment: Cents = strawberry.field(
        description="mrr(b) - mrr(a-1) - netNewMrr: the MRR change due to exchange rates."
    )


@strawberry.type(description="Last value, the one before, and the change as a fraction.")
class Summary:
    current: float | None
    previous: float | None
    percentage_change: float | None


@strawberry.type(description="One value combination of the requested dimensions.")
class Breakdown:
    key: list[str]
    label: str
    points: tuple[PointResult, ...] = strawberry.field(graphql_type=list[Point])
    other: bool = strawberry.field(
        description="This entry is every value beyond `top`, as one scope (key part `(other)`)."
    )

    @field(graphql_type=Summary)
    def summary(self, field: str = "mrr") -> SummaryResult:
        return resolve.points_summary(self.points, field)

    @classmethod
    def of(cls, result: BreakdownResult) -> Breakdown:
        return cls(
            key=list(result.key), label=result.label, points=result.points, other=result.other
        )


@strawberry.type(description="One step of a waterfall, with the levels a chart draws.")
class WaterfallStep:
    kind: str = strawberry.field(
        description="opening, new, expansion, reactivation, contraction, churn, fx_adjustment, "
        "closing"
    )
    amount: Cents
    start: Cents = strawberry.field(description="MRR before the step (0 for opening, closing).")
    end: Cents = strawberry.field(description="MRR after the step.")
    base: Cents = strawberry.field(description="The lower of start and end.")
    size: Cents = strawberry.field(description="The step's height: |amount|.")


@strawberry.type(
    description="From the MRR at the day before a period to the MRR at its end, step by step."
)
class Waterfall:
    date: datetime.date
    end_date: datetime.date
    steps: list[WaterfallStep]


@strawberry.type(description="A metric series over [start, end].")
class Series:
    start: datetime.date
    end: datetime.date
    interval: Interval
    currency: str
    request: strawberry.Private[SeriesRequest]

    @field(description="The total, one point per period.", graphql_type=list[Point])
    async def points(self, info: strawberry.Info[Context, None]) -> tuple[PointResult, ...]:
        return await resolve.points(info.context, self.request)

    @field(
        description="Summary of a Point field over the total's last two points.",
        graphql_type=Summary,
    )
    async def summary(
        self, info: strawberry.Info[Context, None], field: str = "mrr"
    ) -> SummaryResult:
        return await resolve.series_summary(info.context, self.request, field)

    @field(
        description="One entry per value combination of spec.dimensions. With `top` (one "
        "dimension): the `top` values with the most MRR at the end, then one `other` entry "
        "for all the rest (per compared segment)."
    )
    async def breakdown(
        self, info: strawberry.Info[Context, None], top: int | None = None
    ) -> list[Breakdown]:
        found = await resolve.breakdown(info.context, self.request, top)
        return [Breakdown.of(b) for b in found]

    @field(
        description="The MRR waterfall of the period starting on `date` (default: the last).",
        graphql_type=Waterfall,
    )
    async def waterfall(
        self, info: strawberry.Info[Context, None], date: datetime.date | None = None
    ) -> WaterfallResult:
        return await resolve.waterfall(info.context, self.request, date)


@strawberry.type(description="One month of a cohort: members active at its last day.")
class CohortCell:
    offset: int = strawberry.field(description="Months since the cohort month (0 = itself).")
    month: datetime.date
    active_customers: int
    mrr: Cents
    customer_retention: float | None = strawberry.field(description="activeCustomers / size.")
    mrr_retention: float | None = strawberry.field(description="mrr / mrr at offset 0.")


@strawberry.type(description="Customers whose first `new` movement is in `cohort`'s month.")
class Cohort:
    cohort: datetime.date = strawberry.field(description="First day of the cohort month.")
    size: int
    ltv: Cents | None = strawberry.field(
        description="Realized LTV: MRR earned per day up to end (x 12/365), per member."
    )
    cells: list[CohortCell]


@strawberry.type(description="Trials per period, each counted on its own day (METRICS.md 6).")
class TrialPoint:
    date: datetime.date
    end_date: datetime.date
    trials_started: int
    trials_converted: int
    trials_expired: int
    conversion_rate: float | None = strawberry.field(
        description="converted / (converted + expired)."
    )


@strawberry.type(description="Trials started in the range and what became of them by its end.")
class TrialFunnel:
    started: int
    converted: int
    expired: int
    in_progress: int
    conversion_rate: float | None


@strawberry.type
class Trials:
    points: list[TrialPoint]
    funnel: TrialFunnel


@strawberry.type
class PageInfo:
    end_cursor: str | None
    has_next_page: bool


@strawberry.type(description="A movement of one customer on one day (churn detail, drill-down).")
class ChurnEvent:
    customer_id: strawberry.ID
    external_id: str
    name: str | None
    day: datetime.date
    kind: str
    amount: Cents = strawberry.field(description="The movement (negative): MRR lost.")
    mrr_before: Cents
    mrr_after: Cents
    plans: list[str] = strawberry.field(
        description="Plans whose MRR moved that way: stopped or shrank (churn, contraction), "
        "started or grew (new, expansion, reactivation)."
    )
    cursor: str


@strawberry.type
class ChurnPage:
    total_count: int
    total_amount: Cents = strawberry.field(description="Sum of all events' amounts (all pages).")
    events: list[ChurnEvent]
    end_cursor: strawberry.Private[str | None]
    has_next_page: strawberry.Private[bool]

    @strawberry.field
    def page_info(self) -> PageInfo:
        return PageInfo(end_cursor=self.end_cursor, has_next_page=self.has_next_page)


@strawberry.type(description="Who churned, and every revenue-churn movement, in [start, end].")
class ChurnReport:
    start: datetime.date
    end: datetime.date
    currency: str
    spec: strawberry.Private[QuerySpec]

    @field(description="Logo churn: customers whose MRR went to 0.", graphql_type=ChurnPage)
    async def churned_customers(
        self, info: strawberry.Info[Context, None], first: int = 50, after: str | None = None
    ) -> ChurnPageResult:
        return await resolve.churn_page(
            info.context, self.start, self.end, self.spec, LOGO, first, after
        )

    @field(description="Revenue churn: churn and contraction movements.", graphql_type=ChurnPage)
    async def revenue_churn(
        self, info: strawberry.Info[Context, None], first: int = 50, after: str | None = None
    ) -> ChurnPageResult:
        return await resolve.churn_page(
            info.context, self.start, self.end, self.spec, REVENUE, first, after
        )


@strawberry.type
class DimensionInfo:
    name: str
    description: str
    kind: str

    @field(description="customer: selects customers; subscription: re-scopes MRR.")
    def level(self, root: Dimension) -> str:  # served from the cube's Dimension
        return str(root.level.value)


@strawberry.type
class FilterInfo:
    name: str
    ops: list[FilterOp]


@strawberry.type
class FieldInfo:
    name: str
    description: str
    unit: str = strawberry.field(description="cents, count, ratio or date")


@strawberry.type(description="A metric family: its fields, dimensions and filters (discovery).")
class Metric:
    name: str
    description: str
    unit: str
    fields: list[FieldInfo]
    dimensions: list[DimensionInfo]
    filters: list[FilterInfo]


@strawberry.type(description="A subscription and its version in force today.")
class Subscription:
    id: strawberry.ID
    external_id: str
    plan: str | None
    quantity: int
    interval: str
    status: str
    mrr: Cents = strawberry.field(description="MRR of the version in force, its currency.")
    currency: str
    started: datetime.date
    ended: datetime.date | None


@strawberry.type(description="A movement of the customer's MRR (METRICS.md 3).")
class Activity:
    day: datetime.date
    kind: str
    amount: Cents
    mrr_before: Cents
    mrr_after: Cents
    description: str = strawberry.field(description='e.g. "upgraded from Basic to Pro"')


@strawberry.type(description="A customer's MRR at the end of one period.")
class CustomerMrrPoint:
    date: datetime.date
    end_date: datetime.date
    mrr: Cents


T = TypeVar("T")


def _loaded(fact: T | None) -> T:
    """A fact the resolver that made the node prefetched (resolvers.customers.facts)."""
    if fact is None:
        raise RuntimeError("a Customer fact was selected but not prefetched")
    return fact


async def customer_nodes(
    info: strawberry.Info[Context, None], rows: Sequence[CustomerRow], wanted: set[str]
) -> list[Customer]:
    """Customer nodes with the facts `wanted` (GraphQL field names), one batch per loader."""
    found = await resolve_customers.facts(info.context, [row.id for row in rows], wanted)
    return [Customer.of(row, facts) for row, facts in zip(rows, found, strict=True)]


@strawberry.type(description="A customer and its facts (METRICS.md 8), batched per page.")
class Customer:
    id: strawberry.ID
    external_id: str
    source: str
    name: str | None
    email: str | None
    country: str | None
    customer_since: datetime.date | None = strawberry.field(
        description="Day of its first `new` movement."
    )
    facts: strawberry.Private[Facts]

    @classmethod
    def of(cls, row: CustomerRow, facts: Facts) -> Customer:
        return cls(
            id=strawberry.ID(str(row.id)),
            external_id=row.external_id,
            source=row.source,
            name=row.name,
            email=row.email,
            country=row.country,
            customer_since=row.customer_since,
            facts=facts,
        )

    @property
    def state(self) -> CustomerState:
        return _loaded(self.facts.state)

    @field(description="MRR today, in the customer's currency.")
    def mrr(self) -> Cents:
        return Cents(self.state.mrr)

    @strawberry.field
    def arr(self) -> Cents:
        return Cents(12 * self.state.mrr)

    @field(description="The customer's billing currency (null if never billed).")
    def currency(self) -> str | None:
        return self.state.currency

    @field(description="active, trialing, churned or never_active.")
    def status(self) -> str:
        return self.state.status

    @field(description="Day of its latest churn, when not active now.")
    def churned_at(self) -> datetime.date | None:
        return self.state.churned_at

    @field(description="MRR lost in that churn.")
    def churned_mrr(self) -> Cents | None:
        lost = self.state.churned_mrr
        return None if lost is None else Cents(lost)

    @field(graphql_type=list[Subscription])
    def subscriptions(self) -> list[SubscriptionFacts]:
        return _loaded(self.facts.subscriptions)

    @field(description="Its movements, newest first.", graphql_type=list[Activity])
    def activities(self) -> list[ActivityResult]:
        return _loaded(self.facts.activities)

    @field(description="Its attribute values, by key.")
    def attributes(self) -> list[AttributeValue]:
        found = _loaded(self.facts.attributes)
        return [AttributeValue.of(key, value) for key, value in sorted(found.items())]

    @field(
        description="Its MRR (its currency) at the end of each period of [start, end].",
        graphql_type=list[CustomerMrrPoint],
    )
    async def mrr_series(
        self,
        info: strawberry.Info[Context, None],
        start: datetime.date,
        end: datetime.date,
        interval: Interval = Interval.MONTH,
    ) -> list[MrrAt]:
        return await resolve_customers.mrr_series(info.context, int(self.id), start, end, interval)

    @field(
        description="Its value of a usage metric over [from, to) (default: all time); the "
        "customers of a page share one statement."
    )
    async def usage(
        self,
        info: strawberry.Info[Context, None],
        metric_id: strawberry.ID,
        timeframe: TimeframeInput | None = None,
    ) -> float | None:
        return await resolve_usage.customer_usage(
            info.context, int(self.id), metric_id, window_of(timeframe)
        )


@strawberry.type
class CustomerEdge:
    node: Customer
    cursor: str


@strawberry.type
class CustomerConnection:
    total_count: int
    edges: list[CustomerEdge]
    page_info: PageInfo


@strawberry.type(description="The days the data covers.")
class DataRange:
    first: datetime.date | None = strawberry.field(
        description="The first day of any subscription's history (null: no data yet)."
    )
    last: datetime.date | None = strawberry.field(
        description="The last day a subscription state started or ended."
    )
    today: datetime.date = strawberry.field(description="The server's day (UTC).")
    base_currency: str = strawberry.field(
        description="What amounts are reported in unless a query's spec asks for another."
    )


@strawberry.type(description="Who is asking, and what that allows.")
class Viewer:
    name: str = strawberry.field(description="The key's name, or how the caller was let in.")
    scopes: list[str] = strawberry.field(description="Every scope held, implied ones included.")
    keyless: bool = strawberry.field(description="Let in without a key (the loopback demo).")
    allows: list[str] = strawberry.field(description="What those scopes allow.")
