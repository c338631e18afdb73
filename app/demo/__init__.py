"""The demo company (`tidemill demo`): a generated, growing subscription business.

`company` simulates customers and their subscriptions from 2022-01-01 up to a given day,
`periods` turns them into the rows an import takes (or a CSV), `load` loads them with the
demo's attributes and saved segments. The same seed and day always give the same company.
"""

from app.demo.company import DEMO_START, Rates, add_months
from app.demo.load import STEPS, DemoCompany, DemoResult, Step, load_demo
from app.demo.periods import generate_periods, write_csv

__all__ = [
    "DEMO_START",
    "STEPS",
    "DemoCompany",
    "DemoResult",
    "Rates",
    "Step",
    "add_months",
    "generate_periods",
    "load_demo",
    "write_csv",
]
