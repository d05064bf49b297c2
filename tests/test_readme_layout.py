"""The README's order: what the tool does and the two set-up commands, a one-screen Quickstart, the Python API,
"your own model and data"; the long method, hardware and benchmark sections live in docs/, linked from it."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SCREEN = 40  # lines


def _sections() -> dict[str, list[str]]:
    """Each "## " section's lines (headings inside code blocks are code, not sections)."""
    sections, name, fenced = {}, None, False
    for line in README.splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("## ") and not fenced:
            name = line[3:]
            sections[name] = []
        elif name is not None:
            sections[name].append(line)
    return sections


def test_sections_come_in_the_order_a_new_user_needs_them():
    names = list(_sections())
    assert names[:2] == ["Set up", "Quickstart"], names  # only the introduction comes before the set-up commands
    wanted = ["Set up", "Quickstart", "Python API", "Your own model and data"]
    assert [n for n in names if n in wanted] == wanted, names
    intro = README.split("\n## ", 1)[0]
    assert "measur" in intro and "prunes" in intro  # what the tool does


def test_quickstart_fits_one_screen():
    assert len(_sections()["Quickstart"]) <= SCREEN


def test_long_sections_live_in_docs_and_every_local_link_resolves():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    for doc in ("docs/methods.md", "docs/hardware.md", "docs/benchmarks.md"):
        assert doc in local, doc
    assert [link for link in local if not (ROOT / link).exists()] == []
    assert len(README.splitlines()) <= 250  # the long sections are not back in the README
