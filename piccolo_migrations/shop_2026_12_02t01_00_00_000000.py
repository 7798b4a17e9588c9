"""The baskets as integers (app/ingest/shapes.py): product_keys (every product key with an id),
sales_invoices.products (the distinct key ids of each invoice's sales lines), product_returns
(the cancellation lines per day, country and product key), filled from the stored lines; the
line-sized basket_items, which they replace, dropped. Raw SQL, frozen here as it was when this
ran; the importer's live copy is app/ingest/shapes.py."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine.finder import engine_finder
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table

ID = "2026-12-02T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the baskets as key ids in sales_invoices; product_keys, product_returns; no basket_items"

SALES = "substr(invoice_no, 1, 1) NOT IN ('C', 'A') AND quantity > 0 AND unit_price > 0"
CANCELLED = "substr(invoice_no, 1, 1) = 'C'"
COUNTED = f"({CANCELLED} OR {SALES})"


def statements(postgres: bool) -> list[str]:
    price = "CAST(unit_price * 1000 AS BIGINT)" if postgres else "CAST(ROUND(unit_price * 1000) AS INTEGER)"
    day = "CAST(invoice_date AS DATE)" if postgres else "substr(invoice_date, 1, 10)"
    product = 'upper(stock_code COLLATE "C")' if postgres else "upper(stock_code)"
    # (no '{}': Piccolo's raw queries take braces for parameters)
    array, empty = ("INTEGER[]", "ARRAY[]::INTEGER[]") if postgres else ("TEXT", "'[]'")
    basket = (
        f"COALESCE(array_agg(DISTINCT k.id) FILTER (WHERE {SALES}), ARRAY[]::INTEGER[])"
        if postgres
        else f"json_group_array(DISTINCT k.id) FILTER (WHERE {SALES})"
    )
    return [
        "CREATE TABLE product_keys (id INTEGER PRIMARY KEY, key VARCHAR(32) NOT NULL UNIQUE)",
        f"""INSERT INTO product_keys (id, key)
            SELECT ROW_NUMBER() OVER (ORDER BY key), key
            FROM (SELECT DISTINCT {product} AS key FROM transactions WHERE {SALES}) AS keys""",
        """CREATE TABLE product_returns (
            day DATE NOT NULL,
            country VARCHAR(64) NOT NULL,
            product VARCHAR(32) NOT NULL,
            lines INTEGER NOT NULL,
            units BIGINT NOT NULL,
            revenue_milli BIGINT NOT NULL
        )""",
        f"""INSERT INTO product_returns (day, country, product, lines, units, revenue_milli)
            SELECT {day}, country, {product}, COUNT(*), SUM(quantity), SUM(quantity * {price})
            FROM transactions WHERE {CANCELLED}
            GROUP BY {day}, country, {product}""",
        "CREATE INDEX product_returns_day ON product_returns (day)",
        f"ALTER TABLE sales_invoices ADD COLUMN products {array} NOT NULL DEFAULT {empty}",
        # the invoice grain again, each row with its basket (one pass: a per-row update took minutes)
        "DELETE FROM sales_invoices",
        f"""INSERT INTO sales_invoices (invoice_no, invoice_date, day, country, customer_id, cancelled,
                                        all_lines, lines, units, revenue_milli, products)
            SELECT invoice_no, invoice_date, {day}, country, customer_id, {CANCELLED}, COUNT(*),
                   COUNT(CASE WHEN {COUNTED} THEN 1 END),
                   COALESCE(SUM(CASE WHEN {COUNTED} THEN quantity END), 0),
                   COALESCE(SUM(CASE WHEN {COUNTED} THEN quantity * {price} END), 0),
                   {basket}
            FROM transactions LEFT JOIN product_keys AS k ON k.key = {product}
            GROUP BY invoice_no, invoice_date, country, customer_id""",
        "DROP TABLE IF EXISTS basket_items",
    ]


class Stored(Table, tablename="transactions"):
    pass


async def create() -> None:
    postgres = isinstance(engine_finder(), PostgresEngine)
    for statement in statements(postgres):
        await Stored.raw(statement).run()


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="shop", description=DESCRIPTION)
    manager.add_raw(create)
    return manager
