"""The networks match the official definitions: parameter counts, shapes, receptive field, init."""
import pytest
import torch
from torch import nn

from pipeline.models.nets import NLayerDiscriminator, ResnetGenerator, UnetGenerator, init_weights


def count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_equal_the_official_networks_at_paper_settings():
    assert count(ResnetGenerator(ngf=64, n_blocks=9)) == 11_378_179
    assert count(NLayerDiscriminator(ndf=64, n_layers=3)) == 2_764_737
    assert count(ResnetGenerator(ngf=64, n_blocks=6)) == 7_837_699  # Recycle-GAN's resnet_6blocks


def test_generator_keeps_the_image_size_and_range():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for upsample in ("transpose", "resize"):
        y = init_weights(ResnetGenerator(ngf=8, n_blocks=2, upsample=upsample))(x)
        assert y.shape == x.shape and y.abs().max() <= 1


def test_resize_upsampling_replaces_the_transposed_convolutions():
    layers = list(ResnetGenerator(ngf=8, n_blocks=1, upsample="resize").modules())
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in layers)
    assert sum(isinstance(m, nn.Upsample) for m in layers) == 2
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in ResnetGenerator(ngf=8, n_blocks=1).modules()) == 2
    with pytest.raises(ValueError, match="upsample"):
        ResnetGenerator(upsample="bilinear")


def test_patchgan_output_values_each_see_a_70_pixel_patch():
    net = init_weights(NLayerDiscriminator(ndf=8))
    assert net(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    field = 1  # receptive field of one output value through the convolutions (instance norm aside)
    for conv in reversed([m for m in net.modules() if isinstance(m, nn.Conv2d)]):
        field = (field - 1) * conv.stride[0] + conv.kernel_size[0]
    assert field == 70


def test_unet_predictor_maps_two_frames_to_one():
    net = init_weights(UnetGenerator(6, 3, num_downs=8, ngf=4))
    y = net(torch.rand(1, 6, 256, 256) * 2 - 1)
    assert y.shape == (1, 3, 256, 256)
    assert init_weights(UnetGenerator(6, 3, num_downs=5, ngf=4))(torch.zeros(2, 6, 64, 64)).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="num_downs"):
        UnetGenerator(num_downs=4)


def test_init_is_normal_0_002_with_zero_biases_and_no_norm_weights():
    net = init_weights(ResnetGenerator(ngf=64, n_blocks=9))
    weights = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert abs(weights.mean().item()) < 1e-4 and abs(weights.std().item() - 0.02) < 1e-4
    assert all((m.bias == 0).all() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    assert not any(p.numel() for m in net.modules() if isinstance(m, nn.InstanceNorm2d) for p in m.parameters())
