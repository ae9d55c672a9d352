"""Reading a ROOT file's raw bytes: which compression algorithm its baskets really use."""

from __future__ import annotations

import struct
from pathlib import Path

import uproot

#: ROOT's compression header starts with 2 bytes naming the algorithm
ALGORITHM_TAG = {"zlib": b"ZL", "lzma": b"XZ", "lz4": b"L4", "zstd": b"ZS"}


def basket_tags(path, tree: str = "Events") -> set[bytes]:
    """The algorithm tag of every compressed basket of ``tree``, read from the raw bytes
    (ROOT stores a basket that does not shrink uncompressed, without a tag)."""
    raw = Path(path).read_bytes()
    tags = set()
    with uproot.open(path) as f:
        for branch in f[tree].itervalues(recursive=True):
            n = int(branch.member("fWriteBasket"))
            for seek in branch.member("fBasketSeek")[:n]:
                # TKey: Nbytes(4) Version(2) ObjLen(4) Datime(4) KeyLen(2) ...
                nbytes, _, objlen, _, keylen = struct.unpack(">ihiih", raw[seek : seek + 16])
                if nbytes - keylen < objlen:
                    tags.add(raw[seek + keylen : seek + keylen + 2])
    return tags
