"""The demo company: a deterministic, realistic history of subscription periods.

Everything random comes from one `random.Random(seed)`, so a seed always yields the same company.
Customers sign up over the whole window, more of them as time goes on. Each subscription is
simulated month by month from its billing anchor; every change (plan, seats, billing interval,
a failed payment) closes one period and opens the next one of the same subscription, and a
cancellation closes the last one. Periods still running at `today` are open (valid_to None).
"""

from __future__ import annotations

import calendar
import csv
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest.rows import PeriodRow
from app.ingest.subscriptions import ImportResult, Progress, load_periods
from app.money import monthly_cents

CURRENCY = "USD"
TRIAL = timedelta(days=14)
MAX_SEATS = 20
CSV_COLUMNS = (
    "subscription_id",
    "customer_id",
    "start_date",
    "end_date",
    "amount",
    "interval",
    "interval_count",
    "quantity",
    "currency",
    "plan",
    "status",
    "trial_start",
    "trial_end",
    "customer_name",
    "email",
    "country",
)
COUNTRIES = {"US": 40, "GB": 12, "DE": 10, "FR": 8, "CA": 8, "AU": 6, "NL": 5, "SE": 3, "ES": 3}
COMPANY_WORDS = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Soylent",
    "Vandelay",
    "Wonka",
    "Stark",
    "Tyrell",
    "Cyberdyne",
    "Aperture",
    "Oscorp",
    "Dunder",
    "Massive",
    "Pied Piper",
)


@dataclass(frozen=True)
class Plan:
    name: str
    monthly: Decimal  # per unit
    yearly: Decimal  # per unit
    per_seat: bool = False


STARTER = Plan("Starter", Decimal(29), Decimal(290))
GROWTH = Plan("Growth", Decimal(99), Decimal(990))
SCALE = Plan("Scale", Decimal(299), Decimal(2990))
TEAM = Plan("Team", Decimal(12), Decimal(120), per_seat=True)
TIERS = (STARTER, GROWTH, SCALE)
PLAN_WEIGHTS = {STARTER: 40, GROWTH: 30, SCALE: 10, TEAM: 20}


@dataclass(frozen=True)
class Rates:
    """How eventful the company is: probabilities per subscription and month unless noted."""

    churn: float = 0.025  # a monthly plan cancels at a renewal (yearly plans: ~8x per year)
    change: float = 0.04  # upgrade, downgrade, seat or billing-interval change
    past_due: float = 0.01  # a renewal payment fails (then recovers or ends the subscription)
    yearly: float = 0.25  # share of new subscriptions billed yearly (per subscription)
    trial: float = 0.35  # first subscriptions starting with a 14-day trial (per customer)
    trial_conversion: float = 0.7  # trials that become paid
    reactivation: float = 0.3  # a churned customer comes back later (per churn)
    second_subscription: float = 0.06  # customers who add a second subscription (per customer)


DEFAULT_RATES = Rates()


@dataclass(frozen=True)
class Price:
    plan: Plan
    interval: str  # "month" or "year"
    seats: int = 1

    @property
    def amount(self) -> Decimal:
        return self.plan.monthly if self.interval == "month" else self.plan.yearly

    @property
    def quantity(self) -> int:
        return self.seats if self.plan.per_seat else 1


@dataclass(frozen=True)
class Segment:
    """A subscription's state from `start` until the next segment (or the subscription's end)."""

    start: date
    status: str
    price: Price


@dataclass(frozen=True)
class History:
    subscription_id: str
    segments: tuple[Segment, ...]
    end: date | None  # None: still running when the simulation stopped
    trial: tuple[date, date] | None = None  # (trial_start, trial_end), on every period


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    country: str


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the end of a shorter month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class _Company:
    """The simulation: one random stream, one subscription counter, one cut-off day."""

    def __init__(self, rng: random.Random, today: date, rates: Rates) -> None:
        self.rng = rng
        self.today = today
        self.rates = rates
        self.subscriptions = 0

    def customer(self, number: int) -> Customer:
        word = self.rng.choice(COMPANY_WORDS)
        country = self.rng.choices(list(COUNTRIES), weights=list(COUNTRIES.values()))[0]
        slug = word.lower().replace(" ", "")
        email = f"billing@{slug}{number}.example"
        return Customer(f"cus_{number:05d}", f"{word} {number}", email, country)

    def histories(self, signup: date) -> Iterator[History]:
        """Every subscription of one customer: the first, maybe an add-on, reactivations."""
        first = self.subscription(signup, self.new_price(), self.rng.random() < self.rates.trial)
        yield first
        if self.rng.random() < self.rates.second_subscription:
            yield from self.second_subscription(first)
        restart = self.restart_after(first)
        while restart is not None:
            latest = self.subscription(restart, self.new_price(), trial=False)
            yield latest
            restart = self.restart_after(latest)

    def restart_after(self, history: History) -> date | None:
        """The day a churned customer comes back with a new subscription, if it does."""
        paid = history.segments[-1].status != "trialing"
        if not paid or history.end is None or history.end > self.today:
            return None
        if self.rng.random() >= self.rates.reactivation:
            return None
        restart = add_months(history.end, self.rng.randint(1, 12)) + self.offset()
        return restart if restart <= self.today else None

    def second_subscription(self, first: History) -> Iterator[History]:
        start = add_months(first.segments[0].start, self.rng.randint(1, 12)) + self.offset()
        if start <= self.today and (first.end is None or start < first.end):
            plan = self.rng.choice((STARTER, TEAM))
            price = Price(plan, "month", self.rng.randint(2, 5) if plan.per_seat else 1)
            yield self.subscription(start, price, trial=False)

    def subscription(self, start: date, price: Price, trial: bool) -> History:
        self.subscriptions += 1
        subscription_id = f"sub_{self.subscriptions:06d}"
        segments: list[Segment] = []
        trial_days = (start, start + TRIAL) if trial else None
        if trial_days is not None:
            segments.append(Segment(start, "trialing", price))
            start = trial_days[1]
            if self.rng.random() >= self.rates.trial_conversion:
                return History(subscription_id, tuple(segments), start, trial_days)
        segments.append(Segment(start, "active", price))
        end = self.run(segments, start)
        return History(subscription_id, tuple(segments), end, trial_days)

    def run(self, segments: list[Segment], anchor: date) -> date | None:
        """Append the paid life of a subscription billed from `anchor`; return its end."""
        month = 0
        while True:
            month += 1
            renewal = add_months(anchor, month)
            if renewal > self.today:
                return None
            price = segments[-1].price
            due = price.interval == "month" or month % 12 == 0
            if due and self.rng.random() < self.churn(price):
                return renewal
            if due and self.rng.random() < self.rates.past_due:
                end = self.payment_trouble(segments, renewal)
                if end is not None:
                    return end
            elif self.rng.random() < self.rates.change:
                anchor, month = self.apply_change(segments, anchor, month, due)

    def apply_change(
        self, segments: list[Segment], anchor: date, month: int, due: bool
    ) -> tuple[date, int]:
        """Append the next state after a change; an interval switch re-anchors billing."""
        change = self.change(segments[-1].price, due)
        if change is None:
            return anchor, month
        price, kind = change
        renewal = add_months(anchor, month)
        if kind == "switch":
            segments.append(Segment(renewal, "active", price))
            return renewal, 0
        at = renewal if kind == "down" else renewal + self.offset()
        segments.append(Segment(at, "active", price))
        return anchor, month

    def churn(self, price: Price) -> float:
        monthly = self.rates.churn
        return monthly if price.interval == "month" else min(0.9, 8 * monthly)

    def payment_trouble(self, segments: list[Segment], renewal: date) -> date | None:
        """A failed renewal: past due for a while, then paid again or canceled (returned)."""
        price = segments[-1].price
        segments.append(Segment(renewal, "past_due", price))
        settled = renewal + timedelta(days=self.rng.randint(3, 20))
        if self.rng.random() < 0.4:
            return settled
        segments.append(Segment(settled, "active", price))
        return None

    def change(self, price: Price, due: bool) -> tuple[Price, str] | None:
        """Upgrades and added seats: any day. Removed seats: at a monthly anniversary.

        Plan downgrades and billing-interval switches: only at a renewal (`due`).
        """
        options: list[tuple[Price, str]] = []
        weights: list[float] = []
        bigger = self.upgrade(price)
        if bigger is not None:
            options.append((bigger, "up"))
            weights.append(0.55)
        smaller = self.downgrade(price)
        if smaller is not None and (due or price.plan.per_seat):
            options.append((smaller, "down"))
            weights.append(0.3)
        if due:
            other = "year" if price.interval == "month" else "month"
            options.append((replace(price, interval=other), "switch"))
            weights.append(0.05)
        return self.rng.choices(options, weights=weights)[0] if options else None

    def upgrade(self, price: Price) -> Price | None:
        if price.plan.per_seat:
            if price.seats >= MAX_SEATS:
                return None
            return replace(price, seats=min(MAX_SEATS, price.seats + self.rng.randint(1, 5)))
        index = TIERS.index(price.plan)
        return replace(price, plan=TIERS[index + 1]) if index + 1 < len(TIERS) else None

    def downgrade(self, price: Price) -> Price | None:
        if price.plan.per_seat:
            if price.seats <= 2:
                return None
            return replace(price, seats=max(2, price.seats - self.rng.randint(1, 3)))
        index = TIERS.index(price.plan)
        return replace(price, plan=TIERS[index - 1]) if index > 0 else None

    def new_price(self) -> Price:
        plan = self.rng.choices(list(PLAN_WEIGHTS), weights=list(PLAN_WEIGHTS.values()))[0]
        interval = "year" if self.rng.random() < self.rates.yearly else "month"
        seats = min(self.rng.randint(2, 8), self.rng.randint(2, 12)) if plan.per_seat else 1
        return Price(plan, interval, seats)

    def offset(self) -> timedelta:
        """A day inside a billing month (months are at least 28 days, so order is kept)."""
        return timedelta(days=self.rng.randint(1, 27))


def _signups(rng: random.Random, customers: int, start: date, months: int) -> list[date]:
    """Sign-up days over the window, denser later (the company grows)."""
    days = (add_months(start, months) - start).days
    return sorted(start + timedelta(days=int(days * rng.random() ** 0.7)) for _ in range(customers))


def _row(
    line: int, customer: Customer, history: History, segment: Segment, valid_to: date | None
) -> PeriodRow:
    price = segment.price
    trial_start, trial_end = history.trial or (None, None)
    return PeriodRow(
        line=line,
        subscription_id=history.subscription_id,
        customer_id=customer.id,
        valid_from=segment.start,
        valid_to=valid_to,
        status=segment.status,
        plan=price.plan.name,
        quantity=price.quantity,
        amount=price.amount,
        billing_interval=price.interval,
        interval_count=1,
        currency=CURRENCY,
        mrr=monthly_cents(price.amount, price.quantity, price.interval, 1),
        trial_start=trial_start,
        trial_end=trial_end,
        customer_name=customer.name,
        email=customer.email,
        country=customer.country,
    )


def _periods(history: History, today: date) -> Iterator[tuple[Segment, date | None]]:
    """Each segment known at `today` with its end; an end after `today` is still open."""
    ends = [segment.start for segment in history.segments[1:]] + [history.end]
    for segment, end in zip(history.segments, ends, strict=True):
        if segment.start > today:
            return
        yield segment, None if end is None or end > today else end


def generate_periods(
    customers: int = 300,
    seed: int = 7,
    start: date = date(2023, 1, 1),
    months: int = 36,
    today: date | None = None,
    *,
    rates: Rates = DEFAULT_RATES,
) -> Iterator[PeriodRow]:
    """The demo company's subscription periods, the same for the same arguments."""
    rng = random.Random(seed)
    cutoff = today or add_months(start, months)
    company = _Company(rng, cutoff, rates)
    line = 2
    for number, signup in enumerate(_signups(rng, customers, start, months), start=1):
        customer = company.customer(number)
        if signup > cutoff:
            continue
        for history in company.histories(signup):
            for segment, valid_to in _periods(history, cutoff):
                yield _row(line, customer, history, segment, valid_to)
                line += 1


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def _csv_values(row: PeriodRow) -> tuple[object, ...]:
    return (
        row.subscription_id,
        row.customer_id,
        row.valid_from.isoformat(),
        _day(row.valid_to),
        row.amount,
        row.billing_interval,
        row.interval_count,
        row.quantity,
        row.currency,
        row.plan or "",
        row.status,
        _day(row.trial_start),
        _day(row.trial_end),
        row.customer_name or "",
        row.email or "",
        row.country or "",
    )


def write_csv(rows: Iterable[PeriodRow], path: Path) -> int:
    """Write rows as a subscription-periods CSV (connectors/csv/subscriptions.py); the count."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(_csv_values(row))
            count += 1
    return count


async def load_demo(
    engine: AsyncEngine, customers: int, seed: int, progress: Progress
) -> ImportResult:
    """Import the demo company (source "demo"); re-loading the same company changes nothing."""
    return await load_periods(
        engine,
        generate_periods(customers=customers, seed=seed),
        filename="demo",
        sha256=f"demo-{seed}-{customers}",
        source="demo",
        progress=progress,
    )
