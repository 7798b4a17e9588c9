from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-12-01T09:57:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "invoices: filled from the lines stored before the table existed"


class Stored(Table, tablename="transactions"):
    pass


async def fill() -> None:
    # each invoice with the newest import that has its lines (a migration's raw step runs before
    # its tables are made, hence a migration of its own after the one that creates the table)
    await Stored.raw(
        "INSERT INTO invoices (invoice_no, import_id) "
        "SELECT invoice_no, MAX(import_id) FROM transactions GROUP BY invoice_no"
    ).run()


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="shop", description=DESCRIPTION)
    manager.add_raw(fill)
    return manager
