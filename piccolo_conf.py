"""Piccolo's entry point: the engine for the configured database and the app registry."""

from piccolo.conf.apps import AppRegistry

from app.lib.db import make_engine
from app.lib.settings import get_settings

DB = make_engine(get_settings())

APP_REGISTRY = AppRegistry(apps=["app.piccolo_app"])
