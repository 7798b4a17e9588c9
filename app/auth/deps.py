"""The process's account service."""

from __future__ import annotations

from functools import lru_cache

from app.auth.service import Accounts
from app.lib.cache import get_cache
from app.lib.settings import get_settings


@lru_cache(maxsize=1)
def get_accounts() -> Accounts:
    return Accounts(get_settings(), get_cache())
