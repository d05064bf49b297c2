"""The layer contract holds, and edgeprune/ uses only public names of edgeprune_agent."""
import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: pip install -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT / "device_agents"),
                                                         os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([exe, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_layer_contract_is_kept():
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_layer_contract_catches_an_upward_import(tmp_path):
    """A copy of the package with measure importing prune (the old cycle) breaks the contract."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "edgeprune", tmp_path / "edgeprune", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "edgeprune" / "measure" / "variants.py", "a") as f:
        f.write("\nfrom edgeprune.prune.budget import parse_budget  # upward\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0
    assert "edgeprune.measure.variants -> edgeprune.prune.budget" in proc.stdout


def _agent_private_names(path: Path) -> list[str]:
    """``module:name`` for each private name of edgeprune_agent that ``path`` imports or reaches by attribute."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgeprune_agent"):
            parts = node.module.split(".") + [a.name for a in node.names]
            found += [f"{node.module}:{p}" for p in parts if p.startswith("_") and p != "__version__"]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names
                      if a.name.startswith("edgeprune_agent") and any(p.startswith("_") for p in a.name.split("."))]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id == "edgeprune_agent":
                found.append(f"edgeprune_agent...{node.attr}")
    return found


def test_no_private_agent_names_in_edgeprune():
    bad = {str(p.relative_to(ROOT)): names for p in sorted((ROOT / "edgeprune").rglob("*.py"))
           if (names := _agent_private_names(p))}
    assert not bad, f"edgeprune/ reaches private names of edgeprune_agent: {bad}"


def test_private_name_check_sees_one(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from edgeprune_agent.backends.litert import _import_interpreter\n")
    assert _agent_private_names(probe) == ["edgeprune_agent.backends.litert:_import_interpreter"]
