"""What Tidemill computes, as data: metric families, their fields, dimensions and filters.

The GraphQL `metrics` discovery field, `MetricsEngine.available_metrics()` and validation
messages all read these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.metrics.cube import Cube, Dimension
from app.metrics.spec import FilterOp


@dataclass(frozen=True)
class FieldInfo:
    name: str  # as in GraphQL (camelCase)
    description: str
    unit: str  # cents | count | ratio | date


@dataclass(frozen=True)
class FilterInfo:
    name: str
    ops: tuple[FilterOp, ...]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    description: str
    unit: str
    fields: tuple[FieldInfo, ...]
    dimensions: tuple[Dimension, ...]
    filters: tuple[FilterInfo, ...]


def _fields(unit: str, described: str) -> tuple[FieldInfo, ...]:
    """Fields from `name: description` lines."""
    pairs = (line.split(":", 1) for line in described.strip().splitlines())
    return tuple(FieldInfo(name.strip(), text.strip(), unit) for name, text in pairs)


POINT_FIELDS = (
    _fields(
        "date",
        """
date: first day of the period (not before start)
endDate: last day of the period (not after end)""",
    ),
    _fields(
        "cents",
        """
mrr: sum of customers' MRR at endDate
arr: 12 x mrr
arpa: mrr / customers, rounded to cents
asp: new / newCustomers (new business only), rounded to cents
new: MRR of customers' first movements in the period
expansion: MRR increases of active customers
contraction: MRR decreases of customers who stay active (<= 0)
churn: MRR lost by customers whose MRR went to 0 (<= 0)
reactivation: MRR of former customers who came back
netNewMrr: sum of all movements in the period
ltv: arpa / customerChurnAvg, rounded to cents
fxAdjustment: mrr(b) - mrr(a-1) - netNewMrr: the change due to exchange rates""",
    ),
    _fields(
        "count",
        """
customers: active customers at endDate
customersDiff: customers(b) - customers(a-1)
newCustomers: customers with a new movement in the period
expansionCustomers: customers with an expansion movement in the period
contractionCustomers: customers with a contraction movement in the period
churnCustomers: customers with a churn movement in the period
reactivationCustomers: customers with a reactivation movement in the period
churnedCustomers: customers active at a-1 and not active at b""",
    ),
    _fields(
        "ratio",
        """
customerChurnRate: churnedCustomers / customers(a-1)
mrrChurnRate: -(churn + contraction) / mrr(a-1)
netMrrChurnRate: -(churn + contraction + expansion + reactivation) / mrr(a-1)
customerRetentionRate: 1 - customerChurnRate
mrrRetentionRate: 1 - mrrChurnRate
nrr: MRR at b of the customers active at a-1, over mrr(a-1)
grr: like nrr with each customer capped at its MRR at a-1
quickRatio: (new + expansion + reactivation) / -(contraction + churn)
customerChurnAvg: mean customerChurnRate of the 6 months before endDate's month""",
    ),
)

COHORT_FIELDS = (
    _fields(
        "count",
        """
size: customers whose first new movement is in the cohort month
activeCustomers: members active at the last day of month M+k""",
    )
    + _fields(
        "cents",
        """
mrr: members' MRR at the last day of month M+k
ltv: realized LTV per member: MRR earned per day up to end, x 12/365""",
    )
    + _fields(
        "ratio",
        """
customerRetention: activeCustomers / size
mrrRetention: mrr / mrr at offset 0""",
    )
)

TRIAL_FIELDS = _fields(
    "count",
    """
trialsStarted: trials whose trial started in the period
trialsConverted: trials that became paying in the period
trialsExpired: trials that ended unpaid in the period""",
) + _fields(
    "ratio",
    """
conversionRate: converted / (converted + expired)""",
)

CHURN_FIELDS = _fields(
    "cents",
    """
amount: the churn or contraction movement (negative)
mrrBefore: the customer's MRR the day before
mrrAfter: the customer's MRR that day""",
) + _fields(
    "count",
    """
totalCount: events over all pages""",
)


def catalog(cube: Cube) -> tuple[MetricInfo, ...]:
    filters = tuple(FilterInfo(d.name, d.ops) for d in cube.dimensions)
    point_fields = tuple(f for group in POINT_FIELDS for f in group)
    families = (
        ("mrr", cube.description + " Query `series`, `snapshot`.", "cents", point_fields, True),
        (
            "cohorts",
            "Retention by month of first new (METRICS.md 5).",
            "ratio",
            COHORT_FIELDS,
            False,
        ),
        (
            "trials",
            "Trials started, converted, expired (METRICS.md 6).",
            "count",
            TRIAL_FIELDS,
            False,
        ),
        ("churn", "Churned customers and revenue-churn events.", "cents", CHURN_FIELDS, False),
    )
    return tuple(
        MetricInfo(name, description, unit, fields, cube.dimensions if by else (), filters)
        for name, description, unit, fields, by in families
    )
