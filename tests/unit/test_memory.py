"""Giving freed heap pages back to the system."""

from __future__ import annotations

import ctypes.util
import platform
import types

import pytest

from trigger_operator import memory


def test_on_glibc_free_pages_go_back() -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    assert memory.give_back_free_memory() is True


def _forget() -> None:
    memory._libc.cache_clear()
    memory._trim.cache_clear()


def test_without_ldconfig_the_processs_own_symbols_are_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    _forget()
    monkeypatch.setattr(ctypes.util, "find_library", lambda _: None)
    try:
        assert memory.give_back_free_memory() is True
    finally:
        _forget()


def test_without_a_c_library_it_says_so_and_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str | None) -> ctypes.CDLL:
        raise OSError(f"{name}: cannot open shared object file")

    _forget()
    monkeypatch.setattr(ctypes, "CDLL", missing)
    try:
        assert memory.give_back_free_memory() is False
        assert memory.limit_arenas() is False
    finally:
        _forget()


def test_on_glibc_the_arenas_are_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert memory.limit_arenas() is True


def test_a_malloc_arena_max_set_by_the_user_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    called: list[tuple[int, int]] = []

    def mallopt(param: int, value: int) -> int:
        called.append((param, value))
        return 1

    libc = types.SimpleNamespace(malloc_trim=lambda pad: 1, mallopt=mallopt)
    monkeypatch.setattr(memory, "_libc", lambda: libc)
    memory._trim.cache_clear()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    try:
        assert memory.limit_arenas() is True
        assert called == []
        monkeypatch.delenv("MALLOC_ARENA_MAX")
        assert memory.limit_arenas(3) is True
        assert called == [(-8, 3)]
    finally:
        memory._trim.cache_clear()  # the real `_libc` comes back with the monkeypatch
