"""synth.allocator: malloc tuned by every command through run_cli, off with SYNTH_MALLOC=system."""

from __future__ import annotations

import platform

import pytest

from synth import allocator
from synth.commands import runner


def test_tuned_on_glibc_and_off_when_asked(monkeypatch):
    monkeypatch.delenv(allocator.ENV, raising=False)
    expected = "tuned" if platform.libc_ver()[0] == "glibc" else "unsupported"
    assert allocator.tune_malloc() == expected
    monkeypatch.setenv(allocator.ENV, "system")
    assert allocator.tune_malloc() == "system"


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.delenv(allocator.ENV, raising=False)
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: pytest.fail("libc must not be touched"))
    assert allocator.tune_malloc() == "unsupported"


def test_every_command_tunes_malloc_before_its_body(monkeypatch):
    order = []
    monkeypatch.setattr(runner, "tune_malloc", lambda: order.append("malloc") or "tuned")
    assert runner.run_cli(lambda: order.append("body") or 0) == 0
    assert order == ["malloc", "body"]
