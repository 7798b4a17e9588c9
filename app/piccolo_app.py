"""The one Piccolo app: every table of the project, migrations in piccolo_migrations/."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from app.auth.tables import RevokedToken, User
from app.ingest.tables import Import, Invoice, Transaction

APP_CONFIG = AppConfig(
    app_name="shop",
    migrations_folder_path=str(Path(__file__).resolve().parent.parent / "piccolo_migrations"),
    table_classes=[User, RevokedToken, Import, Transaction, Invoice],
    migration_dependencies=[],
    commands=[],
)
