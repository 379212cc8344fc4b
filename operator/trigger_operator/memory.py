"""Keeping the C heap small: fewer allocator arenas, and free pages given back after a
peak of work.

A cold start or a takeover decodes every trigger once and builds its models; CPython
frees them, but glibc's allocator keeps the freed pages mapped, so the process's
resident memory stays at that peak for good. `malloc_trim` hands them back. And glibc
gives every thread that allocates an arena of its own (up to eight per core), each
keeping its own free pages: the operator's few threads (ledger writer, elector, kopf's
executor) need no more than two.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable

#: glibc's `mallopt` parameter for the most arenas (malloc.h).
_M_ARENA_MAX = -8
ARENAS = 2


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # find_library asks ldconfig (or a compiler), which a slim image may lack; then the
    # symbols of the process itself, the C library among them.
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


@functools.cache
def _trim() -> Callable[[int], int] | None:
    trim = getattr(_libc(), "malloc_trim", None)  # glibc only; musl and others lack it
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most `arenas` malloc arenas (before threads start); False where glibc's
    `mallopt` is missing. `MALLOC_ARENA_MAX` in the environment, if set, wins."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None or _trim() is None:  # malloc_trim tells glibc from look-alikes
        return False
    if os.environ.get("MALLOC_ARENA_MAX"):
        return True
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))


def give_back_free_memory() -> bool:
    """Return free heap pages to the system; False where the C library cannot."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
