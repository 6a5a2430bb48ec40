"""The networks of CycleGAN and Recycle-GAN, as defined in the official code.

ResnetGenerator (G), NLayerDiscriminator (the 70x70 PatchGAN, D) and UnetGenerator (the
Recycle-GAN next-frame predictor P) follow junyanz/pytorch-CycleGAN-and-pix2pix layer for layer
(instance norm without affine parameters, conv biases on, no dropout), so parameter counts and
behaviour match the papers. No I/O here: saving and loading live with the training loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.common.params import UPSAMPLE_MODES


class InstanceNorm(nn.InstanceNorm2d):
    """Instance norm without affine parameters or running statistics (the official 'instance' norm).

    Computed as group norm with one group per channel: the same maths, but torch's instance_norm
    returns wrong input gradients on the CPU for one-sample batches whose gradient arrives in
    channels_last layout (torch 2.14; tests/test_fast_path.py), and group norm is also faster there.
    """

    def __init__(self, num_features: int):
        super().__init__(num_features, affine=False, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, self.num_features, eps=self.eps)


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with a skip connection."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), InstanceNorm(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), InstanceNorm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _upsample(in_nc: int, out_nc: int, mode: str) -> list[nn.Module]:
    """Double the resolution: the paper's transposed convolution, or resize-then-convolve
    (fewer checkerboard artefacts, Odena et al. 2016; not part of the paper recipe)."""
    if mode == "transpose":
        return [nn.ConvTranspose2d(in_nc, out_nc, 3, stride=2, padding=1, output_padding=1)]
    if mode == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(in_nc, out_nc, 3)]
    raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {mode!r}")


class ResnetGenerator(nn.Module):
    """G: 7x7 stem, two stride-2 downsamplings, n_blocks residual blocks, two upsamplings, 7x7 + tanh.

    Images in and out are in [-1, 1]; the spatial size must be a multiple of 4.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 upsample: str = "transpose"):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), InstanceNorm(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1), InstanceNorm(ngf * mult * 2),
                       nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += _upsample(ngf * mult, ngf * mult // 2, upsample) + [InstanceNorm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """D: PatchGAN; with n_layers=3 each output value sees a 70x70 patch of the input."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1), InstanceNorm(ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: downsample, the inner levels, upsample, then concatenate the skip."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False):
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1)
        # In place, as in the official code: the skip connection carries the activated input.
        downrelu, uprelu = nn.LeakyReLU(0.2, True), nn.ReLU(True)
        if outermost:
            layers = [downconv, submodule, uprelu, nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1),
                      nn.Tanh()]
        elif submodule is None:  # innermost: 1x1 at the bottom, nothing to normalise
            layers = [downrelu, downconv, uprelu, nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1),
                      InstanceNorm(outer_nc)]
        else:
            layers = [downrelu, downconv, InstanceNorm(inner_nc), submodule, uprelu,
                      nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1), InstanceNorm(outer_nc)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """P: U-Net with num_downs halvings (unet_256: 8, so 256 px reach 1x1 at the bottom).

    As Recycle-GAN's predictor it takes two frames stacked on channels (6) and predicts the next (3).
    """

    def __init__(self, input_nc: int = 6, output_nc: int = 3, num_downs: int = 8, ngf: int = 64):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The official 'normal' init: conv weights ~ N(0, gain), biases 0 (instance norm has no weights)."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, gain)
            nn.init.zeros_(module.bias)
    return net
