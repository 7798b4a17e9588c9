"""The data shapes (sales_invoices, product_days), filled from the stored lines, and the line
indexes the transactions page and the overlap check read through (keyset order, country,
invoice number). Raw SQL: the statements are frozen here as they were when this ran; the
importer's live copies are in app/ingest/shapes.py and app/ingest/tables.py."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-01T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "sales_invoices and product_days (the shapes the views read), line indexes"

SALES = "substr(invoice_no, 1, 1) NOT IN ('C', 'A') AND quantity > 0 AND unit_price > 0"
CANCELLED = "substr(invoice_no, 1, 1) = 'C'"
COUNTED = f"({CANCELLED} OR {SALES})"

TABLES = [
    """CREATE TABLE sales_invoices (
        invoice_no VARCHAR(20) NOT NULL,
        invoice_date TIMESTAMP NOT NULL,
        day DATE NOT NULL,
        country VARCHAR(64) NOT NULL,
        customer_id INTEGER,
        cancelled BOOLEAN NOT NULL,
        all_lines INTEGER NOT NULL,
        lines INTEGER NOT NULL,
        units BIGINT NOT NULL,
        revenue_milli BIGINT NOT NULL
    )""",
    "CREATE INDEX sales_invoices_day ON sales_invoices (day)",
    """CREATE TABLE product_days (
        day DATE NOT NULL,
        country VARCHAR(64) NOT NULL,
        product VARCHAR(32) NOT NULL,
        description TEXT,
        lines INTEGER NOT NULL,
        units BIGINT NOT NULL,
        revenue_milli BIGINT NOT NULL
    )""",
    "CREATE INDEX product_days_day ON product_days (day)",
    "CREATE INDEX transactions_day_id ON transactions (invoice_date, id)",
    "CREATE INDEX transactions_country_day_id ON transactions (country, invoice_date, id)",
    "CREATE INDEX transactions_invoice_no ON transactions (invoice_no)",
]


def fill(postgres: bool) -> list[str]:
    price = "CAST(unit_price * 1000 AS BIGINT)" if postgres else "CAST(ROUND(unit_price * 1000) AS INTEGER)"
    day = "CAST(invoice_date AS DATE)" if postgres else "substr(invoice_date, 1, 10)"
    product = 'upper(stock_code COLLATE "C")' if postgres else "upper(stock_code)"
    return [
        f"""INSERT INTO sales_invoices
            (invoice_no, invoice_date, day, country, customer_id, cancelled, all_lines, lines, units, revenue_milli)
            SELECT invoice_no, invoice_date, {day}, country, customer_id, {CANCELLED}, COUNT(*),
                   COUNT(CASE WHEN {COUNTED} THEN 1 END),
                   COALESCE(SUM(CASE WHEN {COUNTED} THEN quantity END), 0),
                   COALESCE(SUM(CASE WHEN {COUNTED} THEN quantity * {price} END), 0)
            FROM transactions
            GROUP BY invoice_no, invoice_date, country, customer_id""",
        f"""INSERT INTO product_days (day, country, product, description, lines, units, revenue_milli)
            SELECT {day}, country, {product}, description, COUNT(*), SUM(quantity), SUM(quantity * {price})
            FROM transactions WHERE {SALES}
            GROUP BY {day}, country, {product}, description""",
    ]


class Stored(Table, tablename="transactions"):
    pass


async def create() -> None:
    postgres = isinstance(engine_finder(), PostgresEngine)
    for statement in TABLES + fill(postgres):
        await Stored.raw(statement).run()


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="shop", description=DESCRIPTION)
    manager.add_raw(create)
    return manager
