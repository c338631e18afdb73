"""The Stripe translator that app.ingest runs (its Translator protocol)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.ingest.canonical import CustomerBundle
from app.ingest.objects import Event, Json, Observed
from app.ingest.translator import Lookup
from connectors.stripe import api, signature, translate


class StripeTranslator:
    kind = "stripe"

    def verify(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float
    ) -> str | None:
        return signature.problem(headers.get(signature.HEADER), body, secrets, now)

    def read_event(self, payload: Any) -> Event:
        return translate.read_event(payload)

    def customer_bundle(
        self, customer_id: str, owned: Sequence[Observed], lookup: Lookup
    ) -> CustomerBundle:
        return translate.customer_bundle(customer_id, owned, lookup)

    def incomplete(self, owned: Sequence[Observed], lookup: Lookup) -> set[str]:
        return translate.incomplete(owned, lookup)

    def retrieve(self, ident: str, secrets: Mapping[str, str], settings: Json) -> Observed:
        return api.retrieve(ident, secrets["api_key"], settings.get("api_base"))


TRANSLATOR = StripeTranslator()
