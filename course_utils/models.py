"""Network building blocks and models reused across the notebooks.

- squeeze-and-excitation (:class:`SEBlock`, notebook 08) and a UNet (:class:`DoubleConv`,
  :class:`UpBlock`, :class:`UNet`, notebooks 09 and 11);
- DeepLab's blocks (notebook 09, used by notebook 12): :func:`conv_bn_relu`,
  :class:`DepthwiseSeparableConv` and :class:`ASPP`.

Each block is first written out in a notebook (the lecture's steps), then kept here in tidy form.
Pretrained ImageNet classifiers (weights fetched or not) live in :mod:`course_utils.pretrained`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018), in the lecture's four steps.

    1. global average pooling: (N, C, H, W) -> (N, C)
    2. linear projection to C // reduction values + ReLU
    3. linear projection back to C values (+ sigmoid, so each weight lies in (0, 1))
    4. each channel of the input is multiplied by its weight

    Input and output: (N, C, H, W) float tensors of the same shape.
    Parameters: 2 * C * (C // reduction) + C // reduction + C.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"SEBlock needs channels >= 1 and reduction >= 1; got {channels}, {reduction}.")
        hidden = max(1, channels // reduction)
        self.squeeze = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        s = self.squeeze(x).view(n, c)                 # step 1
        s = torch.relu(self.fc1(s))                    # step 2
        w = torch.sigmoid(self.fc2(s)).view(n, c, 1, 1)  # step 3
        return x * w                                   # step 4


# --------------------------------------------------------------------------------------------
# UNet (Ronneberger et al. 2015), written plainly: encoder, bottleneck, decoder with skips.
# --------------------------------------------------------------------------------------------
class DoubleConv(nn.Sequential):
    """Two (3x3 conv, padding 1 -> batch norm -> ReLU) steps: (N, C_in, H, W) -> (N, C_out, H, W).

    The convolutions have no bias (batch norm adds its own shift), so the block has
    9*C_in*C_out + 9*C_out*C_out + 4*C_out parameters (2*C_out per batch norm).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """One decoder level: upsample x2, concatenate the encoder's skip, DoubleConv.

    x: (N, C_in, H, W), skip: (N, C_out, 2H, 2W) -> (N, C_out, 2H, 2W).
    upsample="transpose": learned, ``ConvTranspose2d(C_in, C_out, kernel_size=2, stride=2)``.
    upsample="bilinear": handcrafted, bilinear x2 then a 1x1 conv from C_in to C_out channels.
    """

    def __init__(self, in_channels: int, out_channels: int, upsample: str = "transpose") -> None:
        super().__init__()
        if upsample == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        elif upsample == "bilinear":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    nn.Conv2d(in_channels, out_channels, kernel_size=1))
        else:
            raise ValueError(f"upsample must be 'transpose' or 'bilinear'; got {upsample!r}.")
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """A UNet for semantic segmentation: (N, in_channels, H, W) -> (N, num_classes, H, W) scores.

    Level ``i`` of the encoder (i = 0 .. depth) has ``base * 2**i`` channels at resolution
    ``H / 2**i``; level ``depth`` is the bottleneck (optionally followed by a squeeze-and-excitation
    block, ``se=True``). The decoder goes back up, concatenating at each level the encoder's
    feature map of the same size (the skip connection), and a 1x1 conv gives one channel per class.
    The output is raw scores (logits): use ``nn.CrossEntropyLoss(ignore_index=255)`` for training
    and ``.argmax(dim=1)`` for the label map.

    H and W must be divisible by ``2**depth`` (each of the ``depth`` max-poolings halves them);
    any such size works (the network is fully convolutional).

    Args:
        in_channels: 3 for RGB, 1 for grey images.
        num_classes: output channels, 21 for PASCAL VOC (20 classes + background).
        base: channels of the first level (64 in the original paper; 32 keeps CPUs happy).
        depth: number of poolings (4 in the paper).
        se: put an :class:`SEBlock` after the bottleneck.
        se_reduction: the SE block's reduction ratio.
        upsample: "transpose" (learned) or "bilinear" (handcrafted + 1x1 conv).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 21, base: int = 32, depth: int = 4,
                 se: bool = False, se_reduction: int = 16, upsample: str = "transpose") -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes), ("base", base),
                            ("depth", depth)):
            if int(value) != value or value < 1:
                raise ValueError(f"UNet needs {name} to be a positive integer; got {value!r}.")
        self.in_channels, self.num_classes, self.base, self.depth = in_channels, num_classes, base, depth
        channels = [base * 2 ** i for i in range(depth + 1)]
        self.channels = channels
        self.inc = DoubleConv(in_channels, channels[0])
        self.pool = nn.MaxPool2d(2)
        self.down = nn.ModuleList(DoubleConv(channels[i - 1], channels[i]) for i in range(1, depth + 1))
        self.se = SEBlock(channels[-1], se_reduction) if se else nn.Identity()
        self.up = nn.ModuleList(UpBlock(channels[i], channels[i - 1], upsample) for i in range(depth, 0, -1))
        self.head = nn.Conv2d(channels[0], num_classes, kernel_size=1)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError that says what to do when ``x`` cannot go through the network."""
        if x.ndim != 4:
            raise ValueError(f"UNet expects a batch (N, C, H, W); got a tensor of shape {tuple(x.shape)}. "
                             f"For one image use x.unsqueeze(0).")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"UNet was built for {self.in_channels} input channels; got {x.shape[1]} "
                             f"(shape {tuple(x.shape)}). Is the channel axis second (N, C, H, W)?")
        h, w = x.shape[-2:]
        k = 2 ** self.depth
        if h % k or w % k:
            raise ValueError(f"UNet(depth={self.depth}) halves the image {self.depth} times, so H and W must be "
                             f"divisible by 2**{self.depth} = {k}; got {h}x{w}. Resize, crop or pad to e.g. "
                             f"{max(k, h // k * k)}x{max(k, w // k * k)}, or use a smaller depth.")

    def forward(self, x: torch.Tensor, trace: list | None = None) -> torch.Tensor:
        """Scores of shape (N, num_classes, H, W).

        trace: if a list is given, (name, shape) of every level's output is appended to it, e.g.
        ``("enc0", (1, 32, 64, 64))``, so the U can be printed level by level.
        """
        self.check_input(x)
        log = (lambda name, t: trace.append((name, tuple(t.shape)))) if trace is not None else (lambda *a: None)
        log("input", x)
        skips = [self.inc(x)]
        log("enc0", skips[0])
        for i, block in enumerate(self.down, start=1):
            skips.append(block(self.pool(skips[-1])))
            log(f"enc{i}" if i < self.depth else f"bottleneck (enc{i})", skips[-1])
        y = self.se(skips.pop())
        for i, block in zip(range(self.depth - 1, -1, -1), self.up):
            y = block(y, skips.pop())
            log(f"dec{i}", y)
        y = self.head(y)
        log("head", y)
        return y


# --------------------------------------------------------------------------------------------
# DeepLab's blocks (Chen et al.): atrous convolution, depth-wise separable convolution, ASPP.
# --------------------------------------------------------------------------------------------
def _check_positive(block: str, **values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{block} needs {name} to be a positive integer; got {value!r}.")


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv2d (no bias) -> BatchNorm2d -> ReLU, padded so that stride 1 keeps the size.

    (N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride)) for an odd ``kernel_size``.
    The padding is ``dilation * (kernel_size // 2)``: an atrous (dilated) kernel covers
    ``kernel_size + (kernel_size - 1) * (dilation - 1)`` pixels per side, with the same weights.
    ``groups=in_channels`` makes it depth-wise (one filter per input channel).
    Parameters: ``kernel_size**2 * (in_channels // groups) * out_channels + 2 * out_channels``.
    """
    _check_positive("conv_bn_relu", in_channels=in_channels, out_channels=out_channels,
                    kernel_size=kernel_size, stride=stride, dilation=dilation, groups=groups)
    if kernel_size % 2 == 0:
        raise ValueError(f"conv_bn_relu pads by kernel_size // 2, which only keeps the size for an odd kernel; "
                         f"got kernel_size={kernel_size}. Use 1, 3, 5, ...")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}.")
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=dilation * (kernel_size // 2),
                  dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DepthwiseSeparableConv(nn.Sequential):
    """A k x k convolution split in two (MobileNet, Xception, DeepLab v3+), each step + BN + ReLU.

    1. ``depthwise``: one k x k filter per input channel (``groups=C_in``), optionally strided or atrous;
    2. ``pointwise``: a 1x1 convolution that mixes the channels.

    (N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride)).
    Parameters: ``k*k*C_in + C_in*C_out`` weights (a plain k x k conv has ``k*k*C_in*C_out``) plus
    ``2*C_in + 2*C_out`` for the two batch norms.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1) -> None:
        super().__init__()
        self.add_module("depthwise", conv_bn_relu(in_channels, in_channels, kernel_size, stride, dilation,
                                                  groups=in_channels))
        self.add_module("pointwise", conv_bn_relu(in_channels, out_channels, 1))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling, as in DeepLab v3 (Chen et al. 2017) and torchvision.

    Five parallel branches on the same map, each ending with ``out_channels`` channels:
    a 1x1 conv, one 3x3 atrous conv per rate in ``rates``, and image pooling (global average ->
    1x1 conv -> broadcast back to H x W); concatenated and mixed by a 1x1 conv (+ dropout).
    Every conv is followed by batch norm and ReLU.

    (N, in_channels, H, W) -> (N, out_channels, H, W). The default rates (6, 12, 18) are the paper's
    for a map at 1/16 of the input; on a small map a tap that falls outside it multiplies zero padding,
    so keep the rates below the map's size. Training needs batches of at least 2 (the pooled branch's
    batch norm sees one value per image). With the same settings it has exactly the parameters of
    ``torchvision.models.segmentation.deeplabv3.ASPP``.
    """

    def __init__(self, in_channels: int, out_channels: int = 256, rates: Sequence[int] = (6, 12, 18),
                 dropout: float = 0.5) -> None:
        super().__init__()
        rates = tuple(rates)
        if not rates:
            raise ValueError("ASPP needs at least one atrous rate, e.g. rates=(6, 12, 18).")
        _check_positive("ASPP", in_channels=in_channels, out_channels=out_channels,
                        **{f"rates[{i}]": r for i, r in enumerate(rates)})
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"ASPP's dropout is a probability in [0, 1); got {dropout!r}.")
        self.rates = rates
        self.branches = nn.ModuleList([conv_bn_relu(in_channels, out_channels, 1)] +
                                      [conv_bn_relu(in_channels, out_channels, 3, dilation=r) for r in rates])
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(in_channels, out_channels, 1))
        self.project = nn.Sequential(conv_bn_relu((len(rates) + 2) * out_channels, out_channels, 1),
                                     nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        pooled = self.image_pool(x)                                        # (N, C_out, 1, 1)
        outs.append(F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(outs, dim=1))
