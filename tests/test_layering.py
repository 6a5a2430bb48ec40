"""The packages of pipeline/ are phases in the order the DAG runs them; a module imports only from
its own phase or earlier ones, so reading the packages in order never needs a later one."""
import ast
from pathlib import Path

from helpers.repo import REPO

PHASES = ("common", "store", "face", "data", "models", "train", "translate", "evaluate")


def phase_of(module: str) -> str | None:
    """The phase package of a dotted pipeline module name (None outside pipeline)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "pipeline" and len(parts) > 1 else None


def back_imports(module: str, source: str) -> list[str]:
    """The imports in `source` (the text of pipeline module `module`, function-level ones included)
    that reach a later phase than the module's own."""
    own = PHASES.index(phase_of(module))
    found = []
    for node in ast.walk(ast.parse(source)):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{alias.name}" if node.module == "pipeline" else node.module for alias in node.names]
        found += [name for name in names if phase_of(name) and PHASES.index(phase_of(name)) > own]
    return found


def modules() -> dict[str, Path]:
    return {".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
            for path in (REPO / "pipeline").rglob("*.py") if path.parent != REPO / "pipeline"}


def test_every_package_is_a_phase():
    packages = {path.name for path in (REPO / "pipeline").iterdir() if (path / "__init__.py").is_file()}
    assert packages == set(PHASES)
    assert not [path.name for path in (REPO / "pipeline").glob("*.py") if path.name != "__init__.py"]


def test_no_module_imports_from_a_later_phase():
    found = {name: back_imports(name, path.read_text()) for name, path in modules().items()}
    assert {name: imports for name, imports in found.items() if imports} == {}


def test_a_planted_back_import_is_caught():
    """The check above on a copy of a real module with one import from a later phase added."""
    source = (REPO / "pipeline" / "face" / "mask.py").read_text()
    assert back_imports("pipeline.face.mask", source) == []
    planted = source + "\n\ndef late():\n    from pipeline.evaluate.metrics import evaluate_video\n"
    assert back_imports("pipeline.face.mask", planted) == ["pipeline.evaluate.metrics"]
    assert back_imports("pipeline.face.mask", source + "\nfrom pipeline import train\n") == ["pipeline.train"]
    assert back_imports("pipeline.evaluate.metrics", planted) == []
