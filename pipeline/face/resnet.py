"""dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) run by PyTorch.

The dlib-bin wheel is built without BLAS: its ResNet takes ~125-200 ms per face on one core. The
same network in PyTorch, with the weights read from the very .dat file shipped in
face_recognition_models, takes ~15-25 ms per face on one core (batched) and gives the same
descriptors to ~1e-6 (tests/test_identity.py compares them with dlib's own).

Architecture (dlib's dnn_face_recognition_ex.cpp): 7x7/2 conv (32) + affine + relu + 3x3/2 max
pool, then residual blocks of two 3x3 conv + affine; a block whose first conv has stride 2 adds a
2x2/2 average pool of its input, and dlib's add_prev pads the smaller operand with zeros (channels
and, at 8 -> 3 vs 4 pixels, space); global average pool; 128 x 256 linear without bias.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.common.errors import FacecycleError

CHIP_SIZE = 150  # input_rgb_image_sized<150>: aligned face chips of 150 x 150 pixels


class _Reader:
    """dlib's serialization: integers as a length byte (bit 7: negative) and little-endian bytes,
    strings as length + bytes, version-2 tensors as 4 integer dims + little-endian float32."""

    def __init__(self, data: bytes, position: int):
        self.data, self.position = data, position

    def integer(self) -> int:
        head = self.data[self.position]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.position + 1:self.position + 1 + size], "little")
        self.position += 1 + size
        return -value if head & 0x80 else value

    def text(self) -> str:
        size = self.integer()
        self.position += size
        return self.data[self.position - size:self.position].decode()

    def tensor(self) -> np.ndarray:
        if self.integer() != 2:
            raise ValueError("unsupported tensor version")
        size = int(np.prod([self.integer() for _ in range(4)]))
        values = np.frombuffer(self.data, "<f4", size, self.position)
        self.position += 4 * size
        return values


class ConvAffine(nn.Module):
    """dlib's con_ (with bias) followed by affine_ (per-channel scale and shift)."""

    def __init__(self, params: np.ndarray, filters: int, size: int, stride: int, padding: int, affine: np.ndarray):
        super().__init__()
        weights = filters * size * size
        channels = (len(params) - filters) // weights
        self.conv = nn.Conv2d(channels, filters, size, stride, padding)
        self.conv.weight.data = torch.tensor(params[:weights * channels].reshape(filters, channels, size, size))
        self.conv.bias.data = torch.tensor(params[weights * channels:])
        self.register_buffer("gamma", torch.tensor(affine[:filters]).view(1, -1, 1, 1))
        self.register_buffer("beta", torch.tensor(affine[filters:]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.gamma + self.beta


def _add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: the sum over the larger shape, the smaller operand padded with zeros."""
    out = a.new_zeros([max(s, t) for s, t in zip(a.shape, b.shape)])
    out[:, :a.shape[1], :a.shape[2], :a.shape[3]] += a
    out[:, :b.shape[1], :b.shape[2], :b.shape[3]] += b
    return out


class FaceResNet(nn.Module):
    """uint8 RGB face chips [N, 150, 150, 3] (dlib.get_face_chip) -> 128-d descriptors [N, 128]."""

    MEAN = (122.782, 117.001, 104.298)  # input_rgb_image_sized's avg_red, avg_green, avg_blue

    def __init__(self, layers: list[ConvAffine], fc: np.ndarray):
        super().__init__()
        self.stem, self.blocks = layers[0], nn.ModuleList(layers[1:])
        self.fc = nn.Linear(fc.shape[0], fc.shape[1], bias=False)
        self.fc.weight.data = torch.tensor(fc.T.copy())
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1))

    @classmethod
    def from_dat(cls, path: str | Path) -> "FaceResNet":
        """Read the conv, affine and fc parameters, in network order, from dlib's .dat file."""
        data = Path(path).read_bytes()
        convs, affines, fc = [], [], None
        try:
            for found in re.finditer(rb"\x01\x05con_4|\x01\x07affine_|\x01\x04fc_2", data):
                reader = _Reader(data, found.start())
                name = reader.text()
                if name == "con_4":
                    params = reader.tensor()
                    filters, rows, _, stride, _, padding, _ = (reader.integer() for _ in range(7))
                    convs.append((params, filters, rows, stride, padding))
                elif name == "affine_":
                    affines.append(reader.tensor())
                else:
                    outputs, inputs = reader.integer(), reader.integer()
                    fc = reader.tensor().reshape(inputs, outputs)
        except (ValueError, IndexError) as err:
            raise FacecycleError(f"{path}: not dlib's face recognition ResNet ({err})") from None
        if len(convs) != 29 or len(affines) != 29 or fc is None:
            raise FacecycleError(f"{path}: expected 29 conv, 29 affine and 1 fc layers, found "
                                 f"{len(convs)}, {len(affines)}, {int(fc is not None)}")
        net = cls([ConvAffine(*conv, affine) for conv, affine in zip(convs, affines)], fc)
        return net.eval().requires_grad_(False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = (chips.permute(0, 3, 1, 2).float() - self.mean) / 256
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        for first, second in zip(self.blocks[::2], self.blocks[1::2]):
            skip = F.avg_pool2d(x, 2, 2) if first.conv.stride[0] == 2 else x
            x = F.relu(_add_prev(second(F.relu(first(x))), skip))
        return self.fc(x.mean(dim=(2, 3)))
