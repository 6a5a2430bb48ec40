"""The docs hold together: every relative link in a tracked markdown file reaches a file or folder,
every path of a markdown file under docs/, tools/, tests/ or bench/ named in code, params or docs
exists, every `python -m` module they name imports, and the README front page stays short."""
import re
import subprocess
from pathlib import Path

from helpers.repo import REPO

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DOC_PATH = re.compile(r"\b((?:docs|tools|tests|bench)/[\w./-]*\.md)\b")


def tracked(*patterns: str) -> list[Path]:
    files = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / name for name in files.stdout.split()]


def dead_links(page: Path) -> list[str]:
    """The relative link targets of markdown `page` that do not exist (anchors and URLs aside)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold commands, not links
    targets = [t.split("#")[0] for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]
    return [t for t in targets if t and not (page.parent / t).exists()]


def test_every_relative_link_in_the_docs_reaches_a_file():
    pages = tracked("*.md")
    assert len(pages) > 10
    assert {str(page.relative_to(REPO)): dead for page in pages if (dead := dead_links(page))} == {}


def test_every_docs_path_named_anywhere_exists():
    named = {(str(f.relative_to(REPO)), path) for f in tracked("*.py", "*.md", "*.yaml", "*.sh", "Makefile")
             for path in DOC_PATH.findall(f.read_text())}
    assert sorted((where, path) for where, path in named if not (REPO / path).exists()) == []


def test_every_module_run_with_python_m_exists():
    """`python -m <module>` in the docs, scripts and code names a module that imports (pipeline's included)."""
    import importlib.util

    named = {(str(f.relative_to(REPO)), module) for f in tracked("*.py", "*.md", "*.sh", "Makefile")
             for module in re.findall(r"python3? -m ([\w.]+)", f.read_text())}
    assert ("Makefile", "pytest") in named  # the scan reads them
    assert sorted((where, module) for where, module in named if importlib.util.find_spec(module) is None) == []
    assert importlib.util.find_spec("pipeline.common.profile") is None  # a module that is gone fails it


def test_the_link_check_finds_a_dead_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("")
    page.write_text("[ok](there.md#part) [gone](missing.md) ![img](images/none.png) [web](https://dvc.org)\n"
                    "```\n[in a code block](nowhere.md)\n```\n")
    assert dead_links(page) == ["missing.md", "images/none.png"]


def test_the_readme_front_page_is_at_most_150_lines():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150
