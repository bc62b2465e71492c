"""Arrow's allocator for work that reads and writes many Parquet files.

pyarrow's default pool on Linux wheels is mimalloc. Measured on the curation
merge (1M rows + 200k changes, bench/profiles/README.md), jemalloc's pool
left the process's peak RSS about 80 MB lower at the same speed: mimalloc
keeps the pages of each reader thread's freed buffers. A user's own
``ARROW_DEFAULT_MEMORY_POOL`` is left as it is.
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa


def prefer_jemalloc() -> str:
    """Make jemalloc Arrow's default pool unless the user chose one (or the
    wheel has no jemalloc); answers the pool's name."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        with contextlib.suppress(NotImplementedError):
            pa.set_memory_pool(pa.jemalloc_memory_pool())
    return str(pa.default_memory_pool().backend_name)
