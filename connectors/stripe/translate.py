"""Stripe events and objects into observed states, and a customer's states into its
canonical rows."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from app.ingest.canonical import CustomerBundle, CustomerRecord, PlanRecord, SubscriptionRecord
from app.ingest.objects import Event, Observed
from app.ingest.translator import TRANSLATION_ERRORS
from connectors.stripe.pricing import PricingError
from connectors.stripe.subscriptions import (
    Lookup,
    customer_context,
    discount_references,
    history,
    line_price_ids,
    references,
    untiered,
)

Json = Mapping[str, Any]

KIND = "stripe"
# Objects whose every state is kept and whose events are applied.
APPLIED_PREFIXES = (
    "customer.",
    "price.",
    "plan.",
    "product.",
    "coupon.",
    "customer.discount.",
    "customer.subscription.",
)
# Stored for the invoice tables of a later issue.
STORED_PREFIXES = ("invoice.", "invoiceitem.", "charge.", "credit_note.")
IGNORED_TYPES = ("customer.source.", "customer.tax_id.", "customer.cash_balance")
OWNED_BY_CUSTOMER = ("subscription", "discount", "invoice", "charge", "credit_note", "invoiceitem")
STUB_KEYS = frozenset(["id", "object", "deleted"])
MAX_NAME = 255  # characters of an id, a type or an API version (Stripe's are far shorter)
LISTS = ("items", "lines")  # an object's list objects (`{"data": [...]}`) that are read
ATTRIBUTE_KEY = re.compile(r"[^a-z0-9_]+")


class MalformedEvent(ValueError):
    """A delivery that is not a Stripe event (its message names what is missing)."""


def _id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return str(value["id"])
    return str(value) if value else None


def moment(timestamp: Any) -> datetime:
    return datetime.fromtimestamp(int(timestamp), UTC)


def handled(event_type: str) -> bool:
    if event_type.startswith(IGNORED_TYPES):
        return False
    return event_type.startswith(APPLIED_PREFIXES + STORED_PREFIXES)


def observed(obj: Json, at: datetime, event_id: str, deleted: bool = False) -> Observed:
    """One object's state as seen at `at` (an event's time, or a backfill's)."""
    kind = str(obj["object"])
    payload = {**obj, "deleted": True} if deleted else obj
    customer = str(obj["id"]) if kind == "customer" else _id(obj.get("customer"))
    refs: tuple[str, ...] = ()
    if kind == "subscription":
        refs = references(obj)
    elif kind == "discount":
        coupon = (obj.get("source") or {}).get("coupon") or obj.get("coupon")
        refs = tuple(ref for ref in (_id(coupon),) if ref)
    elif kind == "customer":
        entries = [*(obj.get("discounts") or []), obj.get("discount")]
        refs = tuple(sorted({ref for ref in discount_references(entries) if ref}))
    elif kind == "invoice":
        refs = tuple(sorted({ref for ref in line_price_ids(obj) if ref}))
    elif kind in ("price", "plan"):
        refs = tuple(ref for ref in (_id(obj.get("product")),) if ref)
    return Observed(
        object_type=kind,
        object_id=str(obj["id"]),
        observed_at=at,
        event_id=event_id,
        payload=payload,
        customer_ref=customer if kind == "customer" or kind in OWNED_BY_CUSTOMER else None,
        refs=refs,
    )


def _name(value: Any, where: str) -> str:
    """An id, a type or an API version: a string of 1 to MAX_NAME characters."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME:
        raise MalformedEvent(f"`{where}` is not a string of 1 to {MAX_NAME} characters")
    return value


def _lists_problem(obj: Json) -> str | None:
    for key in LISTS:
        value = obj.get(key)
        if value is None:
            continue
        data = (value.get("data") or []) if isinstance(value, Mapping) else None
        if not isinstance(data, list) or not all(isinstance(e, Mapping) for e in data):
            return f'data.object.{key} is not a list object ({{"data": [objects]}})'
    if not isinstance(obj.get("discounts") or [], list):
        return "data.object.discounts is not a list"
    return None


def _observed_of(payload: Json, at: datetime) -> Observed:
    """The state an event of an applied type carries (MalformedEvent: it cannot be read)."""
    obj = payload["data"].get("object")
    if not isinstance(obj, Mapping) or "id" not in obj or "object" not in obj:
        raise MalformedEvent("data.object is not a Stripe object")
    _name(obj["id"], "data.object.id")
    _name(obj["object"], "data.object.object")
    problem = _lists_problem(obj)
    if problem is not None:
        raise MalformedEvent(problem)
    deleted = str(payload["type"]).endswith(".deleted")
    try:
        return observed(obj, at, str(payload["id"]), deleted)
    except TRANSLATION_ERRORS as error:
        raise MalformedEvent(f"data.object cannot be read ({error!r})") from None


def read_event(payload: Any) -> Event:
    """A Stripe Event; raises MalformedEvent when it is not one."""
    if not isinstance(payload, Mapping):
        raise MalformedEvent("the body is not a JSON object")
    missing = [key for key in ("id", "type", "created", "data") if key not in payload]
    if missing or not isinstance(payload.get("data"), Mapping):
        raise MalformedEvent(f"not a Stripe event: missing {', '.join(missing) or 'data'}")
    event_id, event_type = _name(payload["id"], "id"), _name(payload["type"], "type")
    version = payload.get("api_version")
    if version is not None:
        _name(version, "api_version")
    try:
        at = moment(payload["created"])
    except (TypeError, ValueError, OverflowError, OSError):
        raise MalformedEvent("`created` is not a Unix timestamp") from None
    known = handled(event_type)
    return Event(
        event_id=event_id,
        type=event_type,
        occurred_at=at,
        api_version=version,
        objects=(_observed_of(payload, at),) if known else (),
        handled=known,
        payload=payload,
    )


def _attribute_key(key: str) -> str:
    cleaned = ATTRIBUTE_KEY.sub("_", key.lower()).strip("_") or "key"
    return (cleaned if cleaned[0].isalpha() else f"m_{cleaned}")[:63]


def customer_record(customer_id: str, payload: Json | None) -> CustomerRecord:
    if payload is None:
        return CustomerRecord(customer_id)
    address = payload.get("address") or {}
    metadata = payload.get("metadata") or {}
    return CustomerRecord(
        external_id=customer_id,
        name=payload.get("name"),
        email=payload.get("email"),
        country=address.get("country"),
        attributes={_attribute_key(str(k)): str(v) for k, v in sorted(metadata.items())},
    )


def _interval_label(price: Json) -> str:
    recurring = price.get("recurring") or price
    count = int(recurring.get("interval_count") or 1)
    interval = str(recurring.get("interval"))
    return interval if count == 1 else f"{count} {interval}"


def plan_record(price: Json, lookup: Lookup) -> PlanRecord:
    """Named by the price's nickname, else its product's name and interval."""
    product = price.get("product")
    if not isinstance(product, Mapping):
        product = lookup(str(product)) if product else None
    product_name = str(product.get("name") or product["id"]) if product else None
    name = price.get("nickname") or f"{product_name or price['id']} ({_interval_label(price)})"
    return PlanRecord(external_id=str(price["id"]), name=str(name), product=product_name)


def _prices(states: Sequence[Observed]) -> dict[str, Json]:
    prices: dict[str, Json] = {}
    for state in states:
        for item in (state.payload.get("items") or {}).get("data") or []:
            for key in ("price", "plan"):
                value = item.get(key)
                if isinstance(value, Mapping):
                    prices.setdefault(str(value["id"]), value)
                    break
    return prices


def customer_bundle(customer_id: str, owned: Sequence[Observed], lookup: Lookup) -> CustomerBundle:
    """A customer's canonical rows from every state of the objects it owns."""
    by_object: dict[str, list[Observed]] = defaultdict(list)
    for state in owned:
        by_object[state.object_id].append(state)
    customer_states = sorted(by_object.pop(customer_id, []), key=lambda s: s.order)
    # a deletion's payload may be a stub (id, deleted): the name and attributes stay
    full = [s.payload for s in customer_states if set(s.payload) - STUB_KEYS]
    latest = full[-1] if full else None
    subscriptions = []
    all_states: list[Observed] = []
    try:
        discounts = [s for s in owned if s.object_type == "discount"]
        context = customer_context([*customer_states, *discounts], lookup)
    except TRANSLATION_ERRORS as error:
        if isinstance(error, PricingError):
            raise
        raise PricingError(f"customer {customer_id}: unreadable ({error!r})") from error
    invoices = [s for s in owned if s.object_type == "invoice"]
    for object_id, states in sorted(by_object.items()):
        if states[0].object_type != "subscription":
            continue
        try:
            versions = history(states, lookup, context, invoices)
            subscriptions.append(SubscriptionRecord(object_id, versions))
        except TRANSLATION_ERRORS as error:
            if isinstance(error, PricingError):
                raise
            raise PricingError(f"subscription {object_id}: unreadable ({error!r})") from error
        all_states.extend(states)
    prices = _prices(all_states)
    plans = tuple(plan_record(prices[key], lookup) for key in sorted(prices))
    return CustomerBundle(customer_record(customer_id, latest), plans, tuple(subscriptions))


def incomplete(owned: Sequence[Observed], lookup: Lookup) -> set[str]:
    """The tiered prices these subscriptions read without knowing their tiers."""
    missing: set[str] = set()
    for state in owned:
        if state.object_type == "subscription":
            missing |= untiered(state.payload, lookup)
    return missing
