"""Deep TEN (Zhang, Xue & Dana, CVPR 2017) ResNet-50 on MINC-2500, in the layout of PyTorch-Encoding's published
``deepten_resnet50_minc-1225f149.pth`` — the closest public network to the paper's MINC expert (a Deep Encoding
Pooling network on ResNet-50 that its authors never released; ``status: substitute``).

Layout (key names and shapes as PyTorch-Encoding's ``DeepTen`` and ``resnet50s``; written here, checked by
``tests/test_experts_published.py``): ``pretrained.*`` a ResNet-50 with the deep stem (``conv1.0`` 3->64 s2,
``conv1.1`` BN, ``conv1.3`` 64->64, ``conv1.4`` BN, ``conv1.6`` 64->128, then ``bn1`` of 128 channels, so
``layer1.0`` takes 128 channels) and its unused ImageNet ``fc``; ``head.0`` 1 x 1 conv 2048->128, ``head.1`` BN,
``head.3`` the residual encoding layer (``codewords`` (32, 128), ``scale`` (32,)), ``head.6`` linear 4096->23.

Encoding layer: for the N = H x W descriptors x_i (128-d) and K = 32 codewords c_k, weights
a_ik = softmax_k(s_k ||x_i - c_k||^2) and residual encodings e_k = sum_i a_ik (x_i - c_k); the (K x D) encoding is
flattened K-major, L2-normalised, and classified. Input: ImageNet mean/std normalisation, 224 x 224 centre crop
of the 256-resized image.
"""

from __future__ import annotations

from typing import Any

from ._torch import torch_module

N_CODES, DIM = 32, 128


def build_deepten(num_classes: int = 23):
    """A randomly initialised Deep TEN ResNet-50 with PyTorch-Encoding's module names."""
    torch = torch_module()
    from ..errors import require

    tv = require("torchvision", "vision", "the Deep TEN MINC expert")
    nn: Any = torch.nn

    class _Encoding(nn.Module):
        def __init__(self, d: int, k: int):
            super().__init__()
            self.codewords = nn.Parameter(torch.empty(k, d).uniform_(-1 / k ** 0.5, 1 / k ** 0.5))
            self.scale = nn.Parameter(torch.empty(k).uniform_(-1, 0))

        def forward(self, x):
            b, d = x.shape[:2]
            x = x.reshape(b, d, -1).transpose(1, 2)  # (B, N, D)
            residual = x[:, :, None, :] - self.codewords[None, None]  # (B, N, K, D)
            weights = torch.softmax(self.scale * residual.pow(2).sum(-1), dim=2)  # (B, N, K)
            return (weights[..., None] * residual).sum(1)  # (B, K, D)

    class _Head(nn.Sequential):
        def forward(self, x):
            x = self[3](self[2](self[1](self[0](x))))
            x = torch.nn.functional.normalize(x.reshape(x.shape[0], -1), p=2, dim=1)
            return self[6](x)

    class _DeepTen(nn.Module):
        def __init__(self):
            super().__init__()
            backbone = tv.models.resnet50(weights=None)
            backbone.conv1 = nn.Sequential(
                nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                nn.Conv2d(64, 128, 3, 1, 1, bias=False))
            backbone.bn1 = nn.BatchNorm2d(128)
            backbone.layer1[0].conv1 = nn.Conv2d(128, 64, 1, bias=False)
            backbone.layer1[0].downsample[0] = nn.Conv2d(128, 256, 1, bias=False)
            self.pretrained = backbone
            self.head = _Head(nn.Conv2d(2048, DIM, 1), nn.BatchNorm2d(DIM), nn.ReLU(inplace=True),
                              _Encoding(DIM, N_CODES), nn.Identity(), nn.Identity(),
                              nn.Linear(DIM * N_CODES, num_classes))

        def forward(self, x):
            p = self.pretrained
            x = p.maxpool(p.relu(p.bn1(p.conv1(x))))
            x = p.layer4(p.layer3(p.layer2(p.layer1(x))))
            return self.head(x)

    return _DeepTen()
