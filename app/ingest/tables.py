"""Imported data: one row per source line (transactions) and one per import (imports)."""

from typing import TYPE_CHECKING

from piccolo.columns import (
    BigSerial,
    Integer,
    Numeric,
    Text,
    Timestamp,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

if TYPE_CHECKING:
    from piccolo.columns import Serial

# Column limits; the importer rejects longer values with a clear reason.
INVOICE_NO_LENGTH = 20
STOCK_CODE_LENGTH = 32
DESCRIPTION_LENGTH = 1000
COUNTRY_LENGTH = 64


class Import(Table, tablename="imports"):
    """One import of a file. Never deleted, so dataset versions only grow."""

    if TYPE_CHECKING:  # Piccolo adds the `id` primary key when it makes the class
        id: Serial

    file_name = Varchar(length=255)
    sha256 = Varchar(length=64, index=True)  # of the decoded-to-bytes content (after gunzip)
    layout = Varchar(length=20)  # "kaggle" | "online_retail_ii"
    encoding = Varchar(length=20)  # "utf-8" | "cp1252" | "latin-1" | "parquet"
    rows = Integer(default=0)
    rejected_rows = Integer(default=0)
    summary = Text(default="")  # what the import did, in one line: its result page reads it
    started_at = Timestamptz(default=TimestamptzNow())
    finished_at = Timestamptz(default=TimestamptzNow())
    status = Varchar(length=20, default="loaded")  # "loaded" | "replaced" (its rows were replaced)
    dataset_version = Integer(unique=True)  # the version this import produced; caches key on it


class Transaction(Table, tablename="transactions"):
    """The eight source columns, in the source's order, exactly as the file says."""

    id = BigSerial(primary_key=True)  # import order
    invoice_no = Varchar(length=INVOICE_NO_LENGTH)
    stock_code = Varchar(length=STOCK_CODE_LENGTH)
    description = Text(null=True, default=None)
    quantity = Integer()
    invoice_date = Timestamp()
    unit_price = Numeric(digits=(12, 3))
    customer_id = Integer(null=True, default=None)
    country = Varchar(length=COUNTRY_LENGTH)
    import_id = Integer()  # imports.id; no FK constraint: COPY would check it row by row


# The indexes of the lines (created by a migration), which a load into an empty PostgreSQL
# table drops and builds again after the COPY: the transactions page's order and country
# filter, and the invoice number (the overlap check, and lines of the invoices a search matches).
LINE_INDEXES = {
    "transactions_day_id": "CREATE INDEX transactions_day_id ON transactions (invoice_date, id)",
    "transactions_country_day_id": (
        "CREATE INDEX transactions_country_day_id ON transactions (country, invoice_date, id)"
    ),
    "transactions_invoice_no": "CREATE INDEX transactions_invoice_no ON transactions (invoice_no)",
}


class Invoice(Table, tablename="invoices"):
    """Every stored invoice number and the import whose lines it has: how an import finds, in
    milliseconds through the key, which of its invoices are already stored (an overlap)."""

    invoice_no = Varchar(length=INVOICE_NO_LENGTH, primary_key=True)
    import_id = Integer()
