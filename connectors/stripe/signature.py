"""Stripe's webhook signature scheme (as Stripe documents it for verifying without its library).

`Stripe-Signature: t=<unix time>,v1=<hex>,v1=<hex>,v0=...`: each `v1` is the HMAC-SHA256, keyed
by the endpoint's signing secret, of `"{t}.{raw body}"`. A delivery is authentic when any `v1`
matches any of the endpoint's secrets (several during a rotation) in constant time, and `t` is
within the tolerance of now (300 s: older deliveries may be replays).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

TOLERANCE_SECONDS = 300
HEADER = "stripe-signature"
TIMESTAMP_DIGITS = 18  # a Unix time in seconds has 10; a longer `t` is no timestamp


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The `v1` signature of `body` at `timestamp` (what Stripe computes)."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def header(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """A `Stripe-Signature` header value, one `v1` per secret (as during a rotation)."""
    return ",".join([f"t={timestamp}", *(f"v1={sign(body, s, timestamp)}" for s in secrets)])


def problem(
    value: str | None,
    body: bytes,
    secrets: Sequence[str],
    now: float,
    tolerance: int = TOLERANCE_SECONDS,
) -> str | None:
    """Why the delivery is not authentic, or None when it is."""
    if not value:
        return "no Stripe-Signature header"
    timestamp: int | None = None
    candidates: list[str] = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        if key == "t" and item.isascii() and item.isdigit() and len(item) <= TIMESTAMP_DIGITS:
            timestamp = int(item)
        elif key == "v1":
            candidates.append(item)
    if timestamp is None or not candidates:
        return "the Stripe-Signature header needs t=<timestamp> and at least one v1=<signature>"
    if abs(now - timestamp) > tolerance:
        return f"the signature's timestamp is more than {tolerance} s away from now"
    expected = [sign(body, secret, timestamp) for secret in secrets]
    matched = False
    for candidate in candidates:
        for signature in expected:  # every comparison runs: no early exit to time
            matched |= hmac.compare_digest(candidate.encode(), signature.encode())
    return None if matched else "no v1 signature matches the endpoint's signing secret"
