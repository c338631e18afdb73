"""Bad import files through the real CLI (`tidemill import subscriptions|attributes`,
`tidemill fx import`): every problem is `file, line N: reason` (the first 20, then how many
more), the exit code is 1, there is no traceback and nothing is stored. The bounds that keep
every total in 64-bit cents are held at import, for every source."""

from __future__ import annotations

import asyncio
import json
import random
import string
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from app.cli import cli
from app.errors import ImportFailed
from app.ingest.fx import Rate, import_rates
from app.ingest.rows import PeriodRow
from app.ingest.subscriptions import load_periods
from app.limits import MAX_MRR
from app.metrics.service import MetricsEngine
from tests.conftest import execute, execute_errors, import_text, table_counts
from tests.edge import real_app, serving
from tests.test_attributes import define

HEADER = b"subscription_id,customer_id,start_date,end_date,monthly_amount\n"
PRICED = b"subscription_id,customer_id,start_date,end_date,amount,interval,quantity\n"
GOOD = b"s1,C1,2024-01-01,,10\n"
TOO_BIG = "an MRR of 92,233,720,368,547,758.07 a month is over the limit of 10,000,000,000 a month"
UNCLOSED = "unclosed quote: the quoted field starting on this line never ends"
SEMICOLONS = (
    "the header line has no commas but semicolons (;): Tidemill reads comma-separated files "
    '(from a spreadsheet, save as "CSV UTF-8 (comma delimited)")'
)


async def tidemill(database_url: str, *args: str) -> Result:
    env: dict[str, str | None] = {"TIDEMILL_DATABASE_URL": database_url}

    def invoke() -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    return await asyncio.to_thread(invoke)


def assert_refused(result: Result, path: Path, *problems: tuple[int, str]) -> list[str]:
    """The command failed on purpose (no traceback) with exactly these bad lines."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line.strip() for line in result.output.splitlines()]
    reported = lines[lines.index("error: import failed, nothing was saved:") + 1 :]
    assert reported[: len(problems)] == [f"{path}, line {n}: {reason}" for n, reason in problems]
    return reported


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (HEADER + b"s1,C\x001,2024-01-01,,10\n", 2, "a NUL byte (\\x00) at column 5: is this a CSV text file?"),
        (HEADER + GOOD + b"s2,Caf\xe9,2024-01-01,,10\n", 3, "not UTF-8 text (byte 0xe9 at column 7): save the file as UTF-8"),
        (HEADER + b"s1,C1,2024-01-01,,1e400\n", 2, "monthly_amount '1e400' is too large (at most 24 digits before the decimal point)"),
        (HEADER + b"s1,C1,2024-01-01,,1e-400\n", 2, "monthly_amount '1e-400' has more than 20 decimal places"),
        (HEADER + b"s1,C1,2024-01-01,,92233720368547758.07\n", 2, f"monthly_amount '92233720368547758.07': {TOO_BIG} per subscription"),
        (HEADER + b"s1,C1,2024-01-01,,10000000000.01\n", 2, "monthly_amount '10000000000.01': an MRR of 10,000,000,000.01 a month is over the limit of 10,000,000,000 a month per subscription"),
        (HEADER + b"s1,C1,2024-01-01,,NaN\n", 2, "monthly_amount 'NaN' is not a finite number"),
        (HEADER + b"s1,C1,2024-01-01,,-inf\n", 2, "monthly_amount '-inf' is not a finite number"),
        (PRICED + b"s1,C1,2024-01-01,,1,month,99999999999999\n", 2, "quantity '99999999999999' is not a whole number between 1 and 2,147,483,647"),
        (PRICED + b"s1,C1,2024-01-01,,10000,month,2000000000\n", 2, "amount '10000': an MRR of 20,000,000,000,000.00 a month is over the limit of 10,000,000,000 a month per subscription"),
        (HEADER + b"s1,C1,1899-12-31,,10\n", 2, "start_date 1899-12-31 is outside 1900-01-01..2200-12-31"),
        (HEADER + b"s1,C1,2024-01-01,2201-01-01,10\n", 2, "end_date 2201-01-01 is outside 1900-01-01..2200-12-31"),
        (HEADER + GOOD + b's2,"C2,2024-01-01,,10\ns3,C3,2024-01-01,,10\n', 3, UNCLOSED),
        (HEADER + b'"s1",C1,2024-01-01,,10\n"s2"x,C2,2024-01-01,,10\n', 3, "bad quoting: a closing quote must be followed by a comma or the line's end"),
        (b"", 1, "the file is empty (expected a header line)"),
        (b"subscription_id,customer_id,start_date,monthly_amount\ns1,C1,2024-01-01,10\n", 1, "missing required column(s): end_date"),
        (b"subscription_id,customer_id,customer_id,start_date,end_date,monthly_amount\n", 1, "column(s) given twice: customer_id"),
        (HEADER + b"s1,C1,2024-01-01,,[/]\n", 2, "monthly_amount '[/]' is not a number"),
        (HEADER + b"s1,C1,2024-01-01,,1_000\n", 2, "monthly_amount '1_000' is not a number"),
        (HEADER + "s1,C1,2024-01-01,,\u0661\u0660\n".encode(), 2, "monthly_amount '\u0661\u0660' is not a number"),
        (HEADER + b"s1,C1,20240101,,10\n", 2, "start_date '20240101' is not a date (expected YYYY-MM-DD)"),
        (HEADER + b"s1,C1,2024-01-01,2024-W10-1,10\n", 2, "end_date '2024-W10-1' is not a date (expected YYYY-MM-DD)"),
        (HEADER.replace(b",", b";") + b"s1;C1;2024-01-01;;10,5\n", 1, SEMICOLONS),
    ],
)  # fmt: skip
async def test_a_bad_subscriptions_file_is_refused_line_by_line(
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
    content: bytes,
    line: int,
    reason: str,
) -> None:
    path = tmp_path / "periods.csv"
    path.write_bytes(content)
    before = await table_counts(engine)
    result = await tidemill(database_url, "import", "subscriptions", str(path))
    assert assert_refused(result, path, (line, reason)) == [f"{path}, line {line}: {reason}"]
    assert await table_counts(engine) == before


async def test_more_than_20_bad_lines_say_how_many_more(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "periods.csv"
    bad = b"".join(b"s%d,C%d,someday,,10\n" % (i, i) for i in range(57))
    path.write_bytes(HEADER + GOOD + bad)
    result = await tidemill(database_url, "import", "subscriptions", str(path))
    reason = "start_date 'someday' is not a date (expected YYYY-MM-DD)"
    reported = assert_refused(result, path, *((n, reason) for n in range(3, 23)))
    assert reported[20:] == ["... and 37 more bad lines"]
    assert (await table_counts(engine))["subscription"] == 0


async def test_checks_across_lines_also_count_the_ones_not_listed(engine: AsyncEngine) -> None:
    overlaps = "".join(f"s1,C1,2024-01-{day:02d},,10\n" for day in range(1, 24))
    with pytest.raises(ImportFailed) as raised:
        await import_text(engine, HEADER.decode() + overlaps)
    assert len(raised.value.lines) == 20
    assert raised.value.more == 2
    assert str(raised.value).endswith("; ... and 2 more bad lines")


async def test_bom_crlf_and_negative_zero_are_accepted(
    metrics: MetricsEngine, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "periods.csv"
    rows = HEADER + GOOD + b"s2,C2,2024-01-01,,-0\n"
    path.write_bytes(b"\xef\xbb\xbf" + rows.replace(b"\n", b"\r\n"))
    result = await tidemill(database_url, "import", "subscriptions", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 2 rows" in result.output
    data = await execute(metrics, '{ snapshot(at: "2024-01-31") { mrr customers } }')
    assert data["snapshot"] == {"mrr": 1000, "customers": 1}
    path.write_bytes(HEADER)
    result = await tidemill(database_url, "import", "subscriptions", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 0 rows" in result.output


ROW = PeriodRow(
    line=7,
    subscription_id="sub_1",
    customer_id="cus_1",
    valid_from=date(2024, 1, 1),
    valid_to=None,
    status="active",
    plan=None,
    quantity=1,
    amount=Decimal(10),
    billing_interval="month",
    interval_count=1,
    currency="USD",
    mrr=1000,
    customer_name=None,
    email=None,
    country=None,
)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"mrr": MAX_MRR + 1}, "an MRR of 10,000,000,000.01 a month is over the limit of 10,000,000,000 a month per subscription"),
        ({"mrr": -1}, "an MRR of -1 cents is negative"),
        ({"quantity": 2**31}, "quantity 2147483648 is not between 0 and 2,147,483,647"),
        ({"interval_count": 0}, "interval count 0 is not between 1 and 2,147,483,647"),
        ({"valid_from": date(1066, 10, 14)}, "start date 1066-10-14 is outside 1900-01-01..2200-12-31"),
        ({"trial_end": date(9999, 1, 1)}, "trial end 9999-01-01 is outside 1900-01-01..2200-12-31"),
        ({"amount": Decimal("NaN")}, "amount NaN is not a finite number >= 0"),
        ({"amount": Decimal("1e30")}, "amount 1E+30 is too large (at most 24 digits before the decimal point)"),
        ({"customer_name": "Ac\x00me"}, "a text value holds a NUL byte"),
        ({"subscription_id": "s" * 201}, "subscription_id is 201 characters long; at most 200"),
        ({"customer_id": "c" * 201}, "customer_id is 201 characters long; at most 200"),
        ({"plan": "p" * 201}, "plan is 201 characters long; at most 200"),
    ],
)  # fmt: skip
async def test_every_source_is_held_to_the_limits(
    engine: AsyncEngine, change: dict[str, Any], reason: str
) -> None:
    """Rows from a source without our CSV parser (Stripe, ...) meet the same checks."""
    rows = [ROW._replace(line=6), ROW._replace(**change)]
    with pytest.raises(ImportFailed) as raised:
        await load_periods(engine, rows, filename="stripe", sha256="-", source="stripe")
    assert raised.value.lines == ((7, reason),)
    assert (await table_counts(engine))["subscription"] == 0


async def test_subscriptions_at_the_limit_add_up_exactly(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    # One customer at 2.5 x 10^12 cents from three subscriptions, two of them added in Jan:
    # past 2^40 cents, where packing a day and an MRR into one bigint would wrap.
    await import_text(
        engine,
        HEADER.decode()
        + "s1,C,2023-12-01,,10000000000\ns2,C,2024-01-10,,10000000000\n"
        + "s3,C,2024-01-20,,5000000000\n",
    )
    query = """{ series(start: "2024-01-01", end: "2024-01-31") {
        points { mrr arr expansion nrr grr churnedCustomers } }
        customers { edges { node { mrr arr } } } }"""
    data = await execute(metrics, query)
    assert data["series"]["points"] == [
        {
            "mrr": 2_500_000_000_000,
            "arr": 30_000_000_000_000,
            "expansion": 1_500_000_000_000,
            "nrr": 2.5,
            "grr": 1.0,
            "churnedCustomers": 0,
        }
    ]
    [edge] = data["customers"]["edges"]
    assert edge["node"] == {"mrr": 2_500_000_000_000, "arr": 30_000_000_000_000}


async def test_rates_that_overflow_64_bit_cents_are_a_clear_error(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    # The largest MRR at the largest rate: 10^12 cents x 10^9 is past 2^63.
    await import_rates(engine, [Rate("EUR", date(2024, 1, 1), Decimal("1e9"))])
    await import_text(
        engine,
        "subscription_id,customer_id,start_date,end_date,monthly_amount,currency\n"
        "x1,X,2024-01-10,2024-02-10,10000000000,EUR\n",
    )
    for query in (
        '{ snapshot(at: "2024-01-20") { mrr } }',
        '{ cohorts(start: "2024-01-01", end: "2024-01-31") { ltv } }',
        '{ churn(start: "2024-01-01", end: "2024-03-31") { revenueChurn { totalAmount } } }',
    ):
        [error] = await execute_errors(metrics, query)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", query
        assert error["message"].startswith("amounts converted to USD exceed 64-bit cents")


def incompressible(length: int) -> str:
    """Text PostgreSQL cannot compress below an index entry's size limit (a run of one letter
    it can: only such text reached that limit)."""
    letters = random.Random(length)
    return "".join(letters.choice(string.ascii_letters) for _ in range(length))


NAMED = b"subscription_id,customer_id,start_date,end_date,monthly_amount,plan,customer_name\n"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("{long},C1,2024-01-01,,10,,", "subscription_id is 20,000 characters long; at most 200"),
        ("s1,{long},2024-01-01,,10,,", "customer_id is 20,000 characters long; at most 200"),
        ("s1,C1,2024-01-01,,10,{long},", "plan is 20,000 characters long; at most 200"),
        ("s1,C1,2024-01-01,,10,{long:.201},", "plan is 201 characters long; at most 200"),
    ],
)
async def test_an_id_or_plan_longer_than_200_characters_is_a_bad_line(
    engine: AsyncEngine, database_url: str, tmp_path: Path, row: str, reason: str
) -> None:
    """Such an id stopped the import with a traceback (an index entry over its size limit)."""
    path = tmp_path / "periods.csv"
    fine = f"s0,C0,2024-01-01,,10,{incompressible(200)},\n".encode()
    path.write_bytes(NAMED + fine + row.format(long=incompressible(20_000)).encode() + b"\n")
    before = await table_counts(engine)
    result = await tidemill(database_url, "import", "subscriptions", str(path))
    assert assert_refused(result, path, (3, reason)) == [f"{path}, line 3: {reason}"]
    assert await table_counts(engine) == before
    path.write_bytes(NAMED + fine)
    result = await tidemill(database_url, "import", "subscriptions", str(path))
    assert result.exit_code == 0, result.output


async def test_a_limit_of_the_database_met_by_a_file_stops_it_saying_so(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    """A name's index entry over its size limit: raised by a statement sent through the driver
    itself, it was a traceback; it is said as any statement the database stops."""
    path = tmp_path / "periods.csv"
    path.write_bytes(NAMED + f"s1,C1,2024-01-01,,10,,{incompressible(20_000)}\n".encode())
    before = await table_counts(engine)
    result = await tidemill(database_url, "import", "subscriptions", str(path))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "error: the database stopped the import (index row requires" in result.output
    assert result.output.rstrip().endswith("nothing was saved")
    assert await table_counts(engine) == before


# --- attributes ------------------------------------------------------------------------------


@pytest.fixture
async def customers(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    await import_text(engine, "subscription_id,customer_id,start_date,end_date,monthly_amount\n"
                      "a1,A,2024-01-01,,100\nb1,B,2024-01-01,,50\n")  # fmt: skip
    await define(metrics)


@pytest.mark.usefixtures("customers")
@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b"customer,industry\nA,sa\x00as\n", 2, "a NUL byte (\\x00) at column 5: is this a CSV text file?"),
        (b"customer,industry\nA,caf\xe9\n", 2, "not UTF-8 text (byte 0xe9 at column 6): save the file as UTF-8"),
        (b"customer,seats\nA,1e400\n", 2, "seats: '1e400' is too large (at most 15 digits before the decimal point) (type number)"),
        (b"customer,seats\nA,NaN\n", 2, "seats: 'NaN' is not a finite number (type number)"),
        (b"customer,seats\nA,0.0000000000000001\n", 2, "seats: '0.0000000000000001' has more than 15 decimal places (type number)"),
        (b'customer,industry\nA,saas\nB,"retail\n', 3, UNCLOSED),
        (b"", 1, "the file is empty (expected a header line)"),
        (b"customer,industry,industry\nA,saas,saas\n", 1, "column(s) given twice: industry"),
        (b"customer;industry\nA;saas\n", 1, SEMICOLONS),
    ],
)  # fmt: skip
async def test_a_bad_attributes_file_is_refused_line_by_line(
    engine: AsyncEngine, database_url: str, tmp_path: Path, content: bytes, line: int, reason: str
) -> None:
    path = tmp_path / "attributes.csv"
    path.write_bytes(content)
    before = await table_counts(engine)
    result = await tidemill(database_url, "import", "attributes", str(path))
    assert assert_refused(result, path, (line, reason)) == [f"{path}, line {line}: {reason}"]
    assert await table_counts(engine) == before


@pytest.mark.usefixtures("customers")
async def test_attributes_more_than_20_bad_lines_and_a_bom(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "attributes.csv"
    path.write_bytes(b"customer,seats\n" + b"".join(b"X%d,1\n" % i for i in range(25)))
    result = await tidemill(database_url, "import", "attributes", str(path))
    reported = assert_refused(result, path, (2, "no customer with id or external id 'X0'"))
    assert reported[20:] == ["... and 5 more bad lines"]
    path.write_bytes(b"\xef\xbb\xbfcustomer,seats\r\nA,12\r\nB,3.5\r\n")
    result = await tidemill(database_url, "import", "attributes", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 2 attribute values for 2 customers" in result.output


@pytest.mark.usefixtures("customers")
async def test_an_uploaded_attributes_file_is_read_the_same_way(
    engine: AsyncEngine, database_url: str
) -> None:
    operations = {
        "query": "mutation($file: Upload!) { importAttributes(file: $file) { rows values } }",
        "variables": {"file": None},
    }
    content = b'\xef\xbb\xbfcustomer,industry\r\nA,caf\xe9\r\nB,r\x00etail\r\nA,"saas\r\n'
    before = await table_counts(engine)
    async with serving(real_app(database_url)) as client:
        response = await client.post(
            "/graphql",
            data={
                "operations": json.dumps(operations),
                "map": json.dumps({"0": ["variables.file"]}),
            },
            files={"0": ("upload.csv", content, "text/csv")},
        )
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["problems"] == [
        "upload.csv, line 2: not UTF-8 text (byte 0xe9 at column 6): save the file as UTF-8",
        "upload.csv, line 3: a NUL byte (\\x00) at column 4: is this a CSV text file?",
        f"upload.csv, line 4: {UNCLOSED}",
    ]
    assert await table_counts(engine) == before


# --- FX rates --------------------------------------------------------------------------------

RATES = b"date,currency,rate\n"


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (RATES + b"2024-01-01,EUR,1.1\x00\n", 2, "a NUL byte (\\x00) at column 19: is this a CSV text file?"),
        (RATES + b"2024-01-01,\xe9UR,1.1\n", 2, "not UTF-8 text (byte 0xe9 at column 12): save the file as UTF-8"),
        (RATES + b"2024-01-01,EUR,1e400\n", 2, "rate '1e400' is out of range: between 0.000000001 and 1,000,000,000, with at most 30 decimal places"),
        (RATES + b"2024-01-01,EUR,NaN\n", 2, "rate 'NaN' must be a positive number"),
        (RATES + b"1899-12-31,EUR,1.1\n", 2, "date 1899-12-31 is outside 1900-01-01..2200-12-31"),
        (RATES + b"2024-01-01,EUR,1.1\n2024-01-01,eur,1.2\n", 3, "the rate of EUR on 2024-01-01 is already given on line 2"),
        (RATES + b'2024-01-01,EUR,"1.1\n2024-01-02,EUR,1.2\n', 2, UNCLOSED),
        (RATES + b"2024-01-01,EUR\n", 2, "2 values, but the header has 3"),
        (b"", 1, "the file is empty (expected a header line)"),
        (b"day,currency,rate\n", 1, "the header must be: date,currency,rate"),
        (b"date\tcurrency\trate\n2024-01-01\tEUR\t1.1\n", 1, SEMICOLONS.replace("semicolons (;)", "tabs")),
    ],
)  # fmt: skip
async def test_a_bad_rates_file_is_refused_line_by_line(
    engine: AsyncEngine, database_url: str, tmp_path: Path, content: bytes, line: int, reason: str
) -> None:
    path = tmp_path / "rates.csv"
    path.write_bytes(content)
    result = await tidemill(database_url, "fx", "import", str(path))
    assert assert_refused(result, path, (line, reason)) == [f"{path}, line {line}: {reason}"]
    assert (await table_counts(engine))["fx_rate"] == 0


async def test_rates_more_than_20_bad_lines_and_crlf(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "rates.csv"
    path.write_bytes(RATES + b"".join(b"2024-01-%02d,EUR,-1\n" % day for day in range(1, 31)))
    result = await tidemill(database_url, "fx", "import", str(path))
    reported = assert_refused(result, path, (2, "rate '-1' must be a positive number"))
    assert reported[20:] == ["... and 10 more bad lines"]
    path.write_bytes(b"\xef\xbb\xbfdate,currency,rate\r\n2024-01-01,EUR,1.1\r\n")
    result = await tidemill(database_url, "fx", "import", str(path))
    assert result.exit_code == 0, result.output
    assert (await table_counts(engine))["fx_rate"] == 1
