"""Receiving an uploaded export safely: copied to disk in chunks, gzip unpacked as a stream with a cap.

Polars would unpack a .gz whole in memory (a 1.3 MB gzip bomb reached 790 MB); here memory
stays at one chunk whatever the file, and unpacking stops at `max_unpacked` bytes.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Protocol

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class UploadRefused(Exception):
    """The upload is too big, unpacks too big, or is a broken gzip; the message says which."""


class Readable(Protocol):
    async def read(self, size: int = -1) -> bytes: ...


def _mb(size: int) -> str:
    return f"{size / 1_000_000:,.0f} MB"


async def save_upload(upload: Readable, destination: Path, max_bytes: int, max_unpacked: int) -> Path:
    """Write the upload to `destination`, unpacked if it is gzip. Raises UploadRefused."""
    first = await upload.read(CHUNK)
    packed = first[:2] == GZIP_MAGIC
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if packed else None
    received = written = 0
    with destination.open("wb") as out:
        chunk = first
        while chunk:
            received += len(chunk)
            if received > max_bytes:
                raise UploadRefused(f"the file is larger than the {_mb(max_bytes)} upload limit")
            if inflater is None:
                out.write(chunk)
                written += len(chunk)
            else:
                data = chunk
                while data:
                    try:
                        piece = inflater.decompress(data, CHUNK)
                    except zlib.error as error:
                        raise UploadRefused(f"the file is not a valid gzip file ({error})") from None
                    written += len(piece)
                    if written > max_unpacked:
                        raise UploadRefused(
                            f"the file unpacks to more than {_mb(max_unpacked)}: refused (upload it unpacked, "
                            "or split it)"
                        )
                    out.write(piece)
                    data = inflater.unconsumed_tail
                    if inflater.eof:
                        break
            chunk = await upload.read(CHUNK)
        if inflater is not None and not inflater.eof:
            raise UploadRefused("the gzip file is truncated: upload it again")
    return destination
