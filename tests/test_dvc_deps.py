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
NEVER_CHANGE_OUTPUTS = {"pipeline/errors.py", "pipeline/cli.py", "pipeline/atomic.py", "pipeline/params.py"}
# The training loop imports both models for its model table; CycleGAN training never runs
# Recycle-GAN's code, and listing it would retrain CycleGAN on every Recycle-GAN change.
IMPORTED_NOT_RUN = {"train_cyclegan": {"pipeline/recyclegan.py"}}


def pipeline_imports(path: Path) -> set[str]:
    """The pipeline modules `path` imports, as repo-relative file paths."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.ImportFrom) and node.module == "pipeline":  # from pipeline import train
            names = [f"pipeline.{alias.name}" for alias in node.names]
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {f"{name.replace('.', '/')}.py" for name in names if name.startswith("pipeline.")}
    return found


def modules_run_by(script: str) -> set[str]:
    """The pipeline modules `script` imports, directly or through other pipeline modules."""
    seen, todo = set(), pipeline_imports(REPO / script)
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
    run = modules_run_by(script) - IMPORTED_NOT_RUN.get(name, set())
    assert run - NEVER_CHANGE_OUTPUTS - listed == set()
    assert listed - run == set(), "listed but never run"


def test_the_import_walk_follows_modules_through_other_modules():
    """infer's script imports pipeline.infer only; nets comes through it."""
    assert "pipeline/nets.py" in modules_run_by("stages/infer.py")
    assert "pipeline/nets.py" not in pipeline_imports(REPO / "stages/infer.py")


def test_params_yaml_sets_every_param_so_no_code_default_decides_an_output():
    """params.py counts as never changing outputs only because its defaults never apply in the pipeline:
    DVC tracks the values in params.yaml, not the defaults in code."""
    import dataclasses

    from pipeline.params import GROUPS, TOP_LEVEL

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    missing = {group: [f.name for f in dataclasses.fields(cls) if f.name not in (params.get(group) or {})
                       and not (f.name in TOP_LEVEL and f.name in params)]
               for group, cls in GROUPS.items()}
    assert missing == {group: [] for group in GROUPS}


def test_top_level_params_are_listed_by_every_stage_that_reads_them():
    """lambda_cyc lives at the top level of params.yaml (one key for both models): the training stages
    must list it, or `dvc exp run -S lambda_cyc=5` would rerun nothing."""
    from pipeline.params import TOP_LEVEL

    for name in ("train_cyclegan", "train_recyclegan"):
        assert set(TOP_LEVEL) <= set(STAGES[name]["params"]), name


def test_every_model_of_the_registry_has_a_training_stage_and_a_class():
    from pipeline.models import MODELS
    from pipeline.train import MODEL_CLASSES

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert MODEL_CLASSES.keys() == MODELS.keys()
    assert {name for name in stages if name.startswith("train_")} == {f"train_{m}" for m in MODELS}
