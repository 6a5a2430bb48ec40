"""PSNR and SSIM of real crops against themselves, a noisy copy and another person."""
import math

import numpy as np
import pytest
from helpers.translation_layout import grid_crops

from pipeline.evaluate.reconstruction import psnr, ssim


@pytest.fixture(scope="module")
def man_and_woman(samples):
    return grid_crops(samples / "A" / "sbat6n.mpg", 6), grid_crops(samples / "B" / "lrwp9a.mpg", 6)


def test_identical_frames_have_infinite_psnr_and_unit_ssim(man_and_woman):
    man, _ = man_and_woman
    assert psnr(man, man.copy()) == math.inf
    assert ssim(man, man.copy()) == pytest.approx(1.0)
    assert math.isnan(psnr(man[:0], man[:0])) and math.isnan(ssim(man[:0], man[:0]))


def test_noise_gives_the_expected_psnr_and_a_person_swap_scores_worse(man_and_woman):
    man, woman = man_and_woman
    noisy = (man + np.random.default_rng(0).normal(0, 8, man.shape)).clip(0, 255).round().astype(np.uint8)
    assert psnr(man, noisy) == pytest.approx(20 * math.log10(255 / 8), abs=0.5)  # ~30 dB; clipping adds a little
    assert 0.5 < ssim(man, noisy) < 0.99
    assert psnr(man, woman) < psnr(man, noisy) - 10
    assert ssim(man, woman) < ssim(man, noisy)
