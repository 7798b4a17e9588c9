"""The CLI's own command groups (data, metrics, users), and the app the Litestar CLI gets when it
runs one of them: no routes, so `litestar data --help` loads neither the web layer nor the
importer (each command imports what it needs)."""

from __future__ import annotations

from click import Group
from litestar import Litestar
from litestar.plugins import CLIPluginProtocol

GROUPS = ("data", "metrics", "users")


class Commands(CLIPluginProtocol):
    def on_cli_init(self, cli: Group) -> None:
        from app.auth.cli import register as register_users
        from app.ingest.cli import register as register_data
        from app.metrics.cli import register as register_metrics

        register_data(cli)
        register_metrics(cli)
        register_users(cli)


def commands_app() -> Litestar:
    from app.lib.logs import litestar_logging
    from app.lib.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as error:
        raise SystemExit(f"error: {error}") from None
    return Litestar(plugins=[Commands()], logging_config=litestar_logging(settings), openapi_config=None)
