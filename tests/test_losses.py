"""The losses of both models against values computed by hand on tiny tensors.

The real networks are used with their last layer set by hand so that each one outputs a known
constant (tanh(atanh(c)) = c for G and P, a bias for D); every loss then has a closed form.
"""
import math

import pytest
import torch
from helpers.repo import shipped_params
from torch import nn

from pipeline.models.cyclegan import CycleGAN, ImagePool, discriminator_loss, gan_loss, l1_loss
from pipeline.models.recyclegan import RecycleGAN

CPU = torch.device("cpu")
TINY = dict(crop_size=32, ngf=4, ndf=4, n_blocks=1, batch_size=1, lr=2e-4)


def output_constant(net: nn.Module, value: float, tanh: bool) -> None:
    """Zero the last convolution's weights and set its bias so the network outputs `value`."""
    last = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(math.atanh(value) if tanh else value)


def frames(*values: float) -> torch.Tensor:
    """A batch of one sample whose frames are constant images: [1, frames, 3, 32, 32]."""
    return torch.stack([torch.full((3, 32, 32), v) for v in values])[None]


def set_outputs(model, **values: float) -> None:
    for name, value in values.items():
        output_constant(model.networks[name], value, tanh=not name.startswith("D"))


def test_lsgan_loss_is_the_mean_squared_distance_to_1_or_0():
    prediction = torch.tensor([[0.5, 1.5], [1.0, 0.0]])
    assert gan_loss(prediction, True).item() == pytest.approx((0.25 + 0.25 + 0 + 1) / 4)
    assert gan_loss(prediction, False).item() == pytest.approx((0.25 + 2.25 + 1 + 0) / 4)


def test_discriminator_loss_is_half_the_sum_of_real_and_fake_terms():
    d = CycleGAN(shipped_params("cyclegan", **TINY), CPU).networks.D_A
    output_constant(d, 0.3, tanh=False)
    x = torch.zeros(1, 3, 32, 32)
    assert discriminator_loss(d, [x], [x]).item() == pytest.approx(0.5 * ((0.3 - 1) ** 2 + 0.3 ** 2))
    assert discriminator_loss(d, [x, x], [x]).item() == pytest.approx(0.5 * (2 * (0.3 - 1) ** 2 + 0.3 ** 2))


def test_l1_loss_is_weighted_mean_absolute_difference():
    assert l1_loss(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 0.0]), 10).item() == pytest.approx(10 * 0.75)


def test_cyclegan_losses_by_hand():
    model = CycleGAN(shipped_params("cyclegan", **TINY, lambda_cyc=10, lambda_identity=0.5), CPU)
    set_outputs(model, G_A=0.2, G_B=-0.1, D_A=0.3, D_B=0.6)
    real_A, real_B = frames(0.5)[:, 0], frames(-0.25)[:, 0]
    losses = model.optimize({"A": real_A, "B": real_B})  # losses of the step, before its updates
    expected = {
        "loss_G_A": (0.3 - 1) ** 2, "loss_G_B": (0.6 - 1) ** 2,
        "loss_cycle_A": 10 * abs(-0.1 - 0.5),       # G_B(G_A(a)) = -0.1 against a = 0.5
        "loss_cycle_B": 10 * abs(0.2 - -0.25),      # G_A(G_B(b)) = 0.2 against b = -0.25
        "loss_idt_A": 10 * 0.5 * abs(0.2 - -0.25),  # G_A(b) against b
        "loss_idt_B": 10 * 0.5 * abs(-0.1 - 0.5),   # G_B(a) against a
        "loss_D_A": 0.5 * ((0.3 - 1) ** 2 + 0.3 ** 2), "loss_D_B": 0.5 * ((0.6 - 1) ** 2 + 0.6 ** 2),
    }
    assert {k: v.item() for k, v in losses.items()} == pytest.approx(expected, abs=1e-5)
    no_identity = CycleGAN(shipped_params("cyclegan", **TINY, lambda_identity=0), CPU)
    assert "loss_idt_A" not in no_identity.generator_losses(real_A, real_B)[0]


@pytest.mark.parametrize("variant", ["recycle", "recycle+cycle+identity"])
def test_recyclegan_losses_by_hand(variant):
    extra = variant != "recycle"
    params = shipped_params("recyclegan", **TINY, predictor_downs=5, lambda_cyc=10, add_cycle_loss=extra,
                              lambda_identity=0.5 if extra else 0)
    model = RecycleGAN(params, CPU)
    set_outputs(model, G_A=0.2, G_B=-0.1, P_A=0.05, P_B=-0.3, D_A=0.3, D_B=0.6)
    a0, a1, a2, b0, b1, b2 = 0.5, 0.3, -0.2, -0.25, 0.1, 0.4
    losses = model.optimize({"A": frames(a0, a1, a2), "B": frames(b0, b1, b2)})
    expected = {
        "loss_G_A": 3 * (0.3 - 1) ** 2, "loss_G_B": 3 * (0.6 - 1) ** 2,  # on G(x0), G(x1), P(G(x0), G(x1))
        "loss_recurrent_A": 10 * abs(0.05 - a2), "loss_recurrent_B": 10 * abs(-0.3 - b2),  # P(x0, x1) vs x2
        "loss_recycle_A": 10 * abs(-0.1 - a2), "loss_recycle_B": 10 * abs(0.2 - b2),  # G_B(P_B(..)) vs a2
        # D_A: real b0, b1, b2, b2 against G_A(a0), G_A(a1), P_B(G_A(a0), G_A(a1)), P_B(b0, b1)
        "loss_D_A": 4 * 0.5 * ((0.3 - 1) ** 2 + 0.3 ** 2), "loss_D_B": 4 * 0.5 * ((0.6 - 1) ** 2 + 0.6 ** 2),
    }
    if extra:
        expected |= {"loss_cycle_A": 10 * (abs(-0.1 - a0) + abs(-0.1 - a1)),
                     "loss_cycle_B": 10 * (abs(0.2 - b0) + abs(0.2 - b1)),
                     "loss_idt_A": 5 * (abs(0.2 - b0) + abs(0.2 - b1)),
                     "loss_idt_B": 5 * (abs(-0.1 - a0) + abs(-0.1 - a1))}
    assert {k: v.item() for k, v in losses.items()} == pytest.approx(expected, abs=1e-5)


def test_one_step_updates_generators_predictors_and_discriminators():
    model = RecycleGAN(shipped_params("recyclegan", **TINY, predictor_downs=5), CPU)
    before = {k: v.clone() for k, v in model.networks.state_dict().items()}
    model.optimize({"A": torch.rand(1, 3, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 3, 32, 32) * 2 - 1})
    after = model.networks.state_dict()
    for name in ("G_A", "G_B", "P_A", "P_B", "D_A", "D_B"):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(name + "."))


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(2, seed=0)
    images = [torch.full((1, 3, 4, 4), float(i)) for i in range(200)]
    assert torch.equal(pool.query(images[0]), images[0]) and torch.equal(pool.query(images[1]), images[1])
    returned = [pool.query(image)[0, 0, 0, 0].item() for image in images[2:]]
    own = sum(value == i + 2 for i, value in enumerate(returned))
    assert 70 < own < 130  # each new fake comes back with probability 1/2, else a stored one
    assert all(value < i + 2 for i, value in enumerate(returned) if value != i + 2)  # stored ones are older
    assert torch.equal(ImagePool(0, seed=0).query(images[5]), images[5])


def test_image_pool_state_round_trip_continues_identically():
    pool = ImagePool(3, seed=1)
    for i in range(5):
        pool.query(torch.full((2, 3, 4, 4), float(i)))
    copy = ImagePool(3, seed=99)
    copy.load_state_dict(pool.state_dict())
    for i in range(5, 30):
        x = torch.full((1, 3, 4, 4), float(i))
        assert torch.equal(pool.query(x), copy.query(x))
