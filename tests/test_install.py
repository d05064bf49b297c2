"""The torch pin lives in constraints.txt, which the README's set-up commands and .ci/run install with; the packages
themselves ask only for a torch range, so a user's CUDA or Jetson build of torch is kept."""
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]


def _dependencies(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    return [*project["dependencies"], *(d for group in extras for d in group)]


def _torch(deps: list[str]) -> list[str]:
    return [d for d in deps if re.match(r"torch\s*(\[|[<>=!~;]|$)", d)]


def test_torch_is_pinned_in_the_constraints_file_not_in_the_packages():
    [torch] = _torch(_dependencies(ROOT / "pyproject.toml"))
    assert "==" not in torch and "<" not in torch, torch  # a range, not a pin
    assert _torch(_dependencies(ROOT / "device_agents" / "pyproject.toml")) == []  # the agent needs no torch
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("torch")]
    assert len(pins) == 1 and re.fullmatch(r"torch==\d+\.\d+\.\d+", pins[0]), pins


def test_the_set_up_commands_and_ci_install_with_the_constraints():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands  # two one-line commands
    for command in commands:
        assert command.startswith("pip install") and "-c constraints.txt" in command, command
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("pip install")]
    assert ci and all("-c constraints.txt" in line for line in ci), ci
