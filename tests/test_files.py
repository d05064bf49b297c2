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


def _direct_writes(path) -> list[str]:
    """``line: call`` for each write in ``path`` that does not go through files.atomic_open/atomic_write (or into
    a buffer, a temporary directory or os.devnull), so a crash could leave half an artifact."""
    import ast

    tree = ast.parse(path.read_text(), str(path))
    sinks, scratch = set(), set()  # names of atomic_open/BytesIO targets; line ranges inside TemporaryDirectory
    for node in ast.walk(tree):
        if isinstance(node, ast.With):
            for item in node.items:
                called = ast.unparse(item.context_expr.func) if isinstance(item.context_expr, ast.Call) else ""
                if called == "atomic_open" and isinstance(item.optional_vars, ast.Name):
                    sinks.add(item.optional_vars.id)
                if called == "tempfile.TemporaryDirectory":
                    scratch.update(range(node.lineno, node.end_lineno + 1))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and ast.unparse(node.value.func) == "io.BytesIO":
            sinks.update(t.id for t in node.targets if isinstance(t, ast.Name))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, args = ast.unparse(node.func), node.args
        target = args[1:2] if func == "torch.save" else args[:1] if func.endswith(".savefig") else None
        mode = args[1].value if func == "open" and len(args) > 1 and isinstance(args[1], ast.Constant) else "r"
        into_sink = bool(target) and isinstance(target[0], ast.Name) and target[0].id in sinks
        if ((target is not None and not into_sink)
                or func.startswith(("shutil.copy", "shutil.move")) or func in ("os.replace", "os.rename")
                or (func.endswith((".write_text", ".write_bytes")) and node.lineno not in scratch)
                or (func == "open" and set(mode) & set("wax") and ast.unparse(args[0]) != "os.devnull")):
            found.append((node.lineno, func))
    return [f"{line}: {func}" for line, func in sorted(found)]


def test_edgeprune_writes_files_only_through_the_atomic_helper():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "edgeprune"
    bad = {str(p.relative_to(root)): calls for p in sorted(root.rglob("*.py"))
           if p.name != "files.py" and (calls := _direct_writes(p))}
    assert not bad, f"writes that bypass edgeprune.files.atomic_open/atomic_write: {bad}"


def test_direct_write_check_sees_each_kind(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import io, os, shutil, tempfile, torch\n"
                     "torch.save(1, 'a.pt')\nshutil.copyfile('a', 'b')\nopen('c', 'w')\nfig.savefig('d.png')\n"
                     "p.write_text('x')\nos.replace('e', 'f')\n"
                     "with atomic_open('g') as f:\n    torch.save(1, f)\nbuf = io.BytesIO()\nfig.savefig(buf)\n"
                     "open(os.devnull, 'w')\nwith tempfile.TemporaryDirectory() as t:\n    q.write_bytes(b'')\n")
    assert _direct_writes(probe) == ["2: torch.save", "3: shutil.copyfile", "4: open", "5: fig.savefig",
                                     "6: p.write_text", "7: os.replace"]
