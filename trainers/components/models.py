"""Model factories: a small CNN and an MLP, sized from the :class:`DataBundle`.

Each is ``(bundle, **args) -> nn.Module`` returning logits ``[B, num_classes]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainfix.errors import ConfigError
from trainfix.trainers.components.base import DataBundle


class SmallCNN(nn.Module):
    """``depth`` conv blocks (conv3x3 -> [BN] -> ReLU -> maxpool 2), global average pool, linear head."""

    gradcam_layer = "features"  # the last block's pooled feature map

    def __init__(self, in_channels: int, num_classes: int, width: int, depth: int, dropout: float, batch_norm: bool):
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_channels
        for i in range(depth):
            out = width * (2 ** i)
            layers += [nn.Conv2d(ch, out, 3, padding=1, bias=not batch_norm)]
            layers += [nn.BatchNorm2d(out)] if batch_norm else []
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            ch = out
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).mean(dim=(2, 3))
        return self.head(self.dropout(h))


def cnn(bundle: DataBundle, width: int = 32, depth: int = 2, dropout: float = 0.0, batch_norm: bool = True) -> nn.Module:
    """A small CNN for ``C x H x W`` images; each block halves the resolution (needs H >= 2**depth)."""
    if len(bundle.input_shape) != 3:
        raise ConfigError(
            f"model: cnn needs image inputs (C, H, W), the dataset gives shape {bundle.input_shape}",
            "use model.name: mlp, or a dataset with images (synthetic: set image_size)",
        )
    c, h, _ = bundle.input_shape
    if h < 2 ** depth:
        raise ConfigError(f"model.depth: {depth} pools an image of size {h} below 1 pixel", f"use depth <= {int(math.log2(h))}")
    return SmallCNN(c, bundle.num_classes, width, depth, dropout, batch_norm)


class MLP(nn.Module):
    """Flatten -> (Linear -> ReLU -> Dropout) per hidden size -> Linear."""

    def __init__(self, in_features: int, num_classes: int, hidden: list[int], dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_features
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU(inplace=True)]
            layers += [nn.Dropout(dropout)] if dropout > 0 else []
            prev = h
        layers.append(nn.Linear(prev, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp(bundle: DataBundle, hidden: list[int] | None = None, dropout: float = 0.0) -> nn.Module:
    """A multilayer perceptron on flattened inputs; ``hidden`` defaults to ``[128]``."""
    return MLP(math.prod(bundle.input_shape), bundle.num_classes, list(hidden if hidden is not None else [128]), dropout)
