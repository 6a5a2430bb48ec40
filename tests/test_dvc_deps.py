"""Every stage lists as DVC deps the pipeline modules its script runs, so a code change reruns
exactly the stages whose outputs it can change (a missing one leaves stale outputs in the cache)."""
import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
# Modules that never change what a stage writes: error messages, the stage runner, atomic file
# writing, and params validation (the values themselves are DVC params, tracked on their own).
NEVER_CHANGE_OUTPUTS = {"pipeline/common/errors.py", "pipeline/common/cli.py", "pipeline/common/files.py",
                        "pipeline/common/params.py"}
# A train stage runs its own model's module, which the training loop imports by name
# (pipeline.models.model_class), so the import walk starts there too.


def pipeline_imports(path: Path) -> set[str]:
    """The pipeline modules `path` imports, as repo-relative file paths."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.ImportFrom) and node.module == "pipeline":  # from pipeline import train
            names = [f"pipeline.{alias.name}" for alias in node.names]
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {module_file(name) for name in names if name.startswith("pipeline.")}
    return found


def module_file(name: str) -> str:
    """The repo-relative file of module `name`: a package's __init__.py, else <name>.py."""
    path = name.replace(".", "/")
    return f"{path}/__init__.py" if (REPO / path).is_dir() else f"{path}.py"


def modules_run_by(script: str, model: str | None = None) -> set[str]:
    """The pipeline modules `script` imports, directly or through other pipeline modules (and, for
    a train stage, through its `model`'s module)."""
    seen, todo = set(), pipeline_imports(REPO / script) | ({module_file(f"pipeline.models.{model}")} if model else set())
    while todo:
        module = todo.pop()
        seen.add(module)
        todo |= pipeline_imports(REPO / module) - seen
    return seen


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_list_every_pipeline_module_its_script_runs(name):
    stage = STAGES[name]
    script = stage["cmd"].split()[1]
    assert script in stage["deps"]
    listed = {d for d in stage["deps"] if d.startswith("pipeline/")}
    run = modules_run_by(script, name.removeprefix("train_") if name.startswith("train_") else None)
    assert run - NEVER_CHANGE_OUTPUTS - listed == set()
    assert listed - run == set(), "listed but never run"


def test_the_import_walk_follows_modules_through_other_modules():
    """infer's script imports pipeline.translate.infer only; nets comes through it."""
    assert "pipeline/models/nets.py" in modules_run_by("stages/infer.py")
    assert "pipeline/models/nets.py" not in pipeline_imports(REPO / "stages/infer.py")


def test_params_yaml_sets_every_param_so_no_code_default_decides_an_output():
    """params.py counts as never changing outputs only because its dataclasses have no defaults: DVC
    tracks the values in params.yaml (shared groups and each profile's keys), not values in code."""
    import dataclasses

    from pipeline.common.params import GROUPS, TOP_LEVEL, profile_names

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for profile in profile_names(params):
        given = {group: {**(params.get(group) or {}), **params[profile].get(group, {})} for group in GROUPS}
        missing = {group: [f.name for f in dataclasses.fields(cls) if f.name not in given[group]
                           and not (f.name in TOP_LEVEL and f.name in params)]
                   for group, cls in GROUPS.items()}
        assert missing == {group: [] for group in GROUPS}, profile
    assert all(f.default is dataclasses.MISSING for cls in GROUPS.values() for f in dataclasses.fields(cls))


def test_top_level_params_are_listed_by_every_stage_that_reads_them():
    """lambda_cyc lives at the top level of params.yaml (one key for both models): the training stages
    must list it, or `dvc exp run -S lambda_cyc=5` would rerun nothing."""
    from pipeline.common.params import TOP_LEVEL

    for name in ("train_cyclegan", "train_recyclegan"):
        assert set(TOP_LEVEL) <= set(STAGES[name]["params"]), name


def test_every_model_of_the_registry_has_a_training_stage_and_a_class():
    from pipeline.models import MODELS, model_class

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert all(model_class(m).frames_per_sample >= 1 for m in MODELS)
    assert {name for name in stages if name.startswith("train_")} == {f"train_{m}" for m in MODELS}
