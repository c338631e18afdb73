"""METRICS.md 2 on Stripe prices and coupons: hand-computed cents."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from connectors.stripe.pricing import (
    Discount,
    Item,
    PricingError,
    coupon_of,
    discounted,
    item_shares,
    price_of,
)

TIERS = [
    {"up_to": 5, "unit_amount": 1000, "flat_amount": None},
    {"up_to": 10, "unit_amount": 800, "flat_amount": 500},
    {"up_to": None, "unit_amount": 600, "flat_amount": 1000},
]


def price(
    amount: int | None = 1500,
    interval: str = "month",
    count: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    usage = extra.pop("usage_type", "licensed")
    return {
        "id": "price_x",
        "object": "price",
        "currency": "usd",
        "product": "prod_x",
        "unit_amount": amount,
        "billing_scheme": "per_unit",
        "recurring": {"interval": interval, "interval_count": count, "usage_type": usage},
        **extra,
    }


def mrr(
    items: list[Item], discounts: tuple[Discount, ...] = (), day: date = date(2024, 1, 1)
) -> int:
    total, value = discounted(items, discounts, day)
    return item_shares(items, total, value)[0]


@pytest.mark.parametrize(
    ("amount", "interval", "count", "quantity", "expected"),
    [
        (1500, "month", 1, 3, 4500),
        (120000, "year", 1, 1, 10000),
        (29900, "month", 3, 1, 9967),  # 9966.67
        (1000, "week", 1, 1, 4333),  # 1000 * 52 / 12 = 4333.33
        (100, "day", 1, 1, 3042),  # 100 * 365 / 12 = 3041.67
        (50000, "year", 2, 2, 4167),  # 100000 / 24 = 4166.67
    ],
)
def test_per_unit_prices_are_normalized_to_a_month(
    amount: int, interval: str, count: int, quantity: int, expected: int
) -> None:
    assert mrr([Item(price_of(price(amount, interval, count)), quantity)]) == expected


@pytest.mark.parametrize(("quantity", "expected"), [(3, 3000), (5, 5000), (7, 6100), (12, 8200)])
def test_volume_tiers_price_every_unit_at_the_reached_tier_plus_its_flat_amount(
    quantity: int, expected: int
) -> None:
    tiered = price_of(price(None, billing_scheme="tiered", tiers_mode="volume", tiers=TIERS))
    assert mrr([Item(tiered, quantity)]) == expected


@pytest.mark.parametrize(("quantity", "expected"), [(0, 0), (3, 3000), (7, 7100), (12, 11700)])
def test_graduated_tiers_price_each_unit_at_its_tier_plus_every_reached_flat_amount(
    quantity: int, expected: int
) -> None:
    # 7 = 5 * 1000 + (2 * 800 + 500); 12 = 5000 + (5 * 800 + 500) + (2 * 600 + 1000)
    tiered = price_of(price(None, billing_scheme="tiered", tiers_mode="graduated", tiers=TIERS))
    assert mrr([Item(tiered, quantity)]) == expected


def test_a_tiered_price_without_its_tiers_is_an_error_not_a_zero() -> None:
    tiered = price_of(price(None, billing_scheme="tiered", tiers_mode="volume"))
    with pytest.raises(PricingError, match="tiers are unknown"):
        mrr([Item(tiered, 2)])


def test_metered_items_contribute_nothing_beside_licensed_ones() -> None:
    metered = price_of(price(9999, usage_type="metered"))
    assert mrr([Item(price_of(price(2000)), 1), Item(metered, 0)]) == 2000


def test_decimal_unit_amounts_stay_exact_until_rounded_half_to_even() -> None:
    half_cent = price_of(price(None, unit_amount_decimal="0.5"))
    assert mrr([Item(half_cent, 3)]) == 2  # 1.5 -> 2
    assert mrr([Item(half_cent, 5)]) == 2  # 2.5 -> 2


def test_a_legacy_plan_reads_amount_and_interval_at_its_top_level() -> None:
    plan = {
        "id": "gold",
        "object": "plan",
        "amount": 2500,
        "interval": "month",
        "interval_count": 1,
        "currency": "eur",
        "usage_type": "licensed",
    }
    parsed = price_of(plan)
    assert (parsed.currency, mrr([Item(parsed, 2)])) == ("EUR", 5000)


def discount(
    duration: str, start: date | None = None, end: date | None = None, **off: Any
) -> Discount:
    coupon = coupon_of({"id": "co", "object": "coupon", "duration": duration, **off})
    return Discount(coupon, start, end)


def test_percent_and_amount_coupons_apply_to_the_normalized_sum() -> None:
    items = [Item(price_of(price(1500)), 3)]  # 4500 a month
    assert mrr(items, (discount("forever", percent_off=25),)) == 3375
    assert mrr(items, (discount("forever", amount_off=500),)) == 4000
    assert mrr(items, (discount("forever", amount_off=10000),)) == 0  # never below 0


def test_an_amount_off_is_normalized_by_the_subscriptions_interval() -> None:
    yearly = [Item(price_of(price(120000, "year")), 1)]  # 10000 a month
    assert mrr(yearly, (discount("forever", amount_off=12000),)) == 9000


def test_a_repeating_discount_applies_from_its_start_until_its_end_and_once_never() -> None:
    items = [Item(price_of(price(1000)), 1)]
    repeating = discount("repeating", date(2024, 1, 1), date(2024, 4, 1), percent_off=50)
    assert mrr(items, (repeating,), date(2023, 12, 31)) == 1000
    assert mrr(items, (repeating,), date(2024, 1, 1)) == 500
    assert mrr(items, (repeating,), date(2024, 3, 31)) == 500
    assert mrr(items, (repeating,), date(2024, 4, 1)) == 1000
    assert mrr(items, (discount("once", date(2024, 1, 1), percent_off=50),)) == 1000


def test_item_shares_spread_a_discount_and_add_up_to_the_subscription() -> None:
    items = [Item(price_of(price(1001)), 1) for _ in range(3)]  # 3003 a month
    total, value = discounted(items, (discount("forever", percent_off=50),), date(2024, 1, 1))
    # 1501.5 rounds half to even to 1502; shares of 500.5 each: the two extra cents go first
    assert item_shares(items, total, value) == (1502, [501, 501, 500])


@pytest.mark.parametrize(
    ("currency", "amount", "interval", "quantity", "expected"),
    [
        ("jpy", 1500, "month", 2, 300000),  # ¥1,500 x 2 = ¥3,000.00 a month
        ("jpy", 10000, "year", 1, 83333),  # ¥10,000 / 12 = ¥833.3333 -> 83333 hundredths
        ("krw", 9900, "month", 1, 990000),  # ₩9,900
        ("kwd", 5120, "month", 1, 512),  # 5.120 KWD = 5.12 KWD
        ("kwd", 12250, "year", 1, 102),  # 12.250 KWD / 12 = 1.0208 KWD -> 102 hundredths
        ("isk", 50000, "month", 1, 50000),  # ISK stays two-decimal in Stripe's API
    ],
)
def test_zero_and_three_decimal_currencies_count_hundredths_of_their_major_unit(
    currency: str, amount: int, interval: str, quantity: int, expected: int
) -> None:
    parsed = price_of(price(amount, interval, currency=currency))
    assert mrr([Item(parsed, quantity)]) == expected


def test_a_yen_amount_off_is_in_yen() -> None:
    items = [Item(price_of(price(1500, currency="jpy")), 1)]  # ¥1,500 a month
    yen_off = discount("forever", amount_off=500, currency="jpy")  # ¥500 off
    assert mrr(items, (yen_off,)) == 100000  # ¥1,000.00
