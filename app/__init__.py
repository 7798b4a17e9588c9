"""Shop analytics: import a store's transaction export, read its KPIs, trends and top countries.

`create_app` is the factory the Litestar CLI discovers (`uv run litestar run`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from app.lib import memory

memory.configure()

if TYPE_CHECKING:
    from litestar import Litestar


def create_app() -> Litestar:
    from app.server.commands import GROUPS, commands_app

    if _cli_group() in GROUPS:
        # The Litestar CLI builds the app to find its commands; ours need no routes, and
        # building none saves seconds of imports per command (`litestar data --help`).
        return commands_app()
    from app.server.core import build_app

    return build_app()


def _cli_group() -> str | None:
    """The command group this process runs, when it is the Litestar CLI (`litestar data import ...`)."""
    if Path(sys.argv[0]).name != "litestar":
        return None
    words = [arg for arg in sys.argv[1:] if not arg.startswith("-")]
    return words[0] if words else None
