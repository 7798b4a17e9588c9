"""Freed memory goes back to the system, so that a process's RSS is what it holds plus one
computation's intermediates, not the sum of every peak it went through (bench/README.md: at
50x the same code holds 536 MB once loaded instead of 855, after a peak of 735 MB instead of
905; a cache miss is slower for it, up to 1.5x).

Two allocators are at work: Polars' (jemalloc, built into it) and glibc's malloc (NumPy, the
database drivers). Neither hands freed pages back promptly by default.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

# read by Polars' jemalloc when Polars is first imported: freed pages go back at once (Polars
# keeps them 0.5 to 1 s, so each step of a load piled its intermediates on the last's)
JEMALLOC = "dirty_decay_ms:0,muzzy_decay_ms:0"
# what Polars itself puts in the environment when it is imported (polars/__init__.py), so a
# child of a process that imported Polars first inherits it: that is not a choice of the user's
POLARS_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"
M_MMAP_THRESHOLD = -3


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): its own rules
        return None


LIBC = _libc()


def configure() -> None:
    """Before Polars is imported. glibc maps a block of 128 kB or more on its own, but raises
    that threshold to the size of any such block freed (up to 32 MB): then the arrays of a few
    MB a view computes come from the heap of the thread that ran it and stay there once freed.
    A fixed threshold keeps them mapped on their own, unmapped when freed."""
    if os.environ.get("_RJEM_MALLOC_CONF", POLARS_DEFAULT) == POLARS_DEFAULT:  # (else the user's own)
        os.environ["_RJEM_MALLOC_CONF"] = JEMALLOC
    if LIBC is not None:
        with contextlib.suppress(AttributeError):
            LIBC.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def release() -> None:
    """Hand glibc's free pages back (after a load or a computed answer: about 0.3 ms at 50x)."""
    if LIBC is not None:
        with contextlib.suppress(AttributeError):
            LIBC.malloc_trim(0)
