"""The scenario company of the Stripe acceptance tests: 22 customers, each one case of
METRICS.md 2 and 6, half of them in each payload shape, and each customer's MRR by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

from tests.stripe_account import Account

D = date
EUR_RATE = "1.1"  # one EUR in USD, from 2024-01-01
TIERS_VOLUME: list[dict[str, Any]] = [
    {
        "up_to": 10,
        "unit_amount": 500,
        "unit_amount_decimal": "500",
        "flat_amount": None,
        "flat_amount_decimal": None,
    },
    {
        "up_to": None,
        "unit_amount": 400,
        "unit_amount_decimal": "400",
        "flat_amount": 1000,
        "flat_amount_decimal": "1000",
    },
]
TIERS_GRADUATED: list[dict[str, Any]] = [
    {
        "up_to": 5,
        "unit_amount": 1000,
        "unit_amount_decimal": "1000",
        "flat_amount": 2000,
        "flat_amount_decimal": "2000",
    },
    {
        "up_to": None,
        "unit_amount": 500,
        "unit_amount_decimal": "500",
        "flat_amount": None,
        "flat_amount_decimal": None,
    },
]

# Each customer's MRR in USD cents from a day on (until its next entry), computed by hand.
EXPECTED: dict[str, list[tuple[date, int]]] = {
    "cus_01": [(D(2024, 1, 10), 2900)],  # Basic monthly
    "cus_02": [(D(2024, 2, 15), 9900)],  # 14-day trial from 02-01, converts
    "cus_03": [],  # 14-day trial from 03-01, expires
    "cus_04": [(D(2024, 1, 5), 2900), (D(2024, 4, 10), 9900)],  # upgrade Basic -> Pro
    "cus_05": [(D(2024, 1, 20), 3000), (D(2024, 5, 5), 5000), (D(2024, 8, 5), 2000)],  # seats
    "cus_06": [(D(2024, 2, 10), 8250)],  # Pro yearly 99000 / 12
    "cus_07": [(D(2024, 3, 3), 10000)],  # Team quarterly 30000 / 3
    "cus_08": [(D(2024, 1, 15), 5800), (D(2024, 6, 1), 4000)],  # volume: 12*400+1000, 8*500
    "cus_09": [(D(2024, 2, 20), 8000)],  # graduated 7: 5*1000+2000 + 2*500
    "cus_10": [(D(2024, 1, 25), 2900)],  # Basic + a metered API item (0)
    "cus_11": [(D(2024, 4, 1), 7425)],  # Pro, 25 % off forever
    "cus_12": [(D(2024, 5, 10), 4950), (D(2024, 8, 10), 9900)],  # Pro, 50 % off 3 months
    "cus_13": [(D(2024, 3, 12), 2900)],  # Basic, 10 USD off once: never recurring
    "cus_14": [(D(2024, 6, 15), 8167)],  # Pro yearly, 10 USD a year off: 8250 - 83.33
    "cus_15": [(D(2024, 1, 8), 2900), (D(2024, 7, 8), 0)],  # cancel at period end (06-20)
    "cus_16": [(D(2024, 2, 2), 9900), (D(2024, 5, 17), 0)],  # canceled at once
    "cus_17": [(D(2024, 1, 12), 2900), (D(2024, 4, 12), 0), (D(2024, 6, 12), 2900)],  # pause
    "cus_18": [(D(2024, 1, 3), 2900), (D(2024, 3, 3), 0), (D(2024, 7, 7), 9900)],  # comes back
    "cus_19": [  # past_due keeps MRR, unpaid does not
        (D(2024, 1, 18), 9900),
        (D(2024, 6, 1), 0),
        (D(2024, 6, 20), 9900),
    ],
    "cus_20": [(D(2024, 2, 14), 5500)],  # EUR 50.00 at 1.1
    "cus_21": [],  # incomplete, then incomplete_expired
    "cus_22": [(D(2024, 4, 4), 11900)],  # Pro + 2 seats
}


def mrr_at(day: date) -> int:
    total = 0
    for changes in EXPECTED.values():
        current = [mrr for start, mrr in changes if start <= day]
        total += current[-1] if current else 0
    return total


def build() -> Account:
    a = Account()
    start = D(2023, 12, 1)
    for product, name in [
        ("prod_basic", "Basic"),
        ("prod_pro", "Pro"),
        ("prod_team", "Team"),
        ("prod_seats", "Seats"),
        ("prod_api", "API calls"),
    ]:
        a.product(product, name, start)
    a.price("price_basic", "prod_basic", start, 2900)
    a.price("price_pro", "prod_pro", start, 9900, nickname="Pro monthly")
    a.price("price_pro_year", "prod_pro", start, 99000, "year")
    a.price("price_team_quarter", "prod_team", start, 30000, "month", 3)
    a.price("price_seat", "prod_seats", start, 1000)
    a.price("price_volume", "prod_seats", start, None, tiers=TIERS_VOLUME, tiers_mode="volume")
    a.price(
        "price_graduated", "prod_seats", start, None, tiers=TIERS_GRADUATED, tiers_mode="graduated"
    )
    a.price("price_api", "prod_api", start, 10, usage_type="metered")
    a.price("price_basic_eur", "prod_basic", start, 5000, currency="eur")
    a.coupon("co_quarter_off", start, "forever", percent_off=25.0)
    a.coupon("co_half_3m", start, "repeating", 3, percent_off=50.0)
    a.coupon("co_ten_once", start, "once", amount_off=1000)
    a.coupon("co_ten_forever", start, "forever", amount_off=1000)

    def customer(number: int, day: date, **fields: object) -> str:
        ident = f"cus_{number:02d}"
        a.customer(ident, day, "2024" if number % 2 else "2025", **fields)  # type: ignore[arg-type]
        return ident

    c = customer(1, D(2024, 1, 10), metadata={"Plan Tier": "smb", "seats": "3"})
    a.subscribe("sub_01", c, D(2024, 1, 10), [("price_basic", 1)])

    c = customer(2, D(2024, 2, 1))
    a.subscribe("sub_02", c, D(2024, 2, 1), [("price_pro", 1)], trial_days=14)
    a.update("sub_02", D(2024, 2, 15), status="active")

    c = customer(3, D(2024, 3, 1))
    a.subscribe("sub_03", c, D(2024, 3, 1), [("price_pro", 1)], trial_days=14)
    a.cancel("sub_03", D(2024, 3, 15))

    c = customer(4, D(2024, 1, 5))
    a.subscribe("sub_04", c, D(2024, 1, 5), [("price_basic", 1)])
    a.update("sub_04", D(2024, 4, 10), items=[("price_pro", 1)])

    c = customer(5, D(2024, 1, 20))
    a.subscribe("sub_05", c, D(2024, 1, 20), [("price_seat", 3)])
    a.update("sub_05", D(2024, 5, 5), items=[("price_seat", 5)])
    a.update("sub_05", D(2024, 8, 5), items=[("price_seat", 2)])

    c = customer(6, D(2024, 2, 10))
    a.subscribe("sub_06", c, D(2024, 2, 10), [("price_pro_year", 1)])

    c = customer(7, D(2024, 3, 3))
    a.subscribe(
        "sub_07", c, D(2024, 3, 3), [("price_team_quarter", 1)], collection_method="send_invoice"
    )

    c = customer(8, D(2024, 1, 15))
    a.subscribe("sub_08", c, D(2024, 1, 15), [("price_volume", 12)])
    a.update("sub_08", D(2024, 6, 1), items=[("price_volume", 8)])

    c = customer(9, D(2024, 2, 20))
    a.subscribe("sub_09", c, D(2024, 2, 20), [("price_graduated", 7)])

    c = customer(10, D(2024, 1, 25))
    a.subscribe("sub_10", c, D(2024, 1, 25), [("price_basic", 1), ("price_api", None)])

    c = customer(11, D(2024, 4, 1))
    a.subscribe("sub_11", c, D(2024, 4, 1), [("price_pro", 1)])
    a.discount("sub_11", "co_quarter_off", D(2024, 4, 1))

    c = customer(12, D(2024, 5, 10))
    a.subscribe("sub_12", c, D(2024, 5, 10), [("price_pro", 1)])
    a.discount("sub_12", "co_half_3m", D(2024, 5, 10), end=D(2024, 8, 10))

    c = customer(13, D(2024, 3, 12))
    a.subscribe("sub_13", c, D(2024, 3, 12), [("price_basic", 1)])
    a.discount("sub_13", "co_ten_once", D(2024, 3, 12))

    c = customer(14, D(2024, 6, 15))
    a.subscribe("sub_14", c, D(2024, 6, 15), [("price_pro_year", 1)])
    a.discount("sub_14", "co_ten_forever", D(2024, 6, 15))

    c = customer(15, D(2024, 1, 8))
    a.subscribe("sub_15", c, D(2024, 1, 8), [("price_basic", 1)])
    a.update("sub_15", D(2024, 6, 20), cancel_at_period_end=True, cancel_at=1720440000)
    a.cancel("sub_15", D(2024, 7, 8))

    c = customer(16, D(2024, 2, 2))
    a.subscribe("sub_16", c, D(2024, 2, 2), [("price_pro", 1)])
    a.cancel("sub_16", D(2024, 5, 17))

    c = customer(17, D(2024, 1, 12))
    a.subscribe("sub_17", c, D(2024, 1, 12), [("price_basic", 1)])
    a.update("sub_17", D(2024, 4, 12), "customer.subscription.paused", status="paused")
    a.update("sub_17", D(2024, 6, 12), "customer.subscription.resumed", status="active")

    c = customer(18, D(2024, 1, 3))
    a.subscribe("sub_18", c, D(2024, 1, 3), [("price_basic", 1)])
    a.cancel("sub_18", D(2024, 3, 3))
    a.subscribe("sub_18b", c, D(2024, 7, 7), [("price_pro", 1)])

    c = customer(19, D(2024, 1, 18))
    a.subscribe("sub_19", c, D(2024, 1, 18), [("price_pro", 1)])
    a.update("sub_19", D(2024, 5, 18), status="past_due")
    a.update("sub_19", D(2024, 6, 1), status="unpaid")
    a.update("sub_19", D(2024, 6, 20), status="active")

    c = customer(20, D(2024, 2, 14), country="DE")
    a.subscribe("sub_20", c, D(2024, 2, 14), [("price_basic_eur", 1)])

    c = customer(21, D(2024, 3, 20))
    a.subscribe("sub_21", c, D(2024, 3, 20), [("price_pro", 1)], status="incomplete")
    a.update("sub_21", D(2024, 3, 21), status="incomplete_expired", ended_at=1711022400)

    c = customer(22, D(2024, 4, 4))
    a.subscribe("sub_22", c, D(2024, 4, 4), [("price_pro", 1), ("price_seat", 2)])

    a.events.sort(key=lambda event: (event["created"], event["id"]))
    return a
