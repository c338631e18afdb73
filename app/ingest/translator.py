"""What a live source's connector provides to the shared pipeline (app.ingest)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from app.ingest.canonical import CustomerBundle
from app.ingest.objects import Event, Json, Observed

Lookup = Callable[[str], Json | None]  # the latest state of an object by its id
# What reading a payload of an unexpected shape raises in a translator's pure code (a string
# where an object was, a number out of range, JSON nested too deep): the event it came in
# fails with it, alone.
TRANSLATION_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    ArithmeticError,
    RecursionError,
)


class Translator(Protocol):
    kind: str

    def verify(
        self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float
    ) -> str | None:
        """Why a webhook delivery is not authentic (None: it is)."""

    def read_event(self, payload: Any) -> Event:
        """The event of a delivery; ValueError names what is malformed."""

    def customer_bundle(
        self, customer_id: str, owned: Sequence[Observed], lookup: Lookup
    ) -> CustomerBundle:
        """A customer's canonical rows from all states of the objects it owns; ValueError
        (retried later) when something it needs is not known yet."""

    def incomplete(self, owned: Sequence[Observed], lookup: Lookup) -> set[str]:
        """Ids of objects these states read that the events did not give in full (Stripe: a
        tiered price without its tiers): the worker retrieves them from the source's API."""

    def retrieve(self, ident: str, secrets: Mapping[str, str], settings: Json) -> Observed:
        """One object fetched from the source's API now (blocking); ValueError names why it
        could not be."""
