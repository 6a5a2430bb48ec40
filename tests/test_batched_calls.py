"""The step stacks independent calls of one network into one call (pipeline.models.cyclegan.batched).

These tests hold it to the official code's call pattern, one network call per input, written out
here on the same networks: the losses and the gradients must match, for random weights and real-
valued random inputs, so a mixed-up input or a batch statistic leaking across samples shows. In
float64, so that rounding (the biases before instance norm have a true gradient of 0) stays far
below any real difference.
"""
import pytest
import torch
from helpers.repo import shipped_params

from pipeline.models.cyclegan import CycleGAN, batched, gan_loss, l1_loss
from pipeline.models.recyclegan import RecycleGAN

CPU = torch.device("cpu")
TINY = dict(crop_size=32, ngf=4, ndf=4, n_blocks=1, batch_size=1, lr=2e-4, seed=3)


def official_discriminator_loss(d, real, fake):
    return 0.5 * (gan_loss(d(real), True) + gan_loss(d(fake.detach()), False))


def official_cyclegan(model, real_A, real_B):
    n, p = model.networks, model.params
    fake_B, fake_A = n.G_A(real_A), n.G_B(real_B)
    weight = p.lambda_cyc * p.lambda_identity
    return {
        "loss_G_A": gan_loss(n.D_A(fake_B), True), "loss_G_B": gan_loss(n.D_B(fake_A), True),
        "loss_cycle_A": l1_loss(n.G_B(fake_B), real_A, p.lambda_cyc),
        "loss_cycle_B": l1_loss(n.G_A(fake_A), real_B, p.lambda_cyc),
        "loss_idt_A": l1_loss(n.G_A(real_B), real_B, weight), "loss_idt_B": l1_loss(n.G_B(real_A), real_A, weight),
        "loss_D_A": official_discriminator_loss(n.D_A, real_B, fake_B),
        "loss_D_B": official_discriminator_loss(n.D_B, real_A, fake_A),
    }


def official_recyclegan(model, real_A, real_B):
    n, p = model.networks, model.params
    (a0, a1, a2), (b0, b1, b2) = real_A.unbind(1), real_B.unbind(1)
    fake_B0, fake_B1, fake_A0, fake_A1 = n.G_A(a0), n.G_A(a1), n.G_B(b0), n.G_B(b1)
    fake_B2, fake_A2 = n.P_B(torch.cat([fake_B0, fake_B1], 1)), n.P_A(torch.cat([fake_A0, fake_A1], 1))
    pred_A2, pred_B2 = n.P_A(torch.cat([a0, a1], 1)), n.P_B(torch.cat([b0, b1], 1))
    lam, weight = p.lambda_cyc, p.lambda_cyc * p.lambda_identity
    return {
        "loss_G_A": sum(gan_loss(n.D_A(f), True) for f in (fake_B0, fake_B1, fake_B2)),
        "loss_G_B": sum(gan_loss(n.D_B(f), True) for f in (fake_A0, fake_A1, fake_A2)),
        "loss_recurrent_A": l1_loss(pred_A2, a2, lam), "loss_recurrent_B": l1_loss(pred_B2, b2, lam),
        "loss_recycle_A": l1_loss(n.G_B(fake_B2), a2, lam), "loss_recycle_B": l1_loss(n.G_A(fake_A2), b2, lam),
        "loss_cycle_A": l1_loss(n.G_B(fake_B0), a0, lam) + l1_loss(n.G_B(fake_B1), a1, lam),
        "loss_cycle_B": l1_loss(n.G_A(fake_A0), b0, lam) + l1_loss(n.G_A(fake_A1), b1, lam),
        "loss_idt_A": l1_loss(n.G_A(b0), b0, weight) + l1_loss(n.G_A(b1), b1, weight),
        "loss_idt_B": l1_loss(n.G_B(a0), a0, weight) + l1_loss(n.G_B(a1), a1, weight),
        "loss_D_A": sum(official_discriminator_loss(n.D_A, r, f)
                        for r, f in zip((b0, b1, b2, b2), (fake_B0, fake_B1, fake_B2, pred_B2))),
        "loss_D_B": sum(official_discriminator_loss(n.D_B, r, f)
                        for r, f in zip((a0, a1, a2, a2), (fake_A0, fake_A1, fake_A2, pred_A2))),
    }


def step_losses(model, real_A, real_B):
    """The model's own G and D losses for one batch (no update), as optimize computes them."""
    g_losses, fakes = model.generator_losses(real_A, real_B)
    return {**g_losses, **model.discriminator_losses(real_A, real_B, fakes)}


def gradients(model, losses):
    model.networks.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    return {name: p.grad.clone() for name, p in model.networks.named_parameters()}


def test_batched_call_gives_each_input_its_own_output():
    g = CycleGAN(shipped_params("cyclegan", **TINY), CPU).networks.G_A
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    out_x, out_y = batched(g, x, y)
    # Another batch size lets the convolutions sum in another order. Each of the ~10 layers rounds
    # sums of <= 196 products by ~sqrt(196) float32 eps (6e-8) relative, ~3e-6 through the net into
    # tanh's [-1, 1] (docs/test_tolerances.md); another sample's output would be ~0.1 off.
    torch.testing.assert_close(out_x, g(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(out_y, g(y), atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_cls, params, official, frames", [
    (CycleGAN, shipped_params("cyclegan", **TINY, pool_size=0), official_cyclegan, None),
    (RecycleGAN, shipped_params("recyclegan", **TINY, predictor_downs=5, add_cycle_loss=True, lambda_identity=0.5),
     official_recyclegan, 3),
], ids=["cyclegan", "recyclegan"])
def test_step_losses_and_gradients_match_one_call_per_input(model_cls, params, official, frames):
    model = model_cls(params, CPU)
    model.networks.double()
    shape = (2, frames, 3, 32, 32) if frames else (2, 3, 32, 32)
    torch.manual_seed(0)
    real_A, real_B = (torch.rand(shape, dtype=torch.float64) * 2 - 1 for _ in "AB")
    ours, reference = step_losses(model, real_A, real_B), official(model, real_A, real_B)
    assert ours.keys() == reference.keys()
    torch.testing.assert_close(ours, reference, atol=1e-12, rtol=1e-10)
    ours_grad, reference_grad = gradients(model, ours), gradients(model, reference)
    assert ours_grad.keys() == reference_grad.keys()
    torch.testing.assert_close(ours_grad, reference_grad, atol=1e-12, rtol=1e-8)
