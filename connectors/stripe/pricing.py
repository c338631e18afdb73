"""The MRR of a Stripe subscription, exactly as METRICS.md section 2 defines it.

Amounts are Stripe's: integers (or decimal strings) in the currency's smallest unit, which is
the major unit for Stripe's zero-decimal currencies (JPY 500 is ¥500) and a thousandth for its
three-decimal ones; Tidemill counts hundredths of the major unit in every currency, so each
amount is scaled by `hundredths` (exactly). Every step is exact (`Fraction`) until the
subscription's MRR is rounded to cents, half to even, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from app.ingest.rows import AMOUNT_DECIMALS, AMOUNT_DIGITS
from app.limits import magnitude_problem
from app.money import monthly_factor, round_half_even

Json = Mapping[str, Any]


# https://docs.stripe.com/currencies: amounts given in the major unit, or in thousandths
ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])


def minor_digits(currency: str) -> int:
    """How many decimal places of the major unit one Stripe amount unit of `currency` is."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    return 3 if code in THREE_DECIMAL else 2


def hundredths(currency: str) -> Fraction:
    """How many hundredths of the major unit one Stripe amount unit of `currency` is."""
    return Fraction(100, 10 ** minor_digits(currency))


class PricingError(ValueError):
    """A price or coupon that cannot be read (the event fails and is retried)."""


def _decimal(value: Any) -> Fraction:
    return Fraction(Decimal(str(value)))


AMOUNT_FIELDS = (
    "unit_amount",
    "unit_amount_decimal",
    "amount",
    "flat_amount",
    "flat_amount_decimal",
)


def amount_problem(value: Any, currency: str) -> str | None:
    """Why a Stripe amount (in the currency's smallest unit) is out of the bounds an imported
    amount is held to in the major unit (app.ingest.rows): checked before any arithmetic on
    it, so an exponent like 1e999999999 costs nothing."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return "is not a number"
    if not number.is_finite() or number < 0:
        return "is not a finite number >= 0"
    digits = minor_digits(currency)
    return magnitude_problem(number, AMOUNT_DIGITS + digits, AMOUNT_DECIMALS - digits)


def _amounts_problem(payload: Json, currency: str) -> str | None:
    """The first amount of a price (or of its tiers) out of bounds, named."""
    tiers = payload.get("tiers") or []
    if not isinstance(tiers, list) or not all(isinstance(tier, Mapping) for tier in tiers):
        return "tiers is not a list of tiers"
    entries = [("", payload), *((f"tiers[{i}].", tier) for i, tier in enumerate(tiers))]
    for prefix, entry in entries:
        for field in AMOUNT_FIELDS:
            value = entry.get(field)
            problem = None if value is None else amount_problem(value, currency)
            if problem is not None:
                return f"{prefix}{field} {value} (the currency's smallest unit) {problem}"
    return None


def _amount(entry: Json, field: str) -> Fraction:
    """`unit_amount` / `flat_amount`, preferring the exact `*_decimal` form; absent is 0."""
    decimal = entry.get(f"{field}_decimal")
    if decimal is not None:
        return _decimal(decimal)
    value = entry.get(field)
    return Fraction(int(value)) if value is not None else Fraction(0)


def _tier_limit(tier: Json) -> float | int:
    limit = tier.get("up_to")
    return float("inf") if limit in (None, "inf") else int(limit)


def volume_amount(tiers: Sequence[Json], quantity: int) -> Fraction:
    """All units at the tier the quantity falls in, plus that tier's flat amount."""
    for tier in tiers:
        if quantity <= _tier_limit(tier):
            return _amount(tier, "unit_amount") * quantity + _amount(tier, "flat_amount")
    raise PricingError("a volume price whose tiers do not reach the quantity")


def graduated_amount(tiers: Sequence[Json], quantity: int) -> Fraction:
    """Each unit at its own tier, plus the flat amount of every tier reached."""
    total, below = Fraction(0), 0
    for tier in tiers:
        if quantity <= below:
            break
        units = int(min(quantity, _tier_limit(tier))) - below
        total += _amount(tier, "unit_amount") * units + _amount(tier, "flat_amount")
        below += units
    return total


@dataclass(frozen=True)
class Price:
    """What MRR needs of a Stripe price (or legacy plan)."""

    id: str
    product: str | None
    nickname: str | None
    interval: str
    interval_count: int
    usage_type: str  # licensed | metered
    billing_scheme: str  # per_unit | tiered
    tiers_mode: str | None  # volume | graduated
    tiers: tuple[Json, ...] | None  # None: not in the payload (Stripe omits them unexpanded)
    unit_amount: Fraction
    currency: str

    @property
    def pricing_model(self) -> str:
        return "tiered" if self.billing_scheme == "tiered" else "per_unit"

    def period_amount(self, quantity: int) -> Fraction:
        """METRICS.md 2 step 1: the item's amount per billing period (metered: 0), in
        hundredths of the currency's major unit."""
        if self.usage_type == "metered":
            return Fraction(0)
        if self.billing_scheme != "tiered":
            amount = self.unit_amount * quantity
        elif self.tiers is None:
            raise PricingError(f"price {self.id} is tiered but its tiers are unknown")
        elif self.tiers_mode == "graduated":
            amount = graduated_amount(self.tiers, quantity)
        else:
            amount = volume_amount(self.tiers, quantity)
        return amount * hundredths(self.currency)

    def monthly(self, quantity: int) -> Fraction:
        """METRICS.md 2 step 2: normalized by interval and interval_count."""
        return self.period_amount(quantity) * monthly_factor(self.interval, self.interval_count)


def _product_id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return str(value["id"])
    return str(value) if value else None


def price_of(payload: Json) -> Price:
    """A Price (`recurring`) or a legacy Plan (`interval` at the top level)."""
    recurring = payload.get("recurring") or payload
    interval = recurring.get("interval")
    if interval not in ("day", "week", "month", "year"):
        raise PricingError(f"price {payload.get('id')} is not recurring (interval {interval!r})")
    currency = str(payload.get("currency") or "usd").upper()
    problem = _amounts_problem(payload, currency)
    if problem is not None:
        raise PricingError(f"price {payload.get('id')}: {problem}")
    scheme = payload.get("billing_scheme") or "per_unit"
    unit = _amount(payload, "unit_amount") if "recurring" in payload else _amount(payload, "amount")
    tiers = payload.get("tiers")
    return Price(
        id=str(payload["id"]),
        product=_product_id(payload.get("product")),
        nickname=payload.get("nickname"),
        interval=interval,
        interval_count=int(recurring.get("interval_count") or 1),
        usage_type=recurring.get("usage_type") or "licensed",
        billing_scheme=scheme,
        tiers_mode=payload.get("tiers_mode"),
        tiers=tuple(tiers) if tiers is not None else None,
        unit_amount=unit,
        currency=currency,
    )


@dataclass(frozen=True)
class Coupon:
    id: str
    percent_off: Fraction | None
    amount_off: Fraction | None  # hundredths of the major unit of its currency
    duration: str  # forever | repeating | once


def _percent_problem(value: Any) -> str | None:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return "is not a number"
    if not number.is_finite() or not 0 <= number <= 100:
        return "is not a percentage from 0 to 100"
    return magnitude_problem(number, AMOUNT_DIGITS, AMOUNT_DECIMALS)


def coupon_of(payload: Json) -> Coupon:
    percent = payload.get("percent_off")
    amount = payload.get("amount_off")
    if percent is None and amount is None:
        raise PricingError(f"coupon {payload.get('id')} has neither percent_off nor amount_off")
    currency = str(payload.get("currency") or "usd")
    problems = [
        f"{field} {problem}"
        for field, problem in (
            ("percent_off", percent is not None and _percent_problem(percent)),
            ("amount_off", amount is not None and amount_problem(amount, currency)),
        )
        if problem
    ]
    if problems:
        raise PricingError(f"coupon {payload.get('id')}: {problems[0]}")
    return Coupon(
        id=str(payload["id"]),
        percent_off=_decimal(percent) if percent is not None else None,
        amount_off=(int(amount) * hundredths(currency) if amount is not None else None),
        duration=str(payload.get("duration") or "once"),
    )


@dataclass(frozen=True)
class Discount:
    coupon: Coupon
    start: date | None
    end: date | None

    def applies_on(self, day: date) -> bool:
        """METRICS.md 2 step 3: forever from its start; repeating from start until end; once
        never (a one-off discount is not recurring)."""
        if self.coupon.duration == "once":
            return False
        if self.start is not None and day < self.start:
            return False
        return not (
            self.coupon.duration == "repeating" and self.end is not None and day >= self.end
        )

    def in_effect(self, day: date) -> bool:
        """Attached on `day` (from its start, before its end), whatever its duration: what
        makes a subscription's discount override its customer's."""
        started = self.start is None or self.start <= day
        return started and (self.end is None or day < self.end)


@dataclass(frozen=True)
class Item:
    price: Price
    quantity: int

    @property
    def monthly(self) -> Fraction:
        return self.price.monthly(self.quantity)


def discounted(
    items: Sequence[Item], discounts: Sequence[Discount], day: date
) -> tuple[Fraction, Fraction]:
    """(normalized sum, after the discounts applying on `day`), exact, never below 0."""
    total = sum((item.monthly for item in items), Fraction(0))
    value = total
    first = items[0].price if items else None
    for discount in discounts:
        if not discount.applies_on(day):
            continue
        coupon = discount.coupon
        if coupon.percent_off is not None:
            value *= 1 - coupon.percent_off / 100
        elif coupon.amount_off is not None and first is not None:
            value -= coupon.amount_off * monthly_factor(first.interval, first.interval_count)
    return total, max(value, Fraction(0))


def item_shares(items: Sequence[Item], total: Fraction, value: Fraction) -> tuple[int, list[int]]:
    """The subscription's MRR in cents (METRICS.md 2 step 4) and each item's share of it:
    the discount spread in proportion, rounded so that the shares add up exactly (largest
    remainders first, ties to the earlier item)."""
    mrr = round_half_even(value)
    if total == 0:
        return mrr, [0] * len(items)
    exact = [item.monthly * value / total for item in items]
    shares = [int(share) for share in exact]  # floor: shares are >= 0
    order = sorted(range(len(items)), key=lambda i: (-(exact[i] - shares[i]), i))
    for index in order[: mrr - sum(shares)]:
        shares[index] += 1
    return mrr, shares
