"""Piccolo's entry point: the engine for the configured database and the app registry."""

from piccolo.conf.apps import AppRegistry

from app.lib.db import make_engine
from app.lib.settings import SettingsError, get_settings

try:
    DB = make_engine(get_settings())
except SettingsError as error:  # one line, not a traceback, for `piccolo migrations ...`
    raise SystemExit(f"error: {error}") from None

# Piccolo's users and sessions tables are only for piccolo-admin's sign-in (app/admin/piccolo.py).
APP_REGISTRY = AppRegistry(
    apps=["app.piccolo_app", "piccolo.apps.user.piccolo_app", "piccolo_api.session_auth.piccolo_app"]
)
