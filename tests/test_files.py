"""Caches under XDG_CACHE_HOME, and writes that a reader never sees half done."""

from __future__ import annotations

import pytest

from attn.files import cache_dir, write_atomically


def test_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir("runs") == tmp_path / "attn" / "runs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir("runs").parts[-3:] == (".cache", "attn", "runs")


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "new" / "file.txt"
    write_atomically(path, lambda tmp: tmp.write_text("one"))
    write_atomically(path, lambda tmp: tmp.write_text("two"))
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["file.txt"]


def test_a_failed_write_leaves_the_old_file_untouched_and_no_temporary(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, broken)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_the_suffix_ends_the_temporary_name(tmp_path):
    seen = []
    write_atomically(tmp_path / "arrays.npz", lambda tmp: seen.append(tmp.name) or tmp.write_bytes(b""), suffix=".npz")
    assert seen[0].startswith(".arrays.npz.") and seen[0].endswith(".tmp.npz")
