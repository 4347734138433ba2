"""Data augmentations for batches of small images, in torch only: they run wherever the images are.

    augment = Augment(crop_scale=(0.6, 1.0), max_rotation=15, noise_std=0.05)
    g = torch.Generator().manual_seed(0)
    view1, view2 = augment(images, g), augment(images, g)     # images (B, C, H, W) -> two random views

``Augment`` draws a rotation, a random crop (zoom and shift), Gaussian blur, noise and an erased
rectangle for every image of a batch, all at once. The deterministic operations it is made of
(``affine``, ``gaussian_blur``, ``erase``) take the amounts per image, so each can be checked
against a reference. The random amounts come from ``generator``, on the generator's own device: a
CPU generator with the same seed gives the same views on a CPU and on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        got = f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"images must be a floating-point tensor of shape (B, C, H, W), got {got}")


def _per_image(name: str, value, batch: int, images: torch.Tensor, trailing: tuple[int, ...] = ()) -> torch.Tensor:
    """``value`` (a number or a tensor of shape (B, *trailing)) as a tensor of that shape on the images' device."""
    value = torch.as_tensor(value, dtype=images.dtype, device=images.device)
    if value.dim() == 0 and not trailing:
        value = value.expand(batch)
    if tuple(value.shape) != (batch, *trailing):
        raise ValueError(f"{name} must be a number or have shape {(batch, *trailing)} (one per image), "
                         f"got {tuple(value.shape)}")
    return value


def affine(images: torch.Tensor, angle=0.0, zoom=1.0, shift=(0.0, 0.0)) -> torch.Tensor:
    """Rotate each image by ``angle`` degrees (counter-clockwise as displayed) about its centre,
    enlarge it by ``zoom`` (> 1 zooms in) and move its content by ``shift`` = (right, down) pixels.

    ``images``: (B, C, H, W). ``angle``, ``zoom``: numbers or (B,); ``shift``: a pair or (B, 2).
    Bilinear interpolation; pixels that come from outside the image are 0. Returns (B, C, H, W).
    """
    _check_images(images)
    B, _, H, W = images.shape
    angle = _per_image("angle", angle, B, images) * (math.pi / 180)
    zoom = _per_image("zoom", zoom, B, images)
    if not (zoom > 0).all():
        raise ValueError(f"zoom must be > 0, got {zoom.min().item()}")
    shift = torch.as_tensor(shift, dtype=images.dtype, device=images.device)
    shift = _per_image("shift", shift.expand(B, 2) if shift.shape == (2,) else shift, B, images, (2,))
    # theta maps each output pixel (x, y in [-1, 1], y down) back to where it samples the input.
    # Counter-clockwise on screen is clockwise in these y-down coordinates, hence the signs.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    move = shift * torch.tensor([2 / W, 2 / H], dtype=images.dtype, device=images.device)  # pixels -> [-1, 1] units
    tx = -(cos * move[:, 0] - sin * move[:, 1])
    ty = -(sin * move[:, 0] + cos * move[:, 1])
    theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_blur(images: torch.Tensor, sigma, radius: int | None = None) -> torch.Tensor:
    """Blur each image with a Gaussian of standard deviation ``sigma`` pixels (a number or (B,); 0 =
    unchanged), truncated at ``radius`` pixels (default ``ceil(2 * max sigma)``), reflecting at the
    borders. Separable: one pass along the rows, one along the columns. Returns (B, C, H, W)."""
    _check_images(images)
    B, C, H, W = images.shape
    sigma = _per_image("sigma", sigma, B, images)
    if not (sigma >= 0).all():
        raise ValueError(f"sigma must be >= 0, got {sigma.min().item()}")
    radius = max(1, math.ceil(2 * sigma.max().item())) if radius is None else radius
    if not 0 < radius < min(H, W):
        raise ValueError(f"the blur radius must be in [1, {min(H, W) - 1}] for {H}x{W} images, got {radius}")
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    weights = torch.exp(-0.5 * (offsets / sigma.clamp(min=1e-6)[:, None]) ** 2)  # (B, 2r + 1)
    weights = weights / weights.sum(1, keepdim=True)
    kernel = weights.repeat_interleave(C, 0)[:, None, None, :]  # (B*C, 1, 1, 2r + 1): one per channel
    x = F.pad(images.reshape(1, B * C, H, W), (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel, groups=B * C)  # along the rows
    x = F.conv2d(x, kernel.transpose(-1, -2), groups=B * C)  # along the columns
    return x.view(B, C, H, W)


def erase(images: torch.Tensor, boxes: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """Set a rectangle of each image to ``value``: ``boxes`` (B, 4) int = (top, left, height, width)
    in pixels (a height or width of 0 erases nothing). Returns (B, C, H, W)."""
    _check_images(images)
    B, _, H, W = images.shape
    if not isinstance(boxes, torch.Tensor) or boxes.shape != (B, 4) or boxes.is_floating_point():
        raise ValueError(f"boxes must be an integer tensor of shape ({B}, 4): (top, left, height, width) per image")
    top, left, height, width = boxes.to(images.device).unbind(1)
    rows = torch.arange(H, device=images.device)[None, :, None]
    cols = torch.arange(W, device=images.device)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + height)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + width)[:, None, None]))  # (B, H, W)
    return images.masked_fill(inside[:, None], value)


def _uniform(low: float, high: float, n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """``n`` numbers uniform in [low, high), drawn on the generator's device, returned on ``device``."""
    where = generator.device if generator is not None else device
    return (low + (high - low) * torch.rand(n, generator=generator, device=where)).to(device)


@dataclass(frozen=True)
class Augment:
    """A random view of every image in a batch: rotation, crop, blur, noise, erasing, in that order.

    - ``max_rotation``: rotation by up to this many degrees either way;
    - ``crop_scale``: the fraction of the image's area a random square crop keeps, (low, high); the
      crop is resized back to the full image (a zoom by ``1 / sqrt(fraction)``) at a random place;
    - ``blur_p``, ``blur_sigma``: blur with this probability, sigma uniform in (low, high) pixels;
    - ``noise_std``: Gaussian noise on every pixel;
    - ``erase_p``, ``erase_area``: erase a rectangle covering this fraction of the image;
    - ``clip``: clamp the result to [0, 1] (images in [0, 1] stay there).
    """

    crop_scale: tuple[float, float] = (0.6, 1.0)
    max_rotation: float = 15.0
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.2, 1.0)
    noise_std: float = 0.05
    erase_p: float = 0.25
    erase_area: tuple[float, float] = (0.05, 0.2)
    clip: bool = True

    def __post_init__(self):
        for name in ("crop_scale", "erase_area"):
            low, high = getattr(self, name)
            if not 0 < low <= high <= 1:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high <= 1, got {(low, high)}")
        for name in ("blur_p", "erase_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, in [0, 1]; got {getattr(self, name)}")
        if not 0 <= self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must be (low, high) with 0 <= low <= high, got {self.blur_sigma}")
        if self.max_rotation < 0 or self.noise_std < 0:
            raise ValueError(f"max_rotation and noise_std must be >= 0, got {self.max_rotation} and {self.noise_std}")

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """images: (B, C, H, W) float -> a random view of each, same shape, dtype and device."""
        _check_images(images)
        B, C, H, W = images.shape
        device = images.device

        def uniform(low: float, high: float, n: int = B) -> torch.Tensor:
            return _uniform(low, high, n, generator, device)

        # Rotation and crop in one resampling: turn the image about its centre, then cut a square of
        # side c (a fraction of the image) anywhere inside the frame, its centre up to (1 - c) / 2 of
        # the image off the middle each way, and enlarge it back to the full size.
        side = uniform(*self.crop_scale).sqrt()
        offset = (uniform(-1, 1, 2 * B).view(B, 2) * (1 - side[:, None]) / 2) * torch.tensor([W, H], device=device)
        angle = uniform(-self.max_rotation, self.max_rotation)
        out = affine(images, angle, 1 / side, -offset / side[:, None])

        blurred = uniform(0, 1) < self.blur_p
        if self.blur_sigma[1] > 0 and blurred.any():
            sigma = uniform(*self.blur_sigma) * blurred
            out = gaussian_blur(out, sigma, radius=max(1, min(math.ceil(2 * self.blur_sigma[1]), min(H, W) - 1)))
        if self.noise_std > 0:
            where = generator.device if generator is not None else device
            out = out + self.noise_std * torch.randn(out.shape, generator=generator, device=where).to(device)

        area = uniform(*self.erase_area) * (uniform(0, 1) < self.erase_p)  # 0 where nothing is erased
        aspect = uniform(-1, 1).mul(math.log(2)).exp()  # height / width between 1/2 and 2
        height = (area * H * W * aspect).sqrt().round().clamp(0, H).long()
        width = (area * H * W / aspect).sqrt().round().clamp(0, W).long()
        top = (uniform(0, 1) * (H - height + 1)).long()
        left = (uniform(0, 1) * (W - width + 1)).long()
        out = erase(out, torch.stack([top, left, height, width], 1))
        return out.clamp(0, 1) if self.clip else out
