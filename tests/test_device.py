"""pipeline.common.device: where the networks run and how crops enter them, shared by training, infer and metrics."""
import numpy as np
import pytest
import torch

from pipeline.common.device import StepOptions, cpu_has_native_bf16, pick_device, resolve_precision, to_model_input, to_uint8
from pipeline.common.errors import FacecycleError
from pipeline.models.size import at_model_size


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_asking_for_cuda_without_it_names_the_param():
    with pytest.raises(FacecycleError, match=r"params: infer\.device: cuda requested but no CUDA device"):
        pick_device("cuda", "infer.device")
    assert pick_device() == pick_device("cpu") == torch.device("cpu")


def test_crops_enter_the_model_in_range_and_come_back_unchanged(tiny_faces):
    """uint8 -> [-1, 1] -> uint8 is exact at the crop's own size (real GRID crops)."""
    crops = np.load(tiny_faces / "A_train.npy")[:4]
    x = to_model_input(torch.from_numpy(crops), crops.shape[1])
    assert x.shape == (4, 3, *crops.shape[1:3]) and -1 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(to_uint8(x), crops)


def test_metrics_score_reconstructions_against_the_very_input_the_model_got(tiny_faces):
    """metrics' reference at the model size is the infer stage's resize of the crop, not another filter."""
    crops = np.load(tiny_faces / "A_train.npy")[:70]  # more than one chunk of 64
    size = crops.shape[1] - 8
    reference = at_model_size(crops, size)
    np.testing.assert_array_equal(reference, to_uint8(to_model_input(torch.from_numpy(crops), size)))
    assert at_model_size(crops, crops.shape[1]) is crops


# the flags line of /proc/cpuinfo (abridged) on the project's two kinds of 2-core machine
AVX512_BF16_FLAGS = ("flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 avx512f "
                     "avx512dq avx512cd avx512bw avx512vl avx512_bf16 vaes vpclmulqdq avx512_vnni")
AVX2_FLAGS = "flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 vaes vpclmulqdq"


def test_bf16_is_native_only_where_the_cpu_flags_say_so():
    assert cpu_has_native_bf16("processor\t: 0\n" + AVX512_BF16_FLAGS + "\n")
    assert cpu_has_native_bf16(AVX2_FLAGS.replace("avx2", "avx2 amx_tile amx_bf16"))  # Sapphire Rapids: AMX
    assert not cpu_has_native_bf16(AVX2_FLAGS)
    assert not cpu_has_native_bf16(AVX2_FLAGS.replace("avx2", "avx2 avx512f avx512bw"))  # AVX-512 without bf16
    assert not cpu_has_native_bf16("")


def test_training_precision_resolves_from_the_machine_and_can_be_forced():
    cpu = torch.device("cpu")
    native = cpu_has_native_bf16()
    assert resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert StepOptions.for_device(cpu, precision="auto").bf16 == native
    assert not StepOptions.for_device(cpu).bf16 and StepOptions.for_device(torch.device("cuda")).bf16  # translation
    assert not StepOptions.for_device(torch.device("cuda"), precision="fp32").bf16
