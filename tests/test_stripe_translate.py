"""Stripe objects into canonical rows, without a database: both payload shapes, histories
read from observed states, signatures, secrets."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest
from cryptography.fernet import Fernet

from app.ingest.objects import Observed
from app.ingest.secrets import SecretKeyError, vault
from connectors.stripe import signature
from connectors.stripe.subscriptions import history
from connectors.stripe.translate import MalformedEvent, customer_bundle, read_event
from tests.edge import settings
from tests.stripe_account import Account, ts


def states(account: Account, subscription: str) -> list[Observed]:
    found: list[Observed] = []
    for event in account.events:
        obj = event["data"]["object"]
        if obj["id"] == subscription:
            found.extend(read_event(event).objects)
    return found


def lookup_of(account: Account) -> Any:
    return account.objects.get


def seats(shape: str) -> Account:
    a = Account()
    a.product("prod", "Seats", date(2024, 1, 1))
    a.price("price", "prod", date(2024, 1, 1), 1000)
    a.coupon("co", date(2024, 1, 1), "repeating", 2, percent_off=50)
    a.customer("cus", date(2024, 1, 5), shape, country="FR", metadata={"Team Size": "12"})
    a.subscribe("sub", "cus", date(2024, 1, 5), [("price", 3)], trial_days=10)
    a.update("sub", date(2024, 1, 15), status="active")
    a.discount("sub", "co", date(2024, 2, 1), end=date(2024, 4, 1))
    a.update("sub", date(2024, 5, 10), items=[("price", 5)])
    a.update("sub", date(2024, 6, 1), cancel_at_period_end=True, cancel_at=ts(date(2024, 7, 10)))
    a.cancel("sub", date(2024, 7, 10))
    return a


EXPECTED = [  # (from, to, status, mrr)
    (date(2024, 1, 5), date(2024, 1, 15), "trialing", 3000),
    (date(2024, 1, 15), date(2024, 2, 1), "active", 3000),
    (date(2024, 2, 1), date(2024, 4, 1), "active", 1500),
    (date(2024, 4, 1), date(2024, 5, 10), "active", 3000),
    (date(2024, 5, 10), date(2024, 7, 10), "active", 5000),  # cancel at period end keeps it
    (date(2024, 7, 10), None, "canceled", 5000),
]


@pytest.mark.parametrize("shape", ["2024", "2025"])
def test_a_subscription_history_reads_the_same_in_both_payload_shapes(shape: str) -> None:
    account = seats(shape)
    versions = history(states(account, "sub"), lookup_of(account))
    assert [(v.valid_from, v.valid_to, v.status, v.mrr) for v in versions] == EXPECTED
    assert {v.trial_start for v in versions} == {date(2024, 1, 5)}


def test_the_order_states_are_given_in_does_not_matter() -> None:
    account = seats("2025")
    found = states(account, "sub")
    assert history(found[::-1], lookup_of(account)) == history(found, lookup_of(account))


def test_one_current_state_is_read_back_from_its_own_timestamps() -> None:
    account = seats("2024")
    [last] = states(account, "sub")[-1:]
    versions = history([last], lookup_of(account))
    # the final items from the start; trial, discount window and end from their fields
    assert [(v.valid_from, v.status, v.mrr) for v in versions] == [
        (date(2024, 1, 5), "trialing", 5000),
        (date(2024, 1, 15), "active", 5000),
        (date(2024, 2, 1), "active", 2500),
        (date(2024, 4, 1), "active", 5000),
        (date(2024, 7, 10), "canceled", 5000),
    ]


def test_a_customer_bundle_carries_its_country_attributes_plans_and_items() -> None:
    account = seats("2025")
    owned = [s for e in account.events for s in read_event(e).objects if s.customer_ref == "cus"]
    bundle = customer_bundle("cus", owned, lookup_of(account))
    assert (bundle.customer.country, bundle.customer.attributes) == ("FR", {"team_size": "12"})
    assert [(p.external_id, p.name, p.product) for p in bundle.plans] == [
        ("price", "Seats (month)", "Seats")
    ]
    [sub] = bundle.subscriptions
    assert [(i.plan, i.quantity, i.mrr) for i in sub.versions[-2].items] == [("price", 5, 5000)]


def test_a_2025_discount_not_seen_yet_is_an_error_until_it_is() -> None:
    account = seats("2025")
    found = states(account, "sub")
    unknown = {k: v for k, v in account.objects.items() if k != "di_"}
    with pytest.raises(ValueError, match="discount di_ not yet known"):
        history(found, unknown.get)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "the body is not a JSON object"),
        ({"id": "evt", "type": "x", "created": 1}, "not a Stripe event: missing data"),
        ({"id": "evt", "type": "x", "created": "soon", "data": {}}, "`created` is not a Unix"),
        (
            {"id": "evt", "type": "customer.created", "created": 1, "data": {"object": {}}},
            "data.object is not a Stripe object",
        ),
    ],
)
def test_a_malformed_event_says_what_is_missing(payload: Any, message: str) -> None:
    with pytest.raises(MalformedEvent, match=message):
        read_event(payload)


def test_unknown_types_are_read_but_not_handled() -> None:
    event = read_event({"id": "e", "type": "radar.x", "created": 1, "data": {"object": {}}})
    assert (event.handled, event.objects) == (False, ())
    assert event.occurred_at == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_the_signature_scheme_accepts_any_v1_of_any_secret_within_300_seconds() -> None:
    body, now = b'{"id": "evt"}', 1_700_000_000
    good = signature.sign(body, "whsec_b", now)
    header = f"t={now},v1={'0' * 64},v1={good},v0=ignored"
    assert signature.problem(header, body, ["whsec_a", "whsec_b"], now) is None
    assert signature.problem(header, body, ["whsec_b"], now + 300) is None
    assert "300 s" in str(signature.problem(header, body, ["whsec_b"], now + 301))
    assert "300 s" in str(signature.problem(header, body, ["whsec_b"], now - 301))
    assert "no v1" in str(signature.problem(header, body + b" ", ["whsec_b"], now))
    assert "no v1" in str(signature.problem(header, body, [], now))


def test_secrets_decrypt_with_any_configured_key_and_rekey_to_the_first() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = vault(settings("", secret_key=old)).seal({"api_key": "sk_live_1234"})
    rotating = vault(settings("", secret_key=f"{new},{old}"))
    assert rotating.open(sealed) == {"api_key": "sk_live_1234"}
    rekeyed = rotating.rotate(sealed)
    assert vault(settings("", secret_key=new)).open(rekeyed) == {"api_key": "sk_live_1234"}
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        vault(settings("", secret_key=new)).open(sealed)
    with pytest.raises(SecretKeyError, match="Fernet keys"):
        vault(settings("", secret_key="not-a-key"))
    assert b"sk_live" not in copy.copy(sealed)
