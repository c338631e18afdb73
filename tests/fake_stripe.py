"""A fake Stripe API over HTTP (pytest-httpserver): the list endpoints the backfill reads,
served from a test Account's current objects and events, paginated and expanded the way
Stripe's API reference documents (`limit`, `starting_after`, `has_more`, `expand[]`)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.stripe_account import Account, Json

LISTS = {
    "products": "product",
    "prices": "price",
    "coupons": "coupon",
    "customers": "customer",
    "subscriptions": "subscription",
    "invoices": "invoice",
}


class FakeStripe:
    def __init__(self, account: Account, with_events: bool = True) -> None:
        self.account = account
        self.with_events = with_events
        self.requests: list[str] = []
        self.refusing = False  # retrieving a price answers 404 (as for an unknown id)
        # a listing is computed once per (resource, expansions): the account does not change
        # while it is served
        self.listings: dict[tuple[str, tuple[str, ...]], tuple[list[Json], dict[str, int]]] = {}

    def _objects(self, resource: str, request: Request) -> list[dict[str, Any]]:
        if resource == "events":
            events = self.account.events if self.with_events else []
            return sorted(events, key=lambda e: (e["created"], e["id"]), reverse=True)
        kind = LISTS[resource]
        found = [o for o in self.account.objects.values() if o["object"] == kind]
        expand = [value for key, value in request.args.items(multi=True) if "expand" in key]
        if resource == "prices" and "data.tiers" not in expand:
            found = [{k: v for k, v in o.items() if k != "tiers"} for o in found]
        if resource == "subscriptions" and "data.discounts" in expand:
            found = [self._expanded(o) for o in found]
        return sorted(found, key=lambda o: str(o["id"]))

    def _expanded(self, subscription: dict[str, Any]) -> dict[str, Any]:
        expanded = copy.deepcopy(subscription)
        if "discounts" in expanded:
            expanded["discounts"] = [
                self.account.objects[d] if isinstance(d, str) else d for d in expanded["discounts"]
            ]
        return expanded

    def _listing(self, resource: str, request: Request) -> tuple[list[Json], dict[str, int]]:
        expand = tuple(sorted(v for k, v in request.args.items(multi=True) if "expand" in k))
        key = (resource, expand)
        if key not in self.listings:
            objects = self._objects(resource, request)
            self.listings[key] = (objects, {str(o["id"]): i for i, o in enumerate(objects)})
        return self.listings[key]

    def handle(self, request: Request) -> Response:
        self.requests.append(request.full_path)
        resource = request.path.rsplit("/", 1)[-1]
        objects, positions = self._listing(resource, request)
        after = request.args.get("starting_after")
        if after:
            objects = objects[positions[after] + 1 :]
        limit = int(request.args.get("limit", "10"))
        body = {
            "object": "list",
            "data": objects[:limit],
            "has_more": len(objects) > limit,
            "url": f"/v1/{resource}",
        }
        return Response(json.dumps(body), content_type="application/json")

    def retrieve_price(self, request: Request) -> Response:
        """`GET /v1/prices/{id}`: its tiers only with `expand[]=tiers`."""
        self.requests.append(request.full_path)
        ident = request.path.rsplit("/", 1)[-1]
        found = self.account.objects.get(ident)
        if self.refusing or found is None:
            error = {"type": "invalid_request_error", "message": f"No such price: '{ident}'"}
            return Response(json.dumps({"error": error}), 404, content_type="application/json")
        expand = [value for key, value in request.args.items(multi=True) if "expand" in key]
        price = found if "tiers" in expand else {k: v for k, v in found.items() if k != "tiers"}
        return Response(json.dumps(price), content_type="application/json")

    def install(self, server: HTTPServer) -> None:
        for resource in [*LISTS, "events"]:
            server.expect_request(f"/v1/{resource}", method="GET").respond_with_handler(self.handle)
        server.expect_request(re.compile(r"^/v1/prices/[^/]+$"), method="GET").respond_with_handler(
            self.retrieve_price
        )
