"""The one place where the application is put together (routes, templates, CLI, start-up)."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from click import Group
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.plugins import CLIPluginProtocol, InitPluginProtocol
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from app.lib.db import engine, prepare_schema
from app.lib.logs import RequestLogMiddleware, litestar_logging
from app.lib.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from app.metrics.views import View

ROOT = Path(__file__).resolve().parents[2]
logger = logging.getLogger(__name__)


class ApplicationCore(InitPluginProtocol, CLIPluginProtocol):
    """Wires the app; read start-up here."""

    def __init__(
        self, settings: Settings, views: tuple[View[Any, Any], ...] | None = None, template_dirs: Sequence[Path] = ()
    ) -> None:
        """`views` (default: every view of app.metrics.views) and `template_dirs` (searched
        before templates/) let a test serve a view of its own."""
        self.settings = settings
        self.views = views
        self.template_dirs = list(template_dirs)

    def on_cli_init(self, cli: Group) -> None:
        from app.server.commands import Commands

        Commands().on_cli_init(cli)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        from litestar.middleware import DefineMiddleware

        from app.admin.controllers import DataController
        from app.admin.piccolo import admin
        from app.auth.controllers import AuthController
        from app.auth.guards import AuthMiddleware
        from app.auth.users_controllers import InviteController, UsersController
        from app.lib.web.deadline import Deadline
        from app.lib.web.errors import handle_exception
        from app.lib.web.headers import before_send
        from app.lib.web.openapi import openapi_config
        from app.lib.web.templating import configure
        from app.metrics.controllers import dashboard_page, metrics_router
        from app.metrics.views import VIEWS, view_defaults
        from app.system.health import HealthController

        settings = self.settings
        app_config.route_handlers.extend(
            [
                AuthController,
                UsersController,
                InviteController,
                dashboard_page,
                DataController,
                HealthController,
                admin,
                metrics_router(self.views),
                create_static_files_router(path="/static", directories=[ROOT / "static"], name="static"),
            ]
        )
        app_config.middleware[:0] = [DefineMiddleware(Deadline), DefineMiddleware(AuthMiddleware)]
        app_config.exception_handlers[Exception] = handle_exception
        app_config.before_send.append(before_send)
        app_config.openapi_config = openapi_config()
        app_config.template_config = TemplateConfig(
            directory=[*self.template_dirs, ROOT / "templates"],
            engine=JinjaTemplateEngine,
            engine_callback=partial(configure, defaults=view_defaults(self.views or VIEWS)),
        )
        app_config.logging_config = litestar_logging(settings)

        async def start() -> None:
            await prepare_schema(settings)
            if settings.is_postgres:
                from app.metrics.service import get_metrics_service

                pool_engine: Any = engine()  # a PostgresEngine here, whose pool takes asyncpg's options
                await pool_engine.start_connection_pool(min_size=1, max_size=10)
                await get_metrics_service().listen(settings.database_url)
                # read the shapes now, in the background, rather than on the first uncached request
                background.add(asyncio.create_task(_preload()))
            if not settings.redis_url:
                # Embedded: the in-process broker runs the refresh as a background task here.
                from app.metrics.jobs import trigger_refresh

                await trigger_refresh()
            # The ~150,000 objects of the loaded libraries live as long as the process: out of the
            # collector's sight, a full collection no longer pauses every request for ~0.1 s.
            gc.freeze()

        async def stop() -> None:
            from app.metrics.service import reset_metrics_service

            if not settings.redis_url:
                from app.metrics.jobs import broker

                await broker.shutdown()
            await reset_metrics_service()
            if settings.is_postgres:
                await engine().close_connection_pool()

        app_config.on_startup.append(start)
        app_config.on_shutdown.append(stop)
        return app_config


background: set[asyncio.Task] = set()  # tasks started at start-up (a reference keeps them alive)


async def _preload() -> None:
    from app.metrics.service import get_metrics_service

    try:
        await get_metrics_service().dataset()
    except Exception as error:  # noqa: BLE001 - the first request will try again and say what is wrong
        logger.warning("could not read the dataset at start-up (%s: %s)", type(error).__name__, error)


def build_app(**options: Any) -> Litestar:
    """The app; `options` go to ApplicationCore."""
    try:
        settings = get_settings()
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None
    # `uv run litestar run` serves on PORT unless --port says otherwise.
    os.environ.setdefault("LITESTAR_PORT", str(settings.port))
    # uvicorn believes X-Forwarded-For from 127.0.0.1 by default, which would let a local
    # client pick its own address (and dodge the login limit). Behind a proxy, set
    # FORWARDED_ALLOW_IPS to the proxy's address.
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
    app = Litestar(plugins=[ApplicationCore(settings, **options)])
    if settings.access_log:
        # around Litestar's own handler (routing included), so 404s and 405s are logged too
        app.asgi_handler = RequestLogMiddleware(app.asgi_handler)
    return app
