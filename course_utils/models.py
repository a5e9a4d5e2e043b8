"""Network building blocks and models reused across the notebooks.

Each block is first written out in a notebook (the lecture's steps), then kept here in tidy form.
"""
from __future__ import annotations

import torch
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
