"""Fast ResNet-34 ("ResNetSE34L", Chung et al. 2020) as used by Lepage & Dehak (paper.md section 3.1).

Input: normalised log-mel features (B, n_mels, T). Output: embeddings (B, embedding_dim), not normalised.
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcitation(nn.Module):
    """Channel attention: global average pool -> C/r -> ReLU -> C -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean(dim=(2, 3)))  # (B, C)
        return x * gate[:, :, None, None]


class SEBasicBlock(nn.Module):
    """Basic residual block with SE; ReLU before BN after the first conv, as in the reference code."""

    def __init__(self, in_channels: int, channels: int, stride: int | tuple[int, int] = 1, reduction: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcitation(channels, reduction)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.relu(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class SelfAttentivePooling(nn.Module):
    """Attention over time: w_t = softmax(v^T tanh(W h_t)); output sum_t w_t h_t."""

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Linear(channels, channels)
        self.attention = nn.Parameter(torch.empty(channels, 1))
        nn.init.xavier_normal_(self.attention)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # h: (B, T, C)
        scores = torch.tanh(self.linear(h)) @ self.attention  # (B, T, 1)
        weights = torch.softmax(scores.float(), dim=1).to(h.dtype)  # (B, T, 1)
        return (h * weights).sum(dim=1)  # (B, C)


class FastResNet34(nn.Module):
    """Stem 7x7 stride (2,1); stages 3-4-6-3 SE blocks with 16-32-64-128 channels, strides 1-2-2-1;
    mean over frequency; self-attentive pooling over time; linear 128 -> embedding_dim."""

    def __init__(self, n_mels: int = 40, embedding_dim: int = 512, channels=(16, 32, 64, 128), layers=(3, 4, 6, 3)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], 7, stride=(2, 1), padding=3, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        strides = (1, 2, 2, 1)
        stages, in_channels = [], channels[0]
        for width, depth, stride in zip(channels, layers, strides):
            blocks = [SEBasicBlock(in_channels, width, stride)]
            blocks += [SEBasicBlock(width, width) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pooling = SelfAttentivePooling(channels[-1])
        self.fc = nn.Linear(channels[-1], embedding_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # features: (B, F, T)
        x = self.stages(self.stem(features.unsqueeze(1)))  # (B, C, F', T')
        h = x.mean(dim=2).transpose(1, 2)  # (B, T', C)
        return self.fc(self.pooling(h))  # (B, D)
