"""Shop analytics: import a store's transaction export, read its KPIs, trends and top countries.

`create_app` is the factory the Litestar CLI discovers (`uv run litestar run`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from litestar import Litestar


def create_app() -> Litestar:
    from app.server.core import build_app

    return build_app()
