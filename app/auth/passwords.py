"""Password hashing with argon2id, off the event loop and bounded in concurrency.

argon2-cffi's defaults take 64 MiB and about 0.1 s of CPU per hash; 40 logins at
once would take 2.6 GB. At most one hash per core runs at a time; the others wait.
"""

from __future__ import annotations

import asyncio
import os
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id
_slots = asyncio.Semaphore(os.cpu_count() or 2)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both cases cost the same."""
    return _hasher.hash("no such user: this only makes the timing equal")


async def hash_password(password: str) -> str:
    async with _slots:
        return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; False otherwise, also for an unknown user (hash None)."""
    async with _slots:
        target = password_hash if password_hash else await asyncio.to_thread(_dummy_hash)
        try:
            await asyncio.to_thread(_hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    return password_hash is not None
