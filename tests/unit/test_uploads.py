"""Saving an upload: streamed to disk, capped before and after unpacking, a truncated gzip refused."""

from __future__ import annotations

import gzip
import io

import pytest

from app.admin.uploads import UploadRefused, save_upload


class Chunks:
    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)
        self.reads = 0

    async def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return self.stream.read(size)


async def test_save_upload_streams_and_caps(tmp_path):
    plain = b"a,b\n" * 1000
    assert (await save_upload(Chunks(plain), tmp_path / "p", 10_000, 10_000)).read_bytes() == plain
    with pytest.raises(UploadRefused, match="larger than"):
        await save_upload(Chunks(plain), tmp_path / "p", 100, 10_000)
    packed = gzip.compress(plain)
    assert (await save_upload(Chunks(packed), tmp_path / "g", 10_000, 10_000)).read_bytes() == plain
    with pytest.raises(UploadRefused, match="unpacks to more than"):
        await save_upload(Chunks(packed), tmp_path / "g", 10_000, 1_000)
    with pytest.raises(UploadRefused, match="truncated"):
        await save_upload(Chunks(packed[:-12]), tmp_path / "g", 10_000, 10_000)
