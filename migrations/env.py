"""Alembic environment: Tidemill always hands a live connection in (see app/migrate.py)."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `tidemill migrate`, which supplies the connection")

context.configure(connection=connection, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
