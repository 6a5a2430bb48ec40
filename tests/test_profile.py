"""Profiles: params.yaml ships the demo profile, one command switches to the paper settings and back,
and the training groups validate (including `-S lambda_cyc=5`, an int, read by both)."""
import subprocess
import sys

import pytest
import yaml

from pipeline.common.errors import FacecycleError
from pipeline.common.params import load_group
from pipeline.common.profile import PROFILES, apply_profile, matching

pytestmark = pytest.mark.integration

REPO = PROFILES.parent


def test_params_yaml_holds_the_demo_profile():
    assert matching(REPO / "params.yaml") == ["demo"]


def test_switching_to_paper_and_back_keeps_everything_else(tmp_path):
    params = tmp_path / "params.yaml"
    original = (REPO / "params.yaml").read_text()
    params.write_text(original)
    done = subprocess.run([sys.executable, "-m", "pipeline.common.profile", "paper", "--params", str(params)],
                          capture_output=True, text=True, check=True)
    assert done.stdout == (f"{params}: profile paper (lambda_cyc, data.load_size, cyclegan, recyclegan, infer.compile, "
                           "infer.temporal, metrics.identity_every, metrics.centroid_frames)\n")
    paper, before = yaml.safe_load(params.read_text()), yaml.safe_load(original)
    assert paper["data"]["load_size"] == 286 and paper["lambda_cyc"] == before["lambda_cyc"] == 10
    assert (paper["metrics"]["identity_every"], paper["metrics"]["centroid_frames"]) == (1, None)
    assert paper["metrics"]["face_rect"] == before["metrics"]["face_rect"]
    assert paper["infer"] == {**before["infer"], "compile": True, "temporal": "none"} and before["infer"]["compile"] is False
    assert {k: v for k, v in paper.items() if k not in ("data", "cyclegan", "recyclegan", "infer", "metrics")} == \
        {k: v for k, v in before.items() if k not in ("data", "cyclegan", "recyclegan", "infer", "metrics")}
    cyclegan, recyclegan = load_group("cyclegan", params), load_group("recyclegan", params)
    assert (cyclegan.crop_size, cyclegan.n_blocks, cyclegan.ngf, cyclegan.lr, cyclegan.pool_size,
            cyclegan.lambda_identity, cyclegan.n_epochs, cyclegan.n_epochs_decay) == (256, 9, 64, 2e-4, 50, 0.5, 100, 100)
    assert (recyclegan.n_blocks, recyclegan.predictor_downs, recyclegan.pool_size, recyclegan.lambda_identity) == \
        (6, 8, 0, 0)
    assert cyclegan.flip and not recyclegan.flip  # the official loader flips, the authors' triplet loader does not
    assert "# One value for both models" in params.read_text()  # comments survive
    apply_profile("demo", params)
    assert params.read_text() == original


def test_training_groups_coerce_ints_and_name_unknown_keys_and_bad_values(tmp_path):
    params = tmp_path / "params.yaml"
    groups = yaml.safe_load((REPO / "params.yaml").read_text())
    groups["lambda_cyc"] = 5  # what `dvc exp run -S lambda_cyc=5` writes
    params.write_text(yaml.safe_dump(groups))
    assert load_group("cyclegan", params).lambda_cyc == load_group("recyclegan", params).lambda_cyc == 5.0
    groups["lambda_cyc"] = -1
    params.write_text(yaml.safe_dump(groups))
    with pytest.raises(FacecycleError, match=r"^params: lambda_cyc: must be >= 0, got -1.0$"):
        load_group("recyclegan", params)
    groups["lambda_cyc"], groups["cyclegan"]["lambda_cyc"] = 5, 20  # a second key for the one number
    params.write_text(yaml.safe_dump(groups))
    with pytest.raises(FacecycleError, match=r"cyclegan.lambda_cyc: set the top-level lambda_cyc instead"):
        load_group("cyclegan", params)
    del groups["cyclegan"]["lambda_cyc"]
    groups["recyclegan"]["crop_size"] = 96
    params.write_text(yaml.safe_dump(groups))
    with pytest.raises(FacecycleError, match=r"recyclegan.crop_size: must be a multiple of 2\*\*predictor_downs = 64"):
        load_group("recyclegan", params)
    groups["recyclegan"]["crop_size"], groups["cyclegan"]["upsample"] = 64, "bilinear"
    params.write_text(yaml.safe_dump(groups))
    with pytest.raises(FacecycleError, match="cyclegan.upsample: must be transpose or resize"):
        load_group("cyclegan", params)
    groups["cyclegan"]["upsample"], groups["cyclegan"]["lamda_cyc"] = "resize", 5  # a typo of lambda_cyc
    params.write_text(yaml.safe_dump(groups))
    with pytest.raises(FacecycleError, match=r"cyclegan: unknown key\(s\) \['lamda_cyc'\]; known: \[.*'lambda_identity'"):
        load_group("cyclegan", params)


def profile_command(params, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.common.profile", *args, "--params", str(params)],
                          capture_output=True, text=True)


def test_bad_params_files_are_one_line_errors_and_stay_as_they_were(tmp_path):
    done = profile_command(tmp_path / "missing.yaml", "paper")
    assert done.returncode == 1 and done.stderr.strip().endswith("missing.yaml: file not found")
    assert "Traceback" not in done.stderr

    params = tmp_path / "params.yaml"
    groups = yaml.safe_load((REPO / "params.yaml").read_text())
    params.write_text(yaml.safe_dump(dict(groups, infer=None)))  # `infer:` left empty
    done = profile_command(params)  # which profile: an empty group matches none
    assert done.returncode == 0 and done.stdout.endswith("custom (matches no profile)\n")

    groups["metrics"]["face_rect"] = "oval"  # invalid: the switched file would not validate
    params.write_text(yaml.safe_dump(groups))
    before = params.read_text()
    done = profile_command(params, "paper")
    assert done.returncode == 1 and "metrics.face_rect" in done.stderr and "Traceback" not in done.stderr
    assert params.read_text() == before


def test_quick_profile_is_the_papers_networks_at_128_px_and_switches_back(tmp_path):
    """`quick`: width 64, 9 / 6 blocks, unet_128, load 143 -> crop 128, batch 16 at the square-root lr,
    compiled training, eager translation; lambda_cyc stays params.yaml's; demo comes back byte for byte."""
    params = tmp_path / "params.yaml"
    original = (REPO / "params.yaml").read_text()
    params.write_text(original)
    apply_profile("quick", params)
    assert matching(params) == ["quick"]
    cyclegan, recyclegan = load_group("cyclegan", params), load_group("recyclegan", params)
    data, infer = load_group("data", params), load_group("infer", params)
    assert (data.load_size, cyclegan.crop_size, recyclegan.crop_size) == (143, 128, 128)
    assert (cyclegan.ngf, cyclegan.ndf, cyclegan.n_blocks, recyclegan.ngf, recyclegan.n_blocks) == (64, 64, 9, 64, 6)
    assert 2 ** recyclegan.predictor_downs == recyclegan.crop_size  # unet_128: down to 1x1 as unet_256 at 256 px
    for group in (cyclegan, recyclegan):
        assert group.lr == pytest.approx(2e-4 * group.batch_size ** 0.5) and group.compile
        assert group.lambda_cyc == 10.0  # not set by the profile
    assert cyclegan.flip and not recyclegan.flip and not infer.compile
    assert (cyclegan.lambda_identity, cyclegan.pool_size, recyclegan.lambda_identity, recyclegan.pool_size) == \
        (0.5, 50, 0, 0)
    apply_profile("demo", params)
    assert params.read_text() == original
