"""Recycle-GAN (Bansal et al., ECCV 2018): CycleGAN's pieces plus temporal predictors, as the authors' code.

Samples are triplets x0, x1, x2 of consecutive frames. P_A and P_B predict frame 2 from frames 0
and 1. Losses (L1 weighted by lambda_cyc): recurrent |P_A(a0, a1) - a2| and recycle
|G_B(P_B(G_A(a0), G_A(a1))) - a2|, the same for B; adversarial terms on G(x0), G(x1) and
P(G(x0), G(x1)). The discriminators also see P applied to a real pair as a fake. With
`add_cycle_loss` (the authors' ReCycle-GAN variant) the plain cycle losses on frames 0 and 1 join in.
"""
from __future__ import annotations

import torch
from torch import nn

from pipeline.common.params import RecycleGANParams
from pipeline.models.cyclegan import CycleGAN, batched, discriminator_loss, gan_loss, generators_and_discriminators, l1_loss
from pipeline.models.nets import UnetGenerator, init_weights


class RecycleGAN(CycleGAN):
    """The Recycle-GAN model: CycleGAN's networks, optimisers, pools and step, plus P_A and P_B.

    The authors use one Adam per discriminator; the shared one of CycleGAN computes the same
    updates (Adam works per parameter).
    """
    frames_per_sample = 3  # a sample is a triplet of consecutive frames of one shot

    @staticmethod
    def build_networks(params: RecycleGANParams) -> dict[str, nn.Module]:
        networks = generators_and_discriminators(params)
        for name in ("P_A", "P_B"):
            networks[name] = init_weights(UnetGenerator(6, 3, num_downs=params.predictor_downs, ngf=params.ngf))
        return networks

    def generator_losses(self, real_A: torch.Tensor, real_B: torch.Tensor):
        """The G objective's terms, named as in the paper, and the fakes for the D step.

        real_A, real_B: [batch, 3 frames, 3, H, W]. The frozen discriminators are plain networks (see CycleGAN).
        """
        g, d, p = self.replicas, self.networks, self.params
        G_A, G_B, P_A, P_B = (g[name] for name in ("G_A", "G_B", "P_A", "P_B"))
        a0, a1, a2 = real_A.unbind(1)
        b0, b1, b2 = real_B.unbind(1)
        identity, cycle = p.lambda_identity > 0, p.add_cycle_loss
        fake_B0, fake_B1, *idt_A = batched(G_A, a0, a1, *[b0, b1] * identity)
        fake_A0, fake_A1, *idt_B = batched(G_B, b0, b1, *[a0, a1] * identity)
        fake_B2, pred_B2 = batched(P_B, torch.cat([fake_B0, fake_B1], 1), torch.cat([b0, b1], 1))
        fake_A2, pred_A2 = batched(P_A, torch.cat([fake_A0, fake_A1], 1), torch.cat([a0, a1], 1))
        rec_A2, *rec_A = batched(G_B, fake_B2, *[fake_B0, fake_B1] * cycle)
        rec_B2, *rec_B = batched(G_A, fake_A2, *[fake_A0, fake_A1] * cycle)
        losses = {
            "loss_G_A": sum(gan_loss(out, True) for out in batched(d.D_A, fake_B0, fake_B1, fake_B2)),
            "loss_G_B": sum(gan_loss(out, True) for out in batched(d.D_B, fake_A0, fake_A1, fake_A2)),
            "loss_recurrent_A": l1_loss(pred_A2, a2, p.lambda_cyc),
            "loss_recurrent_B": l1_loss(pred_B2, b2, p.lambda_cyc),
            "loss_recycle_A": l1_loss(rec_A2, a2, p.lambda_cyc),
            "loss_recycle_B": l1_loss(rec_B2, b2, p.lambda_cyc),
        }
        if cycle:
            losses["loss_cycle_A"] = l1_loss(rec_A[0], a0, p.lambda_cyc) + l1_loss(rec_A[1], a1, p.lambda_cyc)
            losses["loss_cycle_B"] = l1_loss(rec_B[0], b0, p.lambda_cyc) + l1_loss(rec_B[1], b1, p.lambda_cyc)
        if identity:
            weight = p.lambda_cyc * p.lambda_identity
            losses["loss_idt_A"] = l1_loss(idt_A[0], b0, weight) + l1_loss(idt_A[1], b1, weight)
            losses["loss_idt_B"] = l1_loss(idt_B[0], a0, weight) + l1_loss(idt_B[1], a1, weight)
        fakes = {"fake_B": (fake_B0, fake_B1, fake_B2, pred_B2), "fake_A": (fake_A0, fake_A1, fake_A2, pred_A2)}
        return losses, fakes

    def discriminator_losses(self, real_A: torch.Tensor, real_B: torch.Tensor, fakes: dict) -> dict:
        """D_A judges B frames: fakes G_A(a0), G_A(a1), P_B(G_A(a0), G_A(a1)) and P_B(b0, b1); D_B likewise."""
        def judged(discriminator: nn.Module, real: torch.Tensor, pool: str) -> torch.Tensor:
            reals = (real[:, 0], real[:, 1], real[:, 2], real[:, 2])
            return discriminator_loss(discriminator, reals, [self.pooled(pool, fake) for fake in fakes[pool]])

        return {"loss_D_A": judged(self.replicas["D_A"], real_B, "fake_B"),
                "loss_D_B": judged(self.replicas["D_B"], real_A, "fake_A")}


MODEL = RecycleGAN
