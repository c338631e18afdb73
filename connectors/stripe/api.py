"""Stripe's API through the official `stripe` client: the backfill's client, and retrieving one
object the webhooks did not give in full."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from app.ingest.objects import Observed
from connectors.stripe.translate import observed


def client(api_key: str, api_base: str | None, http: stripe.HTTPClient) -> stripe.StripeClient:
    addresses: Any = {"api": api_base} if api_base else None
    return stripe.StripeClient(
        api_key, base_addresses=addresses, max_network_retries=2, http_client=http
    )


def retrieve(ident: str, api_key: str, api_base: str | None) -> Observed:
    """A price as Stripe returns it with `expand[]=tiers` (webhooks leave its tiers out),
    observed now; ValueError when the API does not give it."""
    http = stripe.RequestsClient()
    try:
        price = client(api_key, api_base, http).v1.prices.retrieve(ident, {"expand": ["tiers"]})
    except stripe.StripeError as error:
        raise ValueError(f"retrieving price {ident} from Stripe failed: {error}") from None
    finally:
        http.close()  # type: ignore[no-untyped-call]
    response = price.last_response  # as Stripe sent it (the client's objects hold Decimals)
    data = response.data if response is not None else None
    found = dict(data) if isinstance(data, Mapping) else price.to_dict(for_json=True)
    at = datetime.now(UTC)
    return observed(found, at, f"retrieved_{int(at.timestamp())}_{ident}")
