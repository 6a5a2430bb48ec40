"""Inference on real face crops with real (tiny) generators; model loading that never runs a pickle."""
import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from helpers.merge_inputs import CROP_SIZE, write_models
from helpers.payloads import write_pickle, write_torch_save
from helpers.repo import REPO, over_shipped

from pipeline.common.errors import FacecycleError
from pipeline.store.faces import read_boxes
from pipeline.translate.infer import load_generators, translate_batches, translate_videos
from pipeline.translate.stabilise import Stabiliser

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def translated(stage_inputs, models, tmp_path_factory):
    out = tmp_path_factory.mktemp("translated") / "cyclegan"
    assert translate_videos(models["cyclegan"], stage_inputs["faces"], out, batch_size=4, device=CPU) == ["sbat6n", "wall"]
    return out


def video_crops(faces, video):
    rows = read_boxes(faces, "test")
    rows = rows[(rows["video"] == video) & rows["face"]]
    return np.load(faces / f"{rows['domain'].iloc[0]}_test.npy")[rows["crop_index"].to_numpy()]


def test_infer_writes_one_translation_per_face_row(translated):
    for name, rows in (("sbat6n", 30), ("wall", 0)):  # the wall clip has no face: empty arrays, still written
        for suffix in ("", "_rec"):
            array = np.load(translated / f"{name}{suffix}.npy")
            assert array.shape == (rows, CROP_SIZE, CROP_SIZE, 3) and array.dtype == np.uint8
    fake = np.load(translated / "sbat6n.npy")
    assert fake.std() > 5 and np.abs(np.diff(fake.astype(int), axis=0)).mean() > 0  # real output, not a constant


def test_a_videos_go_through_g_a_and_back_through_g_b(stage_inputs, models, translated):
    generators, _ = load_generators(models["cyclegan"])
    crops = video_crops(stage_inputs["faces"], "sbat6n")
    (fake, rec), = translate_batches(generators["G_A"], generators["G_B"], [crops], CROP_SIZE, CPU)
    (other, _), = translate_batches(generators["G_B"], generators["G_A"], [crops], CROP_SIZE, CPU)
    # the stage ran batches of 4, this one batch of 30: the convolutions sum in another order, so the
    # floats differ by rounding (~1e-6 of the [-1, 1] range) and a pixel near a rounding edge moves 1 level
    for name, ours in (("sbat6n", fake), ("sbat6n_rec", rec)):
        stage = np.load(translated / f"{name}.npy")
        assert np.abs(stage.astype(int) - ours).max() <= 1 and (stage == ours).mean() > 0.99, name
    assert np.abs(fake.astype(int) - other).mean() > 1


def test_deterministic_and_independent_of_batch_size(stage_inputs, models, translated, tmp_path):
    translate_videos(models["cyclegan"], stage_inputs["faces"], tmp_path / "again", batch_size=4, device=CPU)
    translate_videos(models["cyclegan"], stage_inputs["faces"], tmp_path / "batch7", batch_size=7, device=CPU)
    first = np.load(translated / "sbat6n.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "sbat6n.npy"), first)
    assert np.abs(np.load(tmp_path / "batch7" / "sbat6n.npy").astype(int) - first).max() <= 1  # float summation order


@pytest.mark.slow
def test_compiled_generators_translate_as_eager_ones_and_compile_once(stage_inputs, models, translated, tmp_path):
    """infer.compile: every batch is padded to batch_size, so the 30 crops (4 x 7 + 2) compile each generator once."""
    from torch._dynamo.utils import counters  # torch's own count of the graphs compiled so far

    before = counters["stats"]["unique_graphs"]
    translate_videos(models["cyclegan"], stage_inputs["faces"], tmp_path / "compiled", batch_size=7, device=CPU,
                     compile=True)
    assert counters["stats"]["unique_graphs"] - before == 1  # one graph: G_B has G_A's architecture, weights are inputs
    for suffix in ("", "_rec"):
        eager = np.load(translated / f"sbat6n{suffix}.npy").astype(int)
        assert np.abs(np.load(tmp_path / "compiled" / f"sbat6n{suffix}.npy") - eager).max() <= 1  # fused rounding


def test_stabilised_inference_keeps_the_per_frame_translation_beside_it(stage_inputs, models, translated, tmp_path):
    """infer.temporal: flow: `<video>.npy` is the stabilised translation and `_rec` its reconstruction;
    the per-frame one (as without the option) stays as `_raw`; temporal.json says which."""
    out = tmp_path / "flow"
    translate_videos(models["cyclegan"], stage_inputs["faces"], out, batch_size=4, device=CPU,
                     stabiliser=Stabiliser(3, 8.0, 3.0, 2.5))
    for suffix in ("", "_rec"):
        np.testing.assert_array_equal(np.load(out / f"sbat6n_raw{suffix}.npy"), np.load(translated / f"sbat6n{suffix}.npy"))
    steady, raw = np.load(out / "sbat6n.npy"), np.load(translated / "sbat6n.npy")
    assert steady.shape == raw.shape and 0 < np.abs(steady.astype(int) - raw).mean() < 20  # an untrained G: 8
    generators, _ = load_generators(models["cyclegan"])
    (back, _), = translate_batches(generators["G_B"], None, [steady], CROP_SIZE, CPU)
    np.testing.assert_array_equal(np.load(out / "sbat6n_rec.npy"), back)
    assert json.loads((out / "temporal.json").read_text()) == {"temporal": "flow", "window": 3, "still": 8.0,
                                                               "strength": 3.0, "tau": 2.5, "flow": "DIS medium"}
    assert json.loads((translated / "temporal.json").read_text()) == {"temporal": "none"}
    assert np.load(out / "wall_raw.npy").shape == np.load(out / "wall.npy").shape == (0, CROP_SIZE, CROP_SIZE, 3)


def test_inference_runs_without_autograd(stage_inputs, models):
    generators, _ = load_generators(models["recyclegan"])
    seen = []
    generators["G_A"].register_forward_hook(
        lambda module, args, output: seen.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled(),
                                                  output.requires_grad)))
    crops = video_crops(stage_inputs["faces"], "sbat6n")
    batches = list(translate_batches(generators["G_A"], generators["G_B"], [crops[:8], crops[8:12]], CROP_SIZE, CPU))
    assert [fake.shape for fake, _ in batches] == [(8, CROP_SIZE, CROP_SIZE, 3), (4, CROP_SIZE, CROP_SIZE, 3)]
    assert seen == [(False, True, False)] * 2
    assert not any(p.requires_grad for net in generators.values() for p in net.parameters())


def test_failed_inference_leaves_no_output(stage_inputs, models, tmp_path):
    faces = tmp_path / "faces"
    shutil.copytree(stage_inputs["faces"], faces)
    np.save(faces / "A_test.npy", np.zeros((3, 8), np.float32))  # corrupt crop array
    out = tmp_path / "translated"
    with pytest.raises(FacecycleError, match="A_test.npy: expected uint8"):
        translate_videos(models["cyclegan"], faces, out, batch_size=4, device=CPU)
    assert not out.exists() and list(tmp_path.iterdir()) == [faces]


def test_payload_is_live(tmp_path):
    """The payload of tests/payloads.py really creates its file when unpickled, so its absence later means it never ran."""
    write_pickle(tmp_path / "p.pkl", tmp_path / "ran")
    pickle.loads((tmp_path / "p.pkl").read_bytes())
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("case, message", [
    ("no weights", "generators.safetensors: not found"),
    ("no architecture", "architecture.json: not found"),
    ("text as weights", "generators.safetensors: not a safetensors file"),
    ("truncated weights", "generators.safetensors: not a safetensors file"),
    ("pickle as weights", "generators.safetensors: is a pickle"),
    ("torch.save as weights", "generators.safetensors: is a pickle"),
    ("pickle beside, no safetensors", "generators.safetensors: not found"),
    ("pickle as architecture", "architecture.json: not valid JSON"),
    ("other architecture", "generators.safetensors: G_A does not match architecture.json"),
    ("unknown generator option", "architecture.json: bad generator settings"),
])
def test_bad_model_files_are_refused_and_never_executed(models, tmp_path, case, message):
    model = tmp_path / "cyclegan"
    shutil.copytree(models["cyclegan"], model)
    marker = tmp_path / "payload_ran"
    weights, arch = model / "generators.safetensors", model / "architecture.json"
    if case == "no weights":
        weights.unlink()
    elif case == "no architecture":
        arch.unlink()
    elif case == "text as weights":
        weights.write_text("not weights\n")
    elif case == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif case == "pickle as weights":
        write_pickle(weights, marker)
    elif case == "torch.save as weights":
        write_torch_save(weights, marker)
    elif case == "pickle beside, no safetensors":
        weights.unlink()
        write_torch_save(model / "generators.pt", marker)
        write_pickle(model / "generators.pkl", marker)
    elif case == "pickle as architecture":
        write_pickle(arch, marker)
    else:
        spec = json.loads(arch.read_text())
        spec["generator"].update({"n_blocks": 2} if case == "other architecture" else {"dropout": True})
        arch.write_text(json.dumps(spec))
    with pytest.raises(FacecycleError, match=message) as err:
        load_generators(model)
    assert str(model) in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_stage_reports_a_pickled_model_in_one_line(stage_inputs, tmp_path):
    model = tmp_path / "models" / "cyclegan"
    model.mkdir(parents=True)
    (model / "architecture.json").write_text(json.dumps({"generator": {}, "crop_size": 64, "load_size": 72}))
    marker = tmp_path / "payload_ran"
    write_pickle(model / "generators.safetensors", marker)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(over_shipped({"infer": {"batch_size": 4, "device": "cpu"}})))
    result = subprocess.run([sys.executable, str(REPO / "stages" / "infer.py"), "--faces", str(stage_inputs["faces"]),
                             "--models", str(model), "--out", str(tmp_path / "translated"),
                             "--params", str(tmp_path / "params.yaml")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"infer: error: {model / 'generators.safetensors'}: is a pickle / torch.save file, not safetensors; "
        "pickles are never loaded"]
    assert not marker.exists() and not (tmp_path / "translated").exists()
