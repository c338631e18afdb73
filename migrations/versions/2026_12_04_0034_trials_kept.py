"""Trials kept per trial: one row each, derived by the recompute for the customers it touches.

The trials' series and funnel aggregated every trial subscription's versions on each request
(twice: the series and the funnel), which grows with the company: about 0.4 s at 10,000
customers on a slow machine, tens of seconds at a million. The table `trial` holds what that
aggregation gives, one row per trial (app.metrics.trials.trial_facts, METRICS.md 6); the
recompute replaces the rows of the customers it touches, and the queries read the table.
The backfill below is the same definition, over every subscription with a trial.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
INSERT INTO trial (subscription_id, customer_id, plan_id, currency, plan_interval, started,
                   converted, expired)
SELECT subscription_id, customer_id, plan_id, currency, plan_interval, started,
       CASE WHEN converts THEN paid_day END,
       CASE WHEN NOT coalesce(converts, false) THEN least(trial_end, end_day) END
FROM (
    SELECT *, paid_day >= started AND (end_day IS NULL OR paid_day < end_day) AS converts
    FROM (
        SELECT *, least(ended, history_end) AS end_day
        FROM (
            SELECT v.subscription_id, s.customer_id,
                   coalesce(min(v.trial_start),
                            min(v.valid_from) FILTER (WHERE v.status = 'trialing')) AS started,
                   coalesce(max(v.trial_end),
                            max(v.valid_to) FILTER (WHERE v.status = 'trialing')) AS trial_end,
                   min(v.valid_from) FILTER (
                       WHERE v.status IN ('active', 'past_due') AND v.mrr > 0) AS paid_day,
                   min(v.valid_from) FILTER (
                       WHERE v.status IN ('canceled', 'incomplete_expired')) AS ended,
                   CASE WHEN bool_and(v.valid_to IS NOT NULL) THEN max(v.valid_to) END
                       AS history_end,
                   (array_agg(v.plan_id ORDER BY v.valid_from))[1] AS plan_id,
                   (array_agg(v.currency ORDER BY v.valid_from))[1] AS currency,
                   (array_agg(v.billing_interval ORDER BY v.valid_from))[1] AS plan_interval
            FROM subscription_version v JOIN subscription s ON s.id = v.subscription_id
            WHERE v.subscription_id IN (
                SELECT subscription_id FROM subscription_version
                WHERE trial_start IS NOT NULL OR status = 'trialing')
            GROUP BY v.subscription_id, s.customer_id
        ) history
        WHERE started IS NOT NULL
    ) ended
) decided
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE trial (
            subscription_id bigint PRIMARY KEY,
            customer_id bigint NOT NULL,
            plan_id bigint,
            currency text,
            plan_interval text,
            started date NOT NULL,
            converted date,
            expired date
        )
        """
    )
    op.execute("CREATE INDEX trial_customer_idx ON trial (customer_id)")
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute("DROP TABLE trial")
