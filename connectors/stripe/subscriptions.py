"""A Stripe subscription's history from every state observed of it.

State i (in event time) holds from the day it was observed until the next one; the first holds
from the subscription's own start. Inside its span a state is read through its own timestamps:
trialing between `trial_start` and `trial_end`, canceled from `ended_at`, each discount only
while it applies. Equal neighbouring days merge into one version.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from app.ingest.canonical import ItemRecord, VersionRecord
from app.ingest.objects import Observed
from connectors.stripe.pricing import (
    Discount,
    Item,
    Price,
    PricingError,
    coupon_of,
    discounted,
    item_shares,
    price_of,
)

Json = Mapping[str, Any]
Lookup = Callable[[str], Json | None]
ENDED = ("canceled", "incomplete_expired")


def day_of(timestamp: Any) -> date | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(int(timestamp), UTC).date()


def _id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return str(value["id"])
    return str(value) if value else None


def _price_payload(item: Json, subscription: Json) -> Json:
    """2025+ items carry `price`; older ones `plan` (or the subscription its single `plan`)."""
    for value in (item.get("price"), item.get("plan"), subscription.get("plan")):
        if isinstance(value, Mapping):
            return value
    raise PricingError(f"subscription item {item.get('id')} has no price")


def untiered(subscription: Json, lookup: Lookup) -> set[str]:
    """Its tiered prices whose tiers neither the payload nor the latest known price holds."""
    data = (subscription.get("items") or {}).get("data") or []
    missing = set()
    for item in data or [{}]:
        try:
            payload = _price_payload(item, subscription)
        except PricingError:
            continue
        if payload.get("billing_scheme") == "tiered" and payload.get("tiers") is None:
            known = lookup(str(payload["id"]))
            if known is None or known.get("tiers") is None:
                missing.add(str(payload["id"]))
    return missing


def _price(item: Json, subscription: Json, lookup: Lookup) -> Price:
    payload = _price_payload(item, subscription)
    if payload.get("billing_scheme") == "tiered" and payload.get("tiers") is None:
        known = lookup(str(payload["id"]))
        if known is not None and known.get("tiers") is not None:
            payload = {**payload, "tiers": known["tiers"]}
    return price_of(payload)


def items_of(subscription: Json, lookup: Lookup) -> list[Item]:
    data = (subscription.get("items") or {}).get("data") or []
    if not data and subscription.get("plan"):  # a single-plan subscription of old
        data = [{"plan": subscription["plan"], "quantity": subscription.get("quantity", 1)}]
    items = []
    for item in data:
        price = _price(item, subscription, lookup)
        quantity = item.get("quantity")
        default = 0 if price.usage_type == "metered" else 1
        items.append(Item(price, int(quantity) if quantity is not None else default))
    return items


def _discount(payload: Json, lookup: Lookup) -> Discount:
    """A Discount of either shape: `coupon` (before 2025) or `source.coupon` (2025+); the
    coupon expanded or an id."""
    source = payload.get("source") or {}
    coupon = source.get("coupon") if source else None
    coupon = coupon or payload.get("coupon")
    if not isinstance(coupon, Mapping):
        known = lookup(str(coupon)) if coupon else None
        if known is None:
            raise PricingError(f"discount {payload.get('id')}: coupon {coupon} not yet known")
        coupon = known
    return Discount(coupon_of(coupon), day_of(payload.get("start")), day_of(payload.get("end")))


def discounts_of(subscription: Json, lookup: Lookup) -> list[Discount]:
    entries: list[Any] = list(subscription.get("discounts") or [])
    if not entries and subscription.get("discount"):
        entries = [subscription["discount"]]
    found = []
    for entry in entries:
        payload = entry if isinstance(entry, Mapping) else lookup(str(entry))
        if payload is None:
            raise PricingError(f"discount {entry} not yet known")
        if not payload.get("deleted"):
            found.append(_discount(payload, lookup))
    return found


def discount_references(entries: Sequence[Any]) -> list[str | None]:
    """Discount ids and coupon ids of discounts of either shape (expanded or ids)."""
    refs: list[str | None] = []
    for entry in entries:
        refs.append(_id(entry))
        if isinstance(entry, Mapping):
            refs += [_id(entry.get("coupon")), _id((entry.get("source") or {}).get("coupon"))]
    return refs


@dataclass(frozen=True)
class CustomerContext:
    """What a subscription reads of its customer: when the customer was deleted (from then on
    its live subscriptions count as canceled) and its customer-level discounts over time."""

    deleted: date | None = None
    # (from day, the customer's discounts from then on), in day order; before the first, the
    # first's discounts (each one only from its own start)
    discounts: tuple[tuple[date, tuple[Discount, ...]], ...] = ()

    def discounts_on(self, day: date) -> tuple[Discount, ...]:
        current: tuple[Discount, ...] = self.discounts[0][1] if self.discounts else ()
        for since, found in self.discounts:
            if since > day:
                break
            current = found
        return current

    def breaks(self) -> set[date]:
        days = {self.deleted} | {since for since, _ in self.discounts}
        for _, found in self.discounts:
            days |= {day for discount in found for day in (discount.start, discount.end)}
        return {day for day in days if day is not None}


NO_CUSTOMER = CustomerContext()


def _customer_slot(customer: Json, lookup: Lookup) -> dict[str, Discount]:
    """The discounts a customer object lists, by id."""
    entries: list[Any] = list(customer.get("discounts") or [])
    if not entries and customer.get("discount"):
        entries = [customer["discount"]]
    found = {}
    for entry in entries:
        payload = entry if isinstance(entry, Mapping) else lookup(str(entry))
        if payload is None:
            raise PricingError(f"discount {entry} not yet known")
        if not payload.get("deleted"):
            found[_id(entry) or "discount"] = _discount(payload, lookup)
    return found


def _next_slot(
    state: Observed, current: dict[str, Discount], lookup: Lookup
) -> dict[str, Discount] | None:
    """The customer's discounts after one state (None: the state says nothing of them). A
    customer has one discount: a new one replaces it; a deletion removes only itself."""
    payload = state.payload
    if state.object_type == "discount":
        if payload.get("subscription"):  # a subscription's own discount
            return None
        ident = str(payload["id"])
        if payload.get("deleted"):
            return {key: found for key, found in current.items() if key != ident}
        return {ident: _discount(payload, lookup)}
    if "discounts" not in payload and "discount" not in payload:
        return None
    return _customer_slot(payload, lookup)


def customer_context(states: Sequence[Observed], lookup: Lookup) -> CustomerContext:
    """The context from the states of the customer and of its customer-level discounts (a
    `customer.discount.*` event, or the customer object's `discount` / `discounts`), in event
    time: the latest observation on a day holds from that day until the next one."""
    ordered = sorted(states, key=lambda state: state.order)
    deleted = next(
        (
            s.observed_at.date()
            for s in ordered
            if s.object_type == "customer" and s.payload.get("deleted")
        ),
        None,
    )
    slots: dict[date, tuple[Discount, ...]] = {}
    current: dict[str, Discount] = {}
    for state in ordered:
        found = _next_slot(state, current, lookup)
        if found is not None:
            current = found
            slots[state.observed_at.date()] = tuple(found[key] for key in sorted(found))
    return CustomerContext(deleted, tuple(sorted(slots.items())))


def references(subscription: Json) -> tuple[str, ...]:
    """Ids the translation may look up: prices, products, discounts, coupons."""
    refs: list[str | None] = []
    for item in (subscription.get("items") or {}).get("data") or []:
        for key in ("price", "plan"):
            value = item.get(key)
            if isinstance(value, Mapping):
                refs += [_id(value), _id(value.get("product"))]
    refs += discount_references(
        [*(subscription.get("discounts") or []), subscription.get("discount")]
    )
    return tuple(sorted({ref for ref in refs if ref}))


class _State:
    """One observed state, read on any day."""

    def __init__(self, payload: Json, lookup: Lookup, customer: CustomerContext) -> None:
        self.payload = payload
        self.customer = customer
        self.items = items_of(payload, lookup)
        self.discounts = discounts_of(payload, lookup)
        self.trial_start = day_of(payload.get("trial_start"))
        self.trial_end = day_of(payload.get("trial_end"))
        self.ended = day_of(payload.get("ended_at"))
        self.currency = str(payload.get("currency") or self._item_currency()).upper()

    def _item_currency(self) -> str:
        return self.items[0].price.currency if self.items else "USD"

    def breaks(self) -> set[date]:
        days = {self.trial_start, self.trial_end, self.ended}
        for discount in self.discounts:
            days |= {discount.start, discount.end}
        return {day for day in days if day is not None} | self.customer.breaks()

    def status_on(self, day: date) -> str:
        status = self._own_status_on(day)
        deleted = self.customer.deleted
        if deleted is not None and day >= deleted and status not in ENDED:
            return "canceled"  # Stripe cancels a deleted customer's subscriptions
        return status

    def discounts_on(self, day: date) -> Sequence[Discount]:
        """The subscription's own discounts; while none is in effect, its customer's (Stripe:
        a subscription's discount overrides the customer's)."""
        if any(discount.in_effect(day) for discount in self.discounts):
            return self.discounts
        return self.customer.discounts_on(day)

    def _own_status_on(self, day: date) -> str:
        status = str(self.payload.get("status"))
        if self.ended is not None and day >= self.ended:
            return status if status in ENDED else "canceled"
        trial_start, trial_end = self.trial_start, self.trial_end
        if trial_start is not None and trial_end is not None and trial_start <= day < trial_end:
            return "trialing"
        if status in ENDED and self.ended is not None:  # read back to before it ended
            return "active" if status == "canceled" else "incomplete"
        return status

    def version_on(self, day: date, until: date | None) -> VersionRecord:
        total, value = discounted(self.items, self.discounts_on(day), day)
        mrr, shares = item_shares(self.items, total, value)
        return VersionRecord(
            valid_from=day,
            valid_to=until,
            status=self.status_on(day),
            currency=self.currency,
            mrr=mrr,
            items=tuple(
                _item_record(item, share) for item, share in zip(self.items, shares, strict=True)
            ),
            trial_start=self.trial_start,
            trial_end=self.trial_end,
            collection_method=self.payload.get("collection_method"),
        )


def _item_record(item: Item, share: int) -> ItemRecord:
    price = item.price
    per_unit = price.period_amount(item.quantity) / item.quantity if item.quantity else Fraction(0)
    return ItemRecord(
        plan=price.id,
        quantity=item.quantity,
        amount=Decimal(per_unit.numerator) / Decimal(per_unit.denominator) / 100,
        mrr=share,
        billing_interval=price.interval,
        interval_count=price.interval_count,
        pricing_model=price.pricing_model,
        usage_type=price.usage_type,
    )


def _spans(states: Sequence[Observed]) -> Iterator[tuple[Observed, date, date | None]]:
    first = states[0].payload
    begin = day_of(first.get("start_date") or first.get("created"))
    starts = [begin] + [state.observed_at.date() for state in states[1:]]
    for index, state in enumerate(states):
        start = max(day for day in starts[: index + 1] if day is not None)
        following = [day for day in starts[index + 1 :] if day is not None]
        end = min(following) if following else None
        if end is None or start < end:
            yield state, start, end


def _same(a: VersionRecord, b: VersionRecord) -> bool:
    return (a.status, a.mrr, a.items, a.currency, a.collection_method) == (
        b.status,
        b.mrr,
        b.items,
        b.currency,
        b.collection_method,
    )


BILLED = ("paid", "open")


def _line_subscription(line: Json, invoice: Json) -> str | None:
    """The subscription a line bills: `subscription` (before 2025) or its parent's details
    (2025+), else the invoice's own."""
    details = (line.get("parent") or {}).get("subscription_item_details") or {}
    parent = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    for value in (
        details.get("subscription"),
        line.get("subscription"),
        parent.get("subscription"),
        invoice.get("subscription"),
    ):
        if value:
            return _id(value)
    return None


def _recurring_line(line: Json) -> bool:
    """A line of type subscription that is not a proration, in either shape."""
    parent = line.get("parent")
    if parent:
        details = parent.get("subscription_item_details") or {}
        return parent.get("type") == "subscription_item_details" and not details.get("proration")
    return line.get("type") == "subscription" and not line.get("proration")


def _line_price(line: Json, lookup: Lookup) -> Json:
    """`price` / `plan` (before 2025) or `pricing.price_details.price` (2025+, an id)."""
    for value in (
        line.get("price"),
        line.get("plan"),
        ((line.get("pricing") or {}).get("price_details") or {}).get("price"),
    ):
        if isinstance(value, Mapping):
            return value
        if value:
            known = lookup(str(value))
            if known is None:
                raise PricingError(f"invoice line {line.get('id')}: price {value} not yet known")
            return known
    raise PricingError(f"invoice line {line.get('id')} has no price")


def line_price_ids(invoice: Json) -> list[str | None]:
    lines = (invoice.get("lines") or {}).get("data") or []
    return [
        _id(((line.get("pricing") or {}).get("price_details") or {}).get("price"))
        or _id(line.get("price"))
        for line in lines
    ]


def billed(
    invoices: Sequence[Observed], ident: str, lookup: Lookup
) -> list[tuple[date, list[Json]]]:
    """What a subscription's paid and open invoices billed it for (their non-proration
    subscription lines): (the period's first day, its items), one per period start."""
    latest: dict[str, Observed] = {}
    for state in sorted(invoices, key=lambda state: state.order):
        latest[state.object_id] = state
    periods: dict[date, tuple[Any, list[Json]]] = {}
    for state in sorted(latest.values(), key=lambda s: (s.payload.get("created") or 0, s.order)):
        invoice = state.payload
        if invoice.get("status") not in BILLED:
            continue
        found: dict[date, list[Json]] = {}
        for line in (invoice.get("lines") or {}).get("data") or []:
            if not _recurring_line(line) or _line_subscription(line, invoice) != ident:
                continue
            start = day_of((line.get("period") or {}).get("start"))
            if start is None:
                continue
            item = {"price": _line_price(line, lookup), "quantity": line.get("quantity")}
            found.setdefault(start, []).append(item)
        for start, items in found.items():
            periods[start] = (state.order, items)  # a later invoice for a period wins
    return [(start, items) for start, (_, items) in sorted(periods.items())]


def _invoiced(
    ordered: Sequence[Observed], invoices: Sequence[Observed], lookup: Lookup
) -> list[Observed]:
    """States read from invoices for the days before the subscription's first observed state
    (where its first state would otherwise be read back): the first state with the billed
    items, from each billed period's start."""
    if not invoices or not ordered:
        return []
    first = ordered[0]
    return [
        Observed(
            object_type=first.object_type,
            object_id=first.object_id,
            observed_at=datetime(start.year, start.month, start.day, tzinfo=UTC),
            event_id=f"invoice:{start.isoformat()}",
            payload={**first.payload, "items": {"data": items}, "plan": None},
        )
        for start, items in billed(invoices, first.object_id, lookup)
        if start < first.observed_at.date()
    ]


def history(
    states: Sequence[Observed],
    lookup: Lookup,
    customer: CustomerContext = NO_CUSTOMER,
    invoices: Sequence[Observed] = (),
) -> tuple[VersionRecord, ...]:
    """The versions of one subscription from all its observed states (any order), read with
    its customer's context (deletion, customer-level discounts) and, before its first
    observed state, what its invoices billed."""
    ordered = sorted(states, key=lambda state: state.order)
    ordered = [*_invoiced(ordered, invoices, lookup), *ordered]
    versions: list[VersionRecord] = []
    for observed, start, end in _spans(ordered):
        state = _State(observed.payload, lookup, customer)
        days = sorted(day for day in state.breaks() if start < day and (end is None or day < end))
        bounds: list[date | None] = [start, *days, end]
        for begin, until in itertools.pairwise(bounds):
            assert begin is not None
            version = state.version_on(begin, until)
            if versions and _same(versions[-1], version):
                versions[-1] = _extended(versions[-1], until)
            else:
                if versions:
                    versions[-1] = _extended(versions[-1], begin)
                versions.append(version)
    return tuple(versions)


def _extended(version: VersionRecord, until: date | None) -> VersionRecord:
    return replace(version, valid_to=until)
