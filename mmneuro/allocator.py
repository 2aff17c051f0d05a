"""Freed CPU memory kept for reuse while a model trains (glibc malloc, Linux; elsewhere a no-op).

glibc serves every allocation above its mmap threshold (128 KiB, rising to at most 32 MiB) with a
fresh ``mmap`` and unmaps it on ``free``: a training step's activations and gradients (tensors of
up to ~34 MB at batch 64) are then page-faulted anew on every step, ~60 000 minor page faults
(~240 MB) per MVAE step of benchmarks/bench_models.py. With mmap and heap trimming off, freed blocks
stay in the heap and the next step, which allocates the same sizes, reuses them: the same values,
1.31× (MVAE) / 1.22× (MMVAE) less CPU time per step there (docs/models.md, "Benchmark"). The heap
then holds the step's peak until the settings are restored, which is what the process's peak RSS
holds anyway.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from typing import Iterator

# mallopt parameters (malloc.h) and glibc's defaults for them
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
NO_TRIM = 2**31 - 1  # mallopt takes an int: trim only a free heap top above 2 GiB


def _glibc():
    """The running process's C library if it has glibc's mallopt and malloc_trim, else None (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Within the block, large allocations come from the heap and freed memory stays there; on exit
    glibc's defaults return and the heap is trimmed. Yields whether the setting applies."""
    libc = _glibc()
    if libc is None or not libc.mallopt(M_MMAP_MAX, 0):
        yield False
        return
    libc.mallopt(M_TRIM_THRESHOLD, NO_TRIM)
    try:
        yield True
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
