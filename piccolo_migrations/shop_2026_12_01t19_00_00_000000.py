"""basket_items, the basket grain (app/ingest/shapes.py): one row per invoice, day, country,
customer and product key over the sales and cancellation lines, filled from the stored lines.
Raw SQL, frozen here as it was when this ran; the importer's live copy is app/ingest/shapes.py."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-01T19:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "basket_items (the product views' shape)"

SALES = "substr(invoice_no, 1, 1) NOT IN ('C', 'A') AND quantity > 0 AND unit_price > 0"
CANCELLED = "substr(invoice_no, 1, 1) = 'C'"
COUNTED = f"({CANCELLED} OR {SALES})"

TABLE = """CREATE TABLE basket_items (
    invoice_no VARCHAR(20) NOT NULL,
    day DATE NOT NULL,
    country VARCHAR(64) NOT NULL,
    customer_id INTEGER,
    product VARCHAR(32) NOT NULL,
    lines INTEGER NOT NULL,
    units BIGINT NOT NULL,
    revenue_milli BIGINT NOT NULL
)"""
INDEX = "CREATE INDEX basket_items_day ON basket_items (day)"


def fill(postgres: bool) -> str:
    price = "CAST(unit_price * 1000 AS BIGINT)" if postgres else "CAST(ROUND(unit_price * 1000) AS INTEGER)"
    day = "CAST(invoice_date AS DATE)" if postgres else "substr(invoice_date, 1, 10)"
    product = 'upper(stock_code COLLATE "C")' if postgres else "upper(stock_code)"
    return f"""INSERT INTO basket_items (invoice_no, day, country, customer_id, product, lines, units, revenue_milli)
        SELECT invoice_no, {day}, country, customer_id, {product}, COUNT(*), SUM(quantity), SUM(quantity * {price})
        FROM transactions WHERE {COUNTED}
        GROUP BY invoice_no, {day}, country, customer_id, {product}"""


class Stored(Table, tablename="transactions"):
    pass


async def create() -> None:
    postgres = isinstance(engine_finder(), PostgresEngine)
    for statement in (TABLE, fill(postgres), INDEX):
        await Stored.raw(statement).run()


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="shop", description=DESCRIPTION)
    manager.add_raw(create)
    return manager
