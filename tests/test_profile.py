"""Profiles: params.yaml holds each profile's recipe once (demo, paper, quick), `profile` picks the one
the stages run, the shared groups hold the rest, and DVC tracks the picked profile's keys only."""
import copy

import pytest
import yaml
from helpers.processes import sh
from helpers.repo import REPO, SHIPPED

from pipeline.common.errors import FacecycleError
from pipeline.common.params import GROUPS, load_group, profile_names, run_params_text

pytestmark = pytest.mark.integration

PROFILES = ("demo", "paper", "quick")


def write(path, params: dict):
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_params_yaml_runs_the_demo_and_each_profile_sets_the_same_keys_nowhere_else():
    """Same groups and keys in every profile, so `${profile}.<group>` in dvc.yaml resolves under each;
    none of them also in a shared group, so a value has one place."""
    assert SHIPPED["profile"] == "demo" and profile_names(SHIPPED) == list(PROFILES)
    keys = {name: {group: sorted(values) for group, values in SHIPPED[name].items()} for name in PROFILES}
    assert keys["paper"] == keys["quick"] == keys["demo"]
    assert sorted(keys["demo"]) == ["cyclegan", "data", "infer", "metrics", "recyclegan"]
    for group, own in keys["demo"].items():
        assert not set(own) & set(SHIPPED.get(group) or {}), group
    assert "cyclegan" not in SHIPPED and "recyclegan" not in SHIPPED  # the recipes live in the profiles only


def test_each_profile_gives_its_papers_or_demo_recipe():
    demo, paper, quick = ({g: load_group(g, REPO / "params.yaml", p) for g in GROUPS} for p in PROFILES)
    assert (demo["data"].load_size, demo["cyclegan"].crop_size, demo["cyclegan"].ngf) == (72, 64, 16)
    assert not demo["infer"].compile and demo["infer"].temporal == "flow"
    cyclegan, recyclegan = paper["cyclegan"], paper["recyclegan"]
    assert paper["data"].load_size == 286 and cyclegan.lambda_cyc == recyclegan.lambda_cyc == 10
    assert (cyclegan.crop_size, cyclegan.n_blocks, cyclegan.ngf, cyclegan.lr, cyclegan.pool_size,
            cyclegan.lambda_identity, cyclegan.n_epochs, cyclegan.n_epochs_decay) == (256, 9, 64, 2e-4, 50, 0.5, 100, 100)
    assert (recyclegan.n_blocks, recyclegan.predictor_downs, recyclegan.pool_size, recyclegan.lambda_identity) == \
        (6, 8, 0, 0)
    assert cyclegan.flip and not recyclegan.flip  # the official loader flips, the authors' triplet loader does not
    assert (paper["metrics"].identity_every, paper["metrics"].centroid_frames) == (1, None)
    assert paper["infer"].compile and paper["infer"].temporal == "none"
    # quick: width 64, 9 / 6 blocks, unet_128, load 143 -> crop 128, batch 16 at the square-root lr, compiled
    # training, eager translation
    cyclegan, recyclegan = quick["cyclegan"], quick["recyclegan"]
    assert (quick["data"].load_size, cyclegan.crop_size, recyclegan.crop_size) == (143, 128, 128)
    assert (cyclegan.ngf, cyclegan.ndf, cyclegan.n_blocks, recyclegan.ngf, recyclegan.n_blocks) == (64, 64, 9, 64, 6)
    assert 2 ** recyclegan.predictor_downs == recyclegan.crop_size
    for group in (cyclegan, recyclegan):
        assert group.lr == pytest.approx(2e-4 * group.batch_size ** 0.5) and group.compile and group.lambda_cyc == 10
    assert not quick["infer"].compile
    for name in ("merge", "metrics"):  # the shared groups' other keys are the same under every profile
        assert {k: v for k, v in vars(demo[name]).items() if k not in SHIPPED["demo"].get(name, {})} == \
            {k: v for k, v in vars(paper[name]).items() if k not in SHIPPED["paper"].get(name, {})}


def test_the_profile_key_picks_the_section(tmp_path):
    params = write(tmp_path / "params.yaml", dict(SHIPPED, profile="paper"))
    assert load_group("cyclegan", params).n_blocks == 9 and load_group("data", params).load_size == 286
    assert load_group("cyclegan", params, "demo").n_blocks == 3  # or an argument (the benches)


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("profile"), r"^params: profile: missing: name one of \['demo', 'paper', 'quick'\]"),
    (lambda p: p.update(profile="fast"), r"^params: profile: 'fast' is not a profile of this file; have \['demo', "),
    (lambda p: p["data"].update(load_size=64), r"^params: demo.data: \['load_size'\] also set in the shared data group"),
    (lambda p: p["demo"].update(train={"steps": 3}), r"^params: demo: unknown group\(s\) \['train'\]"),
    (lambda p: p.update(merg={"mask": "face"}), r"^params: merg: unknown group\(s\) \['mask'\]; a profile sets keys of"),
    (lambda p: p["demo"].pop("cyclegan"), r"^params: cyclegan: group missing from .* \(shared or under demo:\)"),
    (lambda p: p["demo"]["cyclegan"].update(lambda_cyc=20), r"demo.cyclegan.lambda_cyc: set the top-level lambda_cyc"),
    (lambda p: p["demo"]["cyclegan"].update(lamda_cyc=5), r"cyclegan: unknown key\(s\) \['lamda_cyc'\]; known: \["),
    (lambda p: p.update(lambda_cyc=-1), r"^params: lambda_cyc: must be >= 0, got -1.0$"),
    (lambda p: p["demo"]["cyclegan"].update(upsample="bilinear"), "cyclegan.upsample: must be transpose or resize"),
])
def test_bad_profiles_are_one_line_errors_naming_the_key(tmp_path, change, message):
    params = copy.deepcopy(SHIPPED)
    change(params)
    path = write(tmp_path / "params.yaml", params)
    with pytest.raises(FacecycleError, match=message):
        for group in GROUPS:
            load_group(group, path)


def test_training_groups_take_lambda_cyc_as_dvc_exp_run_writes_it(tmp_path):
    params = write(tmp_path / "params.yaml", dict(SHIPPED, lambda_cyc=5))  # `-S lambda_cyc=5`: an int
    assert load_group("cyclegan", params).lambda_cyc == load_group("recyclegan", params).lambda_cyc == 5.0


def test_the_runs_params_text_drops_the_other_profiles_and_keeps_comments(tmp_path):
    text = run_params_text(REPO / "params.yaml")
    assert "# Weight of the cycle-consistency terms" in text and "\ndemo:\n" in text
    assert "\npaper:" not in text and "\nquick:" not in text and "Profile `quick`" not in text
    kept = write(tmp_path / "kept.yaml", yaml.safe_load(text))
    assert {g: load_group(g, kept) for g in GROUPS} == {g: load_group(g, REPO / "params.yaml") for g in GROUPS}
    paper = tmp_path / "paper.yaml"
    paper.write_text((REPO / "params.yaml").read_text().replace("\nprofile: demo", "\nprofile: paper"))
    assert "\npaper:" in run_params_text(paper) and "\ndemo:" not in run_params_text(paper)


def stage_params(repo) -> dict[str, set[str]]:
    """The params keys each stage of `repo` tracks, as DVC resolves dvc.yaml against params.yaml."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return {stage.name: {key for dep in stage.deps if isinstance(dep, ParamsDependency) for key in dep.params}
                for stage in dvc.index.stages}


def test_dvc_tracks_the_picked_profile_only_and_switching_reruns_from_the_crops(tmp_path):
    """`dvc exp run -S profile=paper` sets one key; DVC then tracks paper.<group> in place of demo.<group>:
    each stage that reads a profile key, and none that does not, has changed params."""
    for name in ("dvc.yaml", "params.yaml"):
        (tmp_path / name).write_text((REPO / name).read_text())
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    demo = stage_params(tmp_path)
    assert demo["train_cyclegan"] == {"lambda_cyc", "demo.cyclegan"}
    assert demo["crop_faces"] >= {"demo.data"} and "demo.infer" in demo["infer"] and "demo.metrics" in demo["metrics"]
    assert not any(key.startswith(("paper", "quick")) for keys in demo.values() for key in keys)
    for key in {key for keys in demo.values() for key in keys}:  # DVC refuses to run a stage whose key is not there
        value = SHIPPED
        for name in key.split("."):
            assert isinstance(value, dict) and name in value, key
            value = value[name]
    params = (tmp_path / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(params.replace("\nprofile: demo", "\nprofile: paper"))
    paper = stage_params(tmp_path)
    changed = sorted(name for name in demo if demo[name] != paper[name])
    assert changed == ["crop_faces", "infer", "metrics", "results_page", "train_cyclegan", "train_recyclegan"]
    assert paper["train_recyclegan"] == {"lambda_cyc", "paper.recyclegan"}
    # every group of a profile is tracked by a stage that reads it (the results page tracks them all)
    tracked = {key for name, keys in paper.items() if name != "results_page" for key in keys}
    assert {f"paper.{group}" for group in SHIPPED["paper"]} <= tracked
