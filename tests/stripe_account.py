"""A fake Stripe account for tests: it keeps its objects' states and emits the events Stripe
would send, in either payload shape, written from Stripe's API reference.

Shape "2024" (api_version 2024-06-20): a subscription embeds `discount` (with its coupon), its
items carry `plan` and `price`, the billing period is on the subscription.
Shape "2025" (api_version 2025-03-31.basil): `discounts` lists Discount ids (their objects come
in `customer.discount.*` events, with `source.coupon`), the period is on each item.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

API_VERSIONS = {"2024": "2024-06-20", "2025": "2025-03-31.basil"}
Json = dict[str, Any]


def ts(day: date, hour: int = 12) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp())


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, min(day.day, 28))


class Account:
    def __init__(self) -> None:
        self.events: list[Json] = []
        self.objects: dict[str, Json] = {}  # current state of everything, by id
        self.shapes: dict[str, str] = {}  # customer id -> payload shape
        self._ids = itertools.count(1)

    # --- events --------------------------------------------------------------------------
    def _emit(self, kind: str, obj: Json, at: date, shape: str = "2025", hour: int = 12) -> Json:
        event = {
            "id": f"evt_{next(self._ids):06d}",
            "object": "event",
            "api_version": API_VERSIONS[shape],
            "created": ts(at, hour),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": kind,
        }
        self.events.append(event)
        return event

    # --- catalog -------------------------------------------------------------------------
    def product(self, ident: str, name: str, at: date) -> None:
        self.objects[ident] = {
            "id": ident,
            "object": "product",
            "active": True,
            "created": ts(at),
            "name": name,
            "metadata": {},
            "livemode": False,
        }
        self._emit("product.created", self.objects[ident], at)

    def rename_product(self, ident: str, name: str, at: date) -> None:
        self.objects[ident]["name"] = name
        self._emit("product.updated", self.objects[ident], at)

    def price(
        self,
        ident: str,
        product: str,
        at: date,
        amount: int | None,
        interval: str = "month",
        count: int = 1,
        currency: str = "usd",
        usage_type: str = "licensed",
        tiers: list[Json] | None = None,
        tiers_mode: str | None = None,
        nickname: str | None = None,
    ) -> None:
        self.objects[ident] = {
            "id": ident,
            "object": "price",
            "active": True,
            "billing_scheme": "tiered" if tiers else "per_unit",
            "created": ts(at),
            "currency": currency,
            "livemode": False,
            "nickname": nickname,
            "product": product,
            "recurring": {
                "interval": interval,
                "interval_count": count,
                "usage_type": usage_type,
                "aggregate_usage": "sum" if usage_type == "metered" else None,
                "trial_period_days": None,
            },
            "tiers_mode": tiers_mode,
            "type": "recurring",
            "unit_amount": amount,
            "unit_amount_decimal": None if amount is None else str(amount),
        }
        if tiers is not None:  # as when the price is retrieved with expand[]=tiers
            self.objects[ident]["tiers"] = tiers
        self._emit("price.created", self.objects[ident], at)

    def coupon(
        self, ident: str, at: date, duration: str, months: int | None = None, **off: Any
    ) -> None:
        self.objects[ident] = {
            "id": ident,
            "object": "coupon",
            "amount_off": off.get("amount_off"),
            "currency": "usd" if off.get("amount_off") else None,
            "created": ts(at),
            "duration": duration,
            "duration_in_months": months,
            "livemode": False,
            "percent_off": off.get("percent_off"),
            "valid": True,
        }
        self._emit("coupon.created", self.objects[ident], at)

    # --- customers -----------------------------------------------------------------------
    def customer(
        self, ident: str, at: date, shape: str, country: str = "US", **fields: Any
    ) -> None:
        self.shapes[ident] = shape
        self.objects[ident] = {
            "id": ident,
            "object": "customer",
            "address": {
                "city": None,
                "country": country,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "created": ts(at, 9),
            "currency": None,
            "email": f"{ident}@example.com",
            "livemode": False,
            "metadata": fields.pop("metadata", {}),
            "name": fields.pop("name", f"Customer {ident}"),
        }
        self._emit("customer.created", self.objects[ident], at, shape, hour=9)

    def move_customer(self, ident: str, country: str, at: date) -> None:
        """The customer's address moves to another country (customer.updated)."""
        customer = self.objects[ident]
        customer["address"] = {**customer["address"], "country": country}
        self._emit("customer.updated", customer, at, self.shapes[ident], hour=10)

    # --- subscriptions -------------------------------------------------------------------
    def _plan(self, price: Json) -> Json:
        recurring = price["recurring"]
        return {
            "id": price["id"],
            "object": "plan",
            "active": True,
            "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"],
            "billing_scheme": price["billing_scheme"],
            "currency": price["currency"],
            "interval": recurring["interval"],
            "interval_count": recurring["interval_count"],
            "nickname": price["nickname"],
            "product": price["product"],
            "tiers_mode": price["tiers_mode"],
            "usage_type": recurring["usage_type"],
        }

    def _items(self, sub: Json, items: list[tuple[str, int | None]], at: date) -> Json:
        shape = self.shapes[sub["customer"]]
        data = []
        for position, (price_id, quantity) in enumerate(items):
            price = {k: v for k, v in self.objects[price_id].items() if k != "tiers"}
            item: Json = {
                "id": f"si_{sub['id'][4:]}_{position}",
                "object": "subscription_item",
                "created": ts(at),
                "metadata": {},
                "price": price,
                "subscription": sub["id"],
            }
            if quantity is not None:
                item["quantity"] = quantity
            if shape == "2024":
                item["plan"] = self._plan(price)
            else:
                item["current_period_start"] = ts(at)
                item["current_period_end"] = ts(_next_month(at))
            data.append(item)
        return {
            "object": "list",
            "data": data,
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub['id']}",
        }

    def _event(self, kind: str, sub: Json, at: date, hour: int = 12) -> None:
        shape = self.shapes[sub["customer"]]
        self._emit(kind, sub, at, shape, hour)

    def subscribe(
        self,
        ident: str,
        customer: str,
        at: date,
        items: list[tuple[str, int | None]],
        trial_days: int = 0,
        status: str = "active",
        collection_method: str = "charge_automatically",
    ) -> None:
        currency = self.objects[items[0][0]]["currency"]
        sub: Json = {
            "id": ident,
            "object": "subscription",
            "billing_cycle_anchor": ts(at + timedelta(days=trial_days)),
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "collection_method": collection_method,
            "created": ts(at),
            "currency": currency,
            "customer": customer,
            "ended_at": None,
            "livemode": False,
            "metadata": {},
            "pause_collection": None,
            "start_date": ts(at),
            "status": "trialing" if trial_days else status,
            "trial_end": ts(at + timedelta(days=trial_days)) if trial_days else None,
            "trial_start": ts(at) if trial_days else None,
        }
        sub["items"] = self._items(sub, items, at)
        if self.shapes[customer] == "2024":
            sub["discount"] = None
            sub["current_period_start"] = ts(at)
            sub["current_period_end"] = ts(_next_month(at))
        else:
            sub["discounts"] = []
        self.objects[ident] = sub
        self._event("customer.subscription.created", sub, at)

    def update(
        self,
        ident: str,
        at: date,
        kind: str = "customer.subscription.updated",
        items: list[tuple[str, int | None]] | None = None,
        hour: int = 12,
        **fields: Any,
    ) -> None:
        sub = self.objects[ident]
        if items is not None:
            sub["items"] = self._items(sub, items, at)
        sub.update(fields)
        self._event(kind, sub, at, hour)

    def cancel(self, ident: str, at: date, hour: int = 12) -> None:
        sub = self.objects[ident]
        sub.update(status="canceled", canceled_at=ts(at, hour), ended_at=ts(at, hour))
        self._event("customer.subscription.deleted", sub, at, hour)

    def discount(self, subscription: str, coupon: str, at: date, end: date | None = None) -> None:
        sub = self.objects[subscription]
        ident = f"di_{subscription[4:]}"
        shape = self.shapes[sub["customer"]]
        discount: Json = {
            "id": ident,
            "object": "discount",
            "checkout_session": None,
            "customer": sub["customer"],
            "end": ts(end) if end else None,
            "invoice": None,
            "invoice_item": None,
            "promotion_code": None,
            "start": ts(at),
            "subscription": subscription,
        }
        if shape == "2024":
            discount["coupon"] = copy.deepcopy(self.objects[coupon])
            sub["discount"] = discount
        else:
            discount["source"] = {"coupon": coupon, "type": "coupon"}
            sub["discounts"] = [ident]
        self.objects[ident] = discount
        self._emit("customer.discount.created", discount, at, shape, hour=13)
        self._event("customer.subscription.updated", sub, at, hour=13)

    # --- customer-wide changes -----------------------------------------------------------
    def delete_customer(self, ident: str, at: date, hour: int = 14, stub: bool = False) -> None:
        """Stripe deletes the customer and cancels its live subscriptions at that moment
        (their `customer.subscription.deleted` events first, as Stripe sends them)."""
        for sub in list(self.objects.values()):
            live = sub["object"] == "subscription" and sub["customer"] == ident
            if live and sub["status"] not in ("canceled", "incomplete_expired"):
                self.cancel(sub["id"], at, hour)
        customer = self.objects[ident]
        payload = {"id": ident, "object": "customer", "deleted": True} if stub else customer
        self._emit("customer.deleted", payload, at, self.shapes[ident], hour)

    def customer_discount(
        self, customer: str, coupon: str | None, at: date, end: date | None = None
    ) -> None:
        """Attach `coupon` to the customer, replacing its discount (None: remove it): Stripe
        sends `customer.discount.created` / `.deleted` and `customer.updated`."""
        shape = self.shapes[customer]
        owner = self.objects[customer]
        current = owner.get("discount")
        if coupon is None:
            assert current is not None
            self._emit("customer.discount.deleted", current, at, shape, hour=13)
            owner["discount"] = None
        else:
            discount: Json = {
                "id": f"di_{customer}_{next(self._ids)}",
                "object": "discount",
                "checkout_session": None,
                "customer": customer,
                "end": ts(end) if end else None,
                "invoice": None,
                "invoice_item": None,
                "promotion_code": None,
                "start": ts(at),
                "subscription": None,
            }
            if shape == "2024":
                discount["coupon"] = copy.deepcopy(self.objects[coupon])
            else:
                discount["source"] = {"coupon": coupon, "type": "coupon"}
            self._emit("customer.discount.created", discount, at, shape, hour=13)
            if current is not None:  # replaced: Stripe deletes the old one after
                self._emit("customer.discount.deleted", current, at, shape, hour=13)
            owner["discount"] = discount
        self._emit("customer.updated", owner, at, shape, hour=13)

    # --- invoices ------------------------------------------------------------------------
    def _line(self, sub: Json, price_id: str, quantity: int, start: date, end: date) -> Json:
        price = {k: v for k, v in self.objects[price_id].items() if k != "tiers"}
        line: Json = {
            "id": f"il_{next(self._ids):06d}",
            "object": "line_item",
            "amount": (price["unit_amount"] or 0) * quantity,
            "currency": price["currency"],
            "period": {"start": ts(start, 0), "end": ts(end, 0)},
            "quantity": quantity,
        }
        if self.shapes[sub["customer"]] == "2024":
            line |= {
                "plan": self._plan(price),
                "price": price,
                "proration": False,
                "subscription": sub["id"],
                "type": "subscription",
            }
        else:
            details = {"subscription": sub["id"], "proration": False, "invoice_item": None}
            line |= {
                "parent": {
                    "type": "subscription_item_details",
                    "subscription_item_details": details,
                },
                "pricing": {
                    "type": "price_details",
                    "price_details": {"price": price_id, "product": price["product"]},
                    "unit_amount_decimal": price["unit_amount_decimal"],
                },
            }
        return line

    def invoice(
        self,
        subscription: str,
        start: date,
        end: date,
        items: list[tuple[str, int]],
        status: str = "paid",
        prorations: list[tuple[str, int, date]] | None = None,
    ) -> None:
        """An invoice of a subscription's period `start`..`end` (its recurring lines), with
        proration lines for (price, quantity, from) changes in the period before."""
        sub = self.objects[subscription]
        shape = self.shapes[sub["customer"]]
        lines = [self._line(sub, price, quantity, start, end) for price, quantity in items]
        for price, quantity, since in prorations or []:
            line = self._line(sub, price, quantity, since, start)
            if shape == "2024":
                line["proration"] = True
            else:
                line["parent"]["subscription_item_details"]["proration"] = True
            lines.append(line)
        ident = f"in_{next(self._ids):06d}"
        invoice: Json = {
            "id": ident,
            "object": "invoice",
            "created": ts(start, 1),
            "currency": sub["currency"],
            "customer": sub["customer"],
            "lines": {"object": "list", "data": lines, "has_more": False, "url": ""},
            "period_start": ts(start, 0),
            "period_end": ts(end, 0),
            "status": status,
        }
        if shape == "2024":
            invoice["subscription"] = subscription
        else:
            invoice["parent"] = {
                "type": "subscription_details",
                "subscription_details": {"subscription": subscription, "metadata": {}},
            }
        self.objects[ident] = invoice
        kind = {"paid": "paid", "open": "finalized", "void": "voided"}.get(status, "created")
        self._emit(f"invoice.{kind}", invoice, start, shape, hour=1)
