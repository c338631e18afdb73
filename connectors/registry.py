"""The translators of the live sources, by source kind (what the worker and the webhook route
run for a source)."""

from __future__ import annotations

from collections.abc import Mapping

from app.ingest.translator import Translator
from connectors.stripe.translator import TRANSLATOR as STRIPE

TRANSLATORS: Mapping[str, Translator] = {STRIPE.kind: STRIPE}
