"""The in-process cache store: bounded, and its entries expire."""

from __future__ import annotations

import asyncio

from app.lib.cache import BoundedMemoryStore


async def test_memory_store_is_bounded_and_expires():
    store = BoundedMemoryStore(max_entries=3)
    for key in "abcd":
        await store.set(key, key.encode())
    assert await store.get("a") is None and await store.get("d") == b"d"
    await store.set("e", b"e", expires_in=1)
    assert await store.get("e") == b"e"
    await asyncio.sleep(1.1)
    assert await store.get("e") is None
