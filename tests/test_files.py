import os
import stat
import threading

import pytest

from edgeprune.files import atomic_open, atomic_write


def test_atomic_write_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "deep" / "model.json"
    assert atomic_write(path, "first") == path and path.read_text() == "first"
    atomic_write(path, b"\x00second", durable=False)
    assert path.read_bytes() == b"\x00second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "last.pt"
    atomic_write(path, b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_permissions_follow_the_umask_like_a_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_concurrent_writers_each_land_whole(tmp_path):
    path = tmp_path / "registry.json"
    payloads = [str(i) * 100_000 for i in range(8)]
    start = threading.Barrier(len(payloads))

    def write(text):
        start.wait()
        atomic_write(path, text, durable=False)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_text() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["registry.json"]


def test_only_write_modes():
    with pytest.raises(ValueError, match="mode"):
        with atomic_open("x", "a"):
            pass
