"""CycleGAN (Zhu et al., ICCV 2017): losses, image pool and one training step, as the official code.

G_A maps A -> B and is judged by D_A; G_B maps B -> A and is judged by D_B. LSGAN adversarial
terms, L1 cycle terms weighted by lambda_cyc, an identity term weighted by
lambda_cyc * lambda_identity, discriminators trained on a pool of past fakes (pool_size: 50 in
the paper) with loss 0.5 * (real + fake). The pieces here (networks, losses, pool, optimiser
step) are reused by Recycle-GAN.

Under torchrun each process trains DistributedDataParallel replicas on its share of the global
batch; with instance norm every sample's maths is independent, so the averaged gradients are the
one-process batch gradient, and the image pools see the whole gathered batch as one process would.

Where the official code calls one network several times on independent inputs, the step makes
one call on the inputs stacked along the batch axis (`batched`): instance norm has no batch
statistics, so each sample's maths is unchanged, and the GPU runs fewer, larger kernels.
"""
from __future__ import annotations

import itertools
from typing import Iterable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.common.device import StepOptions, check_compiler, replica_group
from pipeline.common.params import GANParams
from pipeline.models.nets import NLayerDiscriminator, ResnetGenerator, init_weights


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Losses are summed in fp32 even when the networks ran in bf16 (and in float64 when they did)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def gan_loss(prediction: torch.Tensor, is_real: bool) -> torch.Tensor:
    """LSGAN: mean squared distance of the discriminator's patch outputs to 1 (real) or 0 (fake)."""
    prediction = at_least_fp32(prediction)
    target = torch.ones_like(prediction) if is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


def batched(net: nn.Module, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """net(x) for each input x, from one call on the inputs stacked along the batch axis."""
    return net(torch.cat(inputs)).split([len(x) for x in inputs])


def discriminator_loss(discriminator: nn.Module, reals: Sequence[torch.Tensor],
                       fakes: Sequence[torch.Tensor]) -> torch.Tensor:
    """0.5 * (real terms + fake terms), as the official code (D learns at half the rate of G).

    One LSGAN term per image batch in `reals` and `fakes`, all judged in one discriminator call.
    """
    outputs = batched(discriminator, *reals, *(fake.detach() for fake in fakes))
    return 0.5 * (sum(gan_loss(out, True) for out in outputs[:len(reals)])
                  + sum(gan_loss(out, False) for out in outputs[len(reals):]))


def l1_loss(output: torch.Tensor, target: torch.Tensor, weight: float) -> torch.Tensor:
    """weight * mean |output - target|: cycle, identity, recurrent and recycle terms."""
    return weight * F.l1_loss(at_least_fp32(output), at_least_fp32(target))


class ImagePool:
    """The official image buffer: D sees a mix of current fakes and fakes from earlier steps.

    The first `size` fakes fill the pool and pass through; after that each new fake, with
    probability 1/2, is swapped for a random stored one. Size 0 passes everything through.
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        self.images: torch.Tensor | None = None
        self.count = 0
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        if self.images is not None and self.images.device != images.device:  # restored from a CPU checkpoint
            self.images = self.images.to(images.device)
        out = []
        for image in images.detach():
            if self.images is None:
                self.images = image.new_empty((self.size, *image.shape))
            if self.count < self.size:
                self.images[self.count] = image
                self.count += 1
                out.append(image)
            elif torch.rand(1, generator=self.generator).item() > 0.5:
                i = int(torch.randint(self.size, (1,), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        stored = self.images[:self.count] if self.images is not None else torch.zeros(0)
        return {"images": stored.clone(), "count": self.count, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.count = state["count"]
        self.images = None
        if self.count:
            stored = state["images"]
            self.images = stored.new_empty((self.size, *stored.shape[1:]))
            self.images[:self.count] = stored
        self.generator.set_state(state["generator"])


def generators_and_discriminators(params: GANParams) -> dict[str, nn.Module]:
    """G_A, G_B, D_A, D_B of the recipe, initialised N(0, 0.02)."""
    def generator() -> nn.Module:
        return ResnetGenerator(ngf=params.ngf, n_blocks=params.n_blocks, upsample=params.upsample)

    return {"G_A": init_weights(generator()), "G_B": init_weights(generator()),
            "D_A": init_weights(NLayerDiscriminator(ndf=params.ndf)),
            "D_B": init_weights(NLayerDiscriminator(ndf=params.ndf))}


def adam(modules: Iterable[nn.Module], params: GANParams, fused: bool) -> torch.optim.Adam:
    """Adam(lr, betas=(beta1, 0.999)) over all parameters of `modules`; `fused`: one kernel for all of them."""
    return torch.optim.Adam(itertools.chain(*(m.parameters() for m in modules)), lr=params.lr,
                            betas=(params.beta1, 0.999), fused=fused or None)  # None: torch's default, not the slow loop


def set_requires_grad(modules: Iterable[nn.Module], flag: bool) -> None:
    """Freeze the discriminators during the generator step (no wasted gradients)."""
    for module in modules:
        module.requires_grad_(flag)


def optimizer_step(optimizer: torch.optim.Optimizer, losses: Iterable[torch.Tensor]) -> None:
    optimizer.zero_grad(set_to_none=True)
    sum(losses).backward()
    optimizer.step()


class CycleGAN:
    """The CycleGAN model: networks, optimisers, image pools and one training step.

    One Adam for all generator-side networks, one for both discriminators (Adam works per
    parameter, so this equals one Adam per discriminator). `networks` hold the weights (saved,
    exported, used frozen); `replicas` are what the step trains: DDP wrappers that average the
    gradients across processes under torchrun, else the networks themselves.
    """
    frames_per_sample = 1  # a sample is one crop

    def __init__(self, params: GANParams, device: torch.device, options: StepOptions | None = None):
        self.params = params
        self.options = options or StepOptions.for_device(device, params.compile, params.precision)
        self.autocast = lambda: self.options.autocast(device)
        torch.manual_seed(params.seed)
        self.networks = nn.ModuleDict(self.build_networks(params)).to(device, memory_format=self.options.memory_format)
        if self.options.compile:
            check_compiler(device, params.group)
            for net in self.networks.values():
                # in place: state_dict keys stay as they are. Static shapes: each batch shape a
                # network sees (two per step, see `batched`) gets its own specialised kernels.
                net.compile(dynamic=False, options=self.options.compile_options(device))
        self.rank, self.world = replica_group()
        self.replicas = {name: DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
                         if self.world > 1 else net for name, net in self.networks.items()}
        n = self.networks
        generators = [net for name, net in n.items() if name not in ("D_A", "D_B")]
        fused = self.options.fused_adam
        self.optimizers = {"G": adam(generators, params, fused), "D": adam([n.D_A, n.D_B], params, fused)}
        self.pools = {"fake_A": ImagePool(params.pool_size, params.seed + 1),
                      "fake_B": ImagePool(params.pool_size, params.seed + 2)}

    @staticmethod
    def build_networks(params: GANParams) -> dict[str, nn.Module]:
        return generators_and_discriminators(params)

    def generator_losses(self, real_A: torch.Tensor, real_B: torch.Tensor):
        """The G objective's terms, named as in the paper, and the fakes for the D step.

        The frozen discriminators are called as plain networks: DDP would wait for their gradients.
        """
        g, d, p = self.replicas, self.networks, self.params
        identity = p.lambda_identity > 0  # G_A fed a B image should leave it unchanged, and G_B an A image
        fake_B, *idt_A = batched(g["G_A"], real_A, *[real_B] * identity)
        fake_A, *idt_B = batched(g["G_B"], real_B, *[real_A] * identity)
        losses = {
            "loss_G_A": gan_loss(d.D_A(fake_B), True),
            "loss_G_B": gan_loss(d.D_B(fake_A), True),
            "loss_cycle_A": l1_loss(g["G_B"](fake_B), real_A, p.lambda_cyc),
            "loss_cycle_B": l1_loss(g["G_A"](fake_A), real_B, p.lambda_cyc),
        }
        if identity:
            losses["loss_idt_A"] = l1_loss(idt_A[0], real_B, p.lambda_cyc * p.lambda_identity)
            losses["loss_idt_B"] = l1_loss(idt_B[0], real_A, p.lambda_cyc * p.lambda_identity)
        return losses, {"fake_A": fake_A, "fake_B": fake_B}

    def pooled(self, pool: str, fakes: torch.Tensor) -> torch.Tensor:
        """The pool's answer for this process's share of the batch.

        Under torchrun every process gathers the whole batch (sample k of rank r is sample
        k * world + r, as the sampler deals them) and queries its copy of one global pool with the
        same seed, so every copy stays the same and pooling equals a one-process run.
        """
        if self.world == 1 or self.pools[pool].size == 0:
            return self.pools[pool].query(fakes)
        shares = [torch.empty_like(fakes, memory_format=torch.contiguous_format) for _ in range(self.world)]
        dist.all_gather(shares, fakes.detach().contiguous())
        batch = torch.stack(shares, 1).flatten(0, 1)
        return self.pools[pool].query(batch)[self.rank::self.world]

    def discriminator_losses(self, real_A: torch.Tensor, real_B: torch.Tensor, fakes: dict) -> dict:
        r = self.replicas
        return {"loss_D_A": discriminator_loss(r["D_A"], [real_B], [self.pooled("fake_B", fakes["fake_B"])]),
                "loss_D_B": discriminator_loss(r["D_B"], [real_A], [self.pooled("fake_A", fakes["fake_A"])])}

    def optimize(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step: the generator side with the discriminators frozen, then D_A and D_B. Returns the losses."""
        n = self.networks
        real_A, real_B = batch["A"], batch["B"]
        if self.options.cuda_graphs:  # the last step's graph outputs are no longer needed: replay may reuse them
            torch.compiler.cudagraph_mark_step_begin()
        set_requires_grad([n.D_A, n.D_B], False)
        with self.autocast():
            g_losses, fakes = self.generator_losses(real_A, real_B)
        optimizer_step(self.optimizers["G"], g_losses.values())
        set_requires_grad([n.D_A, n.D_B], True)
        with self.autocast():
            d_losses = self.discriminator_losses(real_A, real_B, fakes)
        optimizer_step(self.optimizers["D"], d_losses.values())
        return {k: v.detach() for k, v in {**g_losses, **d_losses}.items()}


MODEL = CycleGAN
