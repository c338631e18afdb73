"""The demo company: a deterministic, realistic history of customers and their subscriptions.

Customers sign up from `start` on, more of them each month (the company grows), and the history
runs up to `today`. Everything random comes from `random.Random` streams keyed by the seed and
the customer (and, for a subscription, which one it is), each drawn in the order of time. So a
history cut at an earlier day is a prefix of the one cut at a later day: loading the demo again
tomorrow adds tomorrow and closes what ended, and changes nothing before.

Each subscription is simulated month by month from its billing anchor; every change (plan, seats,
billing interval, a failed payment) closes one period and opens the next one of the same
subscription, and a cancellation closes the last one. Periods still running at `today` are open.
"""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal

DEMO_START = date(2022, 1, 1)
REFERENCE_MONTHS = 60  # `customers` sign up in the first five years; growth goes on after
GROWTH = 1 / 20  # month m gets (1 + m / 20) shares of the sign-ups: five times month 0 by m = 80
TRIAL = timedelta(days=14)
MAX_SEATS = 20
COUNTRIES = {"US": 40, "GB": 12, "DE": 10, "FR": 8, "CA": 8, "AU": 6, "NL": 5, "SE": 3, "ES": 3}
LOCAL_CURRENCIES = {"GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR", "ES": "EUR"}
INDUSTRIES = {
    "saas": 30,
    "ecommerce": 20,
    "fintech": 15,
    "media": 15,
    "health": 10,
    "education": 10,
}
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
    quarterly: Decimal
    yearly: Decimal
    per_seat: bool = False

    def price(self, months: int) -> Decimal:
        return {1: self.monthly, 3: self.quarterly, 12: self.yearly}[months]


STARTER = Plan("Starter", Decimal(29), Decimal(79), Decimal(290))
GROWTH_PLAN = Plan("Growth", Decimal(99), Decimal(269), Decimal(990))
SCALE = Plan("Scale", Decimal(299), Decimal(809), Decimal(2990))
TEAM = Plan("Team", Decimal(12), Decimal(33), Decimal(120), per_seat=True)
TIERS = (STARTER, GROWTH_PLAN, SCALE)
PLAN_WEIGHTS = {STARTER: 40, GROWTH_PLAN: 30, SCALE: 10, TEAM: 20}


@dataclass(frozen=True)
class Rates:
    """How eventful the company is: probabilities per subscription and month unless noted."""

    churn: float = 0.025  # a monthly plan cancels at a renewal (quarterly 2.5x, yearly 8x)
    change: float = 0.04  # upgrade, downgrade, seat or billing-interval change
    past_due: float = 0.01  # a renewal payment fails (then recovers or ends the subscription)
    yearly: float = 0.25  # share of new subscriptions billed yearly (per subscription)
    quarterly: float = 0.1  # share of new subscriptions billed quarterly (per subscription)
    trial: float = 0.35  # first subscriptions starting with a 14-day trial (per customer)
    trial_conversion: float = 0.7  # trials that become paid
    reactivation: float = 0.3  # a churned customer comes back later (per churn)
    second_subscription: float = 0.06  # customers who add a second subscription (per customer)


DEFAULT_RATES = Rates()


@dataclass(frozen=True)
class Price:
    plan: Plan
    months: int  # billing period: 1, 3 or 12
    seats: int = 1

    @property
    def amount(self) -> Decimal:
        return self.plan.price(self.months)

    @property
    def quantity(self) -> int:
        return self.seats if self.plan.per_seat else 1

    @property
    def interval(self) -> tuple[str, int]:
        """(billing interval, interval count) as a subscription-periods CSV gives them."""
        return ("year", 1) if self.months == 12 else ("month", self.months)


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
    end: date | None  # None: still running at the cut-off day
    trial: tuple[date, date] | None = None  # (trial_start, trial_end), on every period


@dataclass(frozen=True)
class Customer:
    """A demo customer: who it is, when it signed up, and its attributes (app/demo/extras.py)."""

    number: int
    id: str
    name: str
    email: str
    country: str
    currency: str
    signup: date
    industry: str
    seats: int  # team size
    self_serve: bool
    onboarded_on: date


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the end of a shorter month."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _stream(seed: int, *key: object) -> random.Random:
    """An independent random stream (string seeds are hashed the same way on every run)."""
    return random.Random(":".join(("tidemill-demo", str(seed), *map(str, key))))


def _offset(rng: random.Random) -> timedelta:
    """A day inside a billing month (months are at least 28 days, so order is kept)."""
    return timedelta(days=rng.randint(1, 27))


def _month_share(months: float) -> float:
    """Sign-ups from `start` to `months` later, in month-0 shares (the integral of 1 + g m)."""
    return months + GROWTH * months * months / 2


def _months_for_share(share: float) -> float:
    return (math.sqrt(1 + 2 * GROWTH * share) - 1) / GROWTH


def _signup(start: date, months: float) -> date:
    whole = math.floor(months)
    first = add_months(start, whole)
    length = calendar.monthrange(first.year, first.month)[1]
    return first + timedelta(days=int((months - whole) * length))


def customers(
    count: int, seed: int, start: date, months: int, today: date, currencies: Mapping[str, str]
) -> Iterator[Customer]:
    """Customers signed up by `today`: `count` of them in the first `months` months, one slot
    of the growth curve each, at a random point of their slot."""
    slot = _month_share(months) / count
    for number in range(1, 1_000_000):
        rng = _stream(seed, number)
        signup = _signup(start, _months_for_share((number - 1 + rng.random()) * slot))
        if signup > today:
            return
        yield _customer(rng, number, signup, currencies)


def _customer(
    rng: random.Random, number: int, signup: date, currencies: Mapping[str, str]
) -> Customer:
    word = rng.choice(COMPANY_WORDS)
    country = rng.choices(list(COUNTRIES), weights=list(COUNTRIES.values()))[0]
    industry = rng.choices(list(INDUSTRIES), weights=list(INDUSTRIES.values()))[0]
    seats = max(1, min(500, round(rng.lognormvariate(2.2, 1.0))))
    self_serve = seats < 25 and rng.random() < 0.8
    slug = word.lower().replace(" ", "")
    return Customer(
        number=number,
        id=f"cus_{number:05d}",
        name=f"{word} {number}",
        email=f"billing@{slug}{number}.example",
        country=country,
        currency=currencies.get(country, "USD"),
        signup=signup,
        industry=industry,
        seats=seats,
        self_serve=self_serve,
        onboarded_on=signup + timedelta(days=rng.randint(0, 21)),
    )


class _Simulation:
    """One customer's subscriptions up to `today`, each from its own random stream."""

    def __init__(self, seed: int, customer: Customer, today: date, rates: Rates) -> None:
        self.seed = seed
        self.customer = customer
        self.today = today
        self.rates = rates

    def histories(self) -> Iterator[History]:
        """Every subscription of the customer: the first, maybe an add-on, reactivations."""
        rng = self.stream(0)
        first = self.subscription(0, self.customer.signup, rng, rng.random() < self.rates.trial)
        yield first
        yield from self.second_subscription(first)
        latest, number = first, 1
        while (restart := self.restart_after(latest, number)) is not None:
            number += 1
            latest = self.subscription(number, restart, self.stream(number), trial=False)
            yield latest

    def stream(self, number: int) -> random.Random:
        return _stream(self.seed, self.customer.number, "subscription", number)

    def restart_after(self, history: History, number: int) -> date | None:
        """The day a churned customer comes back with a new subscription, if it does."""
        paid = history.segments[-1].status != "trialing"
        if not paid or history.end is None or history.end > self.today:
            return None
        rng = _stream(self.seed, self.customer.number, "restart", number)
        if rng.random() >= self.rates.reactivation:
            return None
        restart = add_months(history.end, rng.randint(1, 12)) + _offset(rng)
        return restart if restart <= self.today else None

    def second_subscription(self, first: History) -> Iterator[History]:
        rng = _stream(self.seed, self.customer.number, "add-on")
        if rng.random() >= self.rates.second_subscription:
            return
        start = add_months(first.segments[0].start, rng.randint(1, 12)) + _offset(rng)
        if start <= self.today and (first.end is None or start < first.end):
            plan = rng.choice((STARTER, TEAM))
            price = Price(plan, 1, rng.randint(2, 5) if plan.per_seat else 1)
            yield _Subscription(self, "a", rng).run_from(start, price, trial=False)

    def subscription(self, number: int, start: date, rng: random.Random, trial: bool) -> History:
        subscription = _Subscription(self, str(number), rng)
        return subscription.run_from(start, subscription.new_price(), trial)


class _Subscription:
    """The simulation of one subscription, drawing from its own stream in the order of time."""

    def __init__(self, customer: _Simulation, name: str, rng: random.Random) -> None:
        self.rng = rng
        self.rates = customer.rates
        self.today = customer.today
        self.seats = customer.customer.seats
        self.id = f"sub_{customer.customer.number:05d}_{name}"

    def run_from(self, start: date, price: Price, trial: bool) -> History:
        segments: list[Segment] = []
        trial_days = (start, start + TRIAL) if trial else None
        if trial_days is not None:
            segments.append(Segment(start, "trialing", price))
            start = trial_days[1]
            if self.rng.random() >= self.rates.trial_conversion:
                return History(self.id, tuple(segments), start, trial_days)
        segments.append(Segment(start, "active", price))
        end = self.run(segments, start)
        return History(self.id, tuple(segments), end, trial_days)

    def run(self, segments: list[Segment], anchor: date) -> date | None:
        """Append the paid life of a subscription billed from `anchor`; return its end."""
        month = 0
        while True:
            month += 1
            renewal = add_months(anchor, month)
            if renewal > self.today:
                return None
            price = segments[-1].price
            due = month % price.months == 0
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
        at = renewal if kind == "down" else renewal + _offset(self.rng)
        segments.append(Segment(at, "active", price))
        return anchor, month

    def churn(self, price: Price) -> float:
        monthly = self.rates.churn
        factor = {1: 1.0, 3: 2.5, 12: 8.0}[price.months]
        return min(0.9, factor * monthly)

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
            other = 12 if price.months < 12 else 1
            options.append((replace(price, months=other), "switch"))
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
        draw = self.rng.random() - self.rates.yearly
        months = 12 if draw < 0 else 3 if draw < self.rates.quarterly else 1
        seats = max(2, min(12, self.seats + self.rng.randint(-1, 1))) if plan.per_seat else 1
        return Price(plan, months, seats)


def histories(seed: int, customer: Customer, today: date, rates: Rates) -> Iterator[History]:
    """The subscriptions of `customer` as they stand at the end of `today`."""
    return _Simulation(seed, customer, today, rates).histories()
