"""Shop analytics: import a store's transaction export, read its KPIs, trends and top countries.

`create_app` is the factory the Litestar CLI discovers (`uv run litestar run`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# Polars' allocator (jemalloc) keeps freed pages for 10 s by default; loading the frame
# frees a few hundred MB of intermediates, handed back to the OS after 1 s with this.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:1000,muzzy_decay_ms:0")

if TYPE_CHECKING:
    from litestar import Litestar


def create_app() -> Litestar:
    from app.server.core import build_app

    return build_app()
