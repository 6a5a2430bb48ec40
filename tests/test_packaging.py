"""The package declares what it imports: pyproject.toml lists each third-party distribution the
library, the stages and the GPU sandbox import (with a lower bound), and requirements.txt, the lock,
pins every declared one at a version that meets its bound."""
import ast
import importlib.metadata
import re
import sys
import tomllib

from helpers.repo import REPO
from packaging.requirements import Requirement
from packaging.version import Version

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
LOCK = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO / "requirements.txt").read_text(), re.M))


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(*folders: str) -> set[str]:
    """Top-level modules imported anywhere in `folders` (function-level imports too)."""
    found = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return found


def module_owners() -> dict[str, set[str]]:
    """Top-level module -> the distributions that install it, from their top_level.txt and from the
    files they installed (dlib-bin's top_level.txt names only its compiled core)."""
    owners: dict[str, set[str]] = {m: set(d) for m, d in importlib.metadata.packages_distributions().items()}
    for dist in importlib.metadata.distributions():
        for file in dist.files or []:
            if file.suffix == ".py" and len(file.parts) > 1 and not file.parts[0].endswith((".dist-info", ".data")):
                owners.setdefault(file.parts[0], set()).add(dist.metadata["Name"])
    return owners


def declared(requirements: list[str]) -> dict[str, Requirement]:
    return {canonical(r.name): r for r in map(Requirement, requirements)}


def test_every_imported_distribution_is_declared():
    runtime = declared(PROJECT["dependencies"])
    dev = declared(PROJECT["optional-dependencies"]["dev"])
    owners = module_owners()
    own = {"pipeline", "gpu_sandbox", "helpers", "conftest", "clips"} | {p.stem for p in (REPO / "bench").glob("*.py")}

    def third_party(modules: set[str]) -> set[str]:
        return {canonical(d) for m in modules - own - set(sys.stdlib_module_names) for d in owners.get(m, {m})}

    assert third_party(imported_modules("pipeline", "stages", "tools")) - set(runtime) == set()
    assert third_party(imported_modules("tests", "bench")) - set(runtime) - set(dev) == set()


def test_the_lock_pins_every_declared_distribution_within_its_bounds():
    lock = {canonical(name): Version(version) for name, version in LOCK.items()}
    wanted = declared(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["dev"])
    assert set(wanted) <= set(lock), sorted(set(wanted) - set(lock))
    assert {name: str(lock[name]) for name, r in wanted.items() if lock[name] not in r.specifier} == {}
    assert set(lock) - set(wanted) == set()  # nothing pinned that nothing declares
