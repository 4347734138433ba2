"""A small ResNet for image classification, and the class activation map that shows where it looked.

    model = ResNet(num_classes=4, image_size=16, widths=(16, 32), blocks_per_stage=2)
    logits = model(images)                         # images (B, 3, 16, 16) -> (B, 4)
    maps = model.class_activation_map(images)      # (B, 16, 16): evidence for the predicted class per pixel

Layout (He et al., 2016, at toy scale): a 3x3 stem, then stages of residual blocks, each stage after
the first starting with a stride-2 block that halves the image and widens the channels; global
average pooling over the last feature map and one linear layer. ``skip=False`` builds the same network
without shortcuts (a "plain" network), for the comparison that motivated residual connections.

Because the head is linear after an average over positions, the logit of class ``c`` is the average
over positions of ``w_c . f(i, j)``; that per-position sum is the class activation map (Zhou et al.,
2016), upsampled to the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.nn import ResidualBlock, conv_norm


def check_images(images: torch.Tensor, channels: int, size: int) -> None:
    """Refuse anything but a float ``(B, channels, size, size)`` tensor, with a message naming the shape."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"images must be a float tensor (B, {channels}, {size}, {size}), got {got}")
    if images.dim() != 4 or tuple(images.shape[1:]) != (channels, size, size):
        raise ValueError(f"expected images of shape (B, {channels}, {size}, {size}) (channels first), "
                         f"got {tuple(images.shape)}")


class ResNet(nn.Module):
    """Images ``(B, in_channels, image_size, image_size)`` -> logits ``(B, num_classes)``."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 16,
                 widths: tuple[int, ...] = (16, 32), blocks_per_stage: int = 2, skip: bool = True, norm: bool = True):
        super().__init__()
        if image_size % 2 ** (len(widths) - 1):
            raise ValueError(f"image_size {image_size} must be divisible by 2**{len(widths) - 1} (one halving per stage)")
        self.in_channels, self.image_size = in_channels, image_size
        self.stem = nn.Sequential(conv_norm(in_channels, widths[0], norm=norm), nn.ReLU())
        blocks, channels = [], widths[0]
        for stage, width in enumerate(widths):
            for b in range(blocks_per_stage):
                blocks.append(ResidualBlock(channels, width, stride=2 if stage > 0 and b == 0 else 1, skip=skip, norm=norm))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, num_classes)

    @property
    def depth(self) -> int:
        """Layers with weights on the longest path: the stem, two per block, and the head."""
        return 1 + 2 * len(self.blocks) + 1

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The last feature map ``(B, channels, h, w)``."""
        check_images(images, self.in_channels, self.image_size)
        return self.blocks(self.stem(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).mean((2, 3)))

    @torch.no_grad()
    def class_activation_map(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, H, W)``: the evidence for class ``classes[b]`` (default: the predicted class) at each
        position, bilinearly upsampled to the image size. Its mean over positions (before upsampling)
        plus the head's bias is that class's logit."""
        features = self.features(images)  # (B, C, h, w)
        if classes is None:
            classes = self.head(features.mean((2, 3))).argmax(1)
        weights = self.head.weight[classes]  # (B, C)
        maps = torch.einsum("bc,bchw->bhw", weights, features)
        return F.interpolate(maps[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
