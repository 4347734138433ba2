"""A synthetic world of shapes: small RGB images, each with one shape and a caption that describes it.

    scenes = make_scenes(1000, seed=0)       # images (1000, 3, 16, 16) in [0, 1], attributes, captions
    scenes.captions[0]                       # 'a large red circle at the top right'
    ids, is_token = encode_captions(scenes.captions)   # (1000, 8) word ids, (1000, 8) bool

    busy = make_detection_scenes(500, seed=0)   # images (500, 3, 32, 32) with 1 to 3 shapes each
    busy.boxes[0], busy.labels[0]               # (K, 4) exact boxes (x1, y1, x2, y2) in pixels, (K,) shapes

Every scene draws one shape (``SHAPES``) in one colour (``COLOURS``), at one size (``SIZES``), in
one quadrant (``POSITIONS``) on a dark, slightly noisy background. Where in its quadrant the shape
sits and the shade of its colour vary, and the noise makes every image different. Because the
attributes are known, the caption is exactly right, and a model's answers can be checked against
the truth.

The detection scenes (``make_detection_scenes``) put several shapes in one larger image, each of the
sizes of the 16-pixel world, apart from each other, with the exact box around each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (0.9, 0.15, 0.1), "green": (0.15, 0.8, 0.2), "blue": (0.2, 0.35, 1.0),
           "yellow": (0.95, 0.85, 0.1), "purple": (0.65, 0.2, 0.85)}
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "bottom left", "bottom right")
ATTRIBUTES = {"shape": SHAPES, "colour": tuple(COLOURS), "size": SIZES, "position": POSITIONS}

PAD = "<pad>"
VOCAB = (PAD, "a", "at", "the", *SIZES, *COLOURS, *SHAPES, "top", "bottom", "left", "right")

# How far a shape reaches from its centre, as a fraction of the image size (for 16 pixels: 2 and 3
# pixels); a large shape still fits inside its quadrant.
RADIUS = {"small": 0.15, "large": 0.24}


def caption(shape: str, colour: str, size: str, position: str) -> str:
    """The caption of a scene: ``'a small blue triangle at the bottom right'``."""
    for name, value in (("shape", shape), ("colour", colour), ("size", size), ("position", position)):
        if value not in ATTRIBUTES[name]:
            raise ValueError(f"unknown {name} {value!r}; choose one of {ATTRIBUTES[name]}")
    return f"a {size} {colour} {shape} at the {position}"


@dataclass(frozen=True)
class Scenes:
    """A batch of scenes: ``images`` (N, 3, H, W) float32 in [0, 1] and the attribute indices (N,)
    int64 of each, into ``SHAPES``, ``COLOURS``, ``SIZES`` and ``POSITIONS``."""

    images: torch.Tensor
    shape: torch.Tensor
    colour: torch.Tensor
    size: torch.Tensor
    position: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index) -> Scenes:
        """The scenes selected by ``index`` (a slice, an index tensor or a bool mask), as ``Scenes``."""
        return Scenes(*(getattr(self, name)[index] for name in ("images", *ATTRIBUTES)))

    def attribute(self, name: str) -> torch.Tensor:
        """The (N,) indices of one attribute: ``"shape"``, ``"colour"``, ``"size"`` or ``"position"``."""
        if name not in ATTRIBUTES:
            raise ValueError(f"unknown attribute {name!r}; choose one of {tuple(ATTRIBUTES)}")
        return getattr(self, name)

    @property
    def captions(self) -> list[str]:
        colours = tuple(COLOURS)
        return [caption(SHAPES[s], colours[c], SIZES[z], POSITIONS[p])
                for s, c, z, p in zip(*(self.attribute(name).tolist() for name in ATTRIBUTES))]


def _masks(shape: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Where each shape covers a pixel: (N, H, W) bool, from pixel offsets ``dx``, ``dy`` (N, H, W) to
    the shape's centre (y grows downwards) and the half-side ``r`` (N, 1, 1) of its bounding square."""
    ax, ay = dx.abs(), dy.abs()
    circle = dx**2 + dy**2 <= r**2
    square = (ax <= r) & (ay <= r)
    # apex at the top (dy = -r), base at the bottom (dy = +r): half-width grows from 0 to r
    triangle = (ay <= r) & (ax <= (dy + r) / 2)
    arm = r / 4
    cross = ((ax <= arm) & (ay <= r)) | ((ay <= arm) & (ax <= r))
    options = torch.stack([circle, square, triangle, cross])  # in the order of SHAPES
    return options.gather(0, shape.view(1, -1, 1, 1).expand(1, *dx.shape)).squeeze(0)


def make_scenes(n: int, seed: int = 0, image_size: int = 16, noise: float = 0.03) -> Scenes:
    """``n`` random scenes, the same for the same ``seed``; attributes drawn uniformly.

    ``image_size``: height and width in pixels (even, at least 16); ``noise``: the standard deviation of
    the Gaussian noise added to every pixel (then clipped to [0, 1]).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(image_size, int) or image_size < 16 or image_size % 2:
        # below 16 pixels a small circle and a small square become the same block of pixels
        raise ValueError(f"image_size must be an even int of at least 16 pixels, got {image_size!r}")
    if not 0 <= noise <= 0.5:
        raise ValueError(f"noise must be in [0, 0.5], got {noise}")
    g = torch.Generator().manual_seed(seed)
    shape, colour, size, position = (torch.randint(len(v), (n,), generator=g) for v in ATTRIBUTES.values())

    quadrant = image_size // 2
    # The centre sits on a pixel centre and the radius is a whole number of pixels (the reach) plus
    # 0.45: then every circle is round, never a square block or a blob with single pixels sticking out.
    reach = torch.tensor([float(int(RADIUS[s] * image_size)) for s in SIZES])[size]  # (n,)
    radius = reach + 0.45
    column, row = position % 2, position // 2  # POSITIONS: top/bottom is the row, left/right the column
    cx, cy = (reach + ((quadrant - 2 * reach) * torch.rand(n, generator=g)).floor() + side * quadrant + 0.5
              for side in (column, row))
    pixels = torch.arange(image_size) + 0.5  # pixel centres
    dx = pixels.view(1, 1, -1) - cx.view(-1, 1, 1)  # (n, 1, W)
    dy = pixels.view(1, -1, 1) - cy.view(-1, 1, 1)  # (n, H, 1)
    mask = _masks(shape, *torch.broadcast_tensors(dx, dy), radius.view(-1, 1, 1))  # (n, H, W)

    palette = torch.tensor(list(COLOURS.values()))  # (colours, 3)
    shade = (palette[colour] + 0.08 * (2 * torch.rand(n, 3, generator=g) - 1)).clamp(0, 1)  # (n, 3)
    background = 0.1
    images = torch.where(mask[:, None], shade[:, :, None, None], torch.tensor(background))
    images = images + noise * torch.randn(images.shape, generator=g)
    return Scenes(images.clamp(0, 1).float(), shape, colour, size, position)


def encode_captions(captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Word ids of each caption, padded to the longest: ``ids`` (N, T) int64 and ``is_token`` (N, T)
    bool (False at padding). Words are split on spaces and must be in ``VOCAB``."""
    if isinstance(captions, str) or len(captions) == 0:
        raise TypeError("captions must be a non-empty list of strings (for one caption, pass [caption])")
    index = {word: i for i, word in enumerate(VOCAB)}
    rows = [text.split() for text in captions]
    for text, words in zip(captions, rows):
        unknown = [word for word in words if word not in index or word == PAD]
        if unknown or not words:
            raise ValueError(f"caption {text!r} has words outside the shapes world's vocabulary {unknown}; "
                             f"known words: {', '.join(VOCAB[1:])}")
    length = max(map(len, rows))
    ids = torch.tensor([[index[w] for w in words] + [index[PAD]] * (length - len(words)) for words in rows])
    return ids, ids != index[PAD]


@dataclass(frozen=True)
class DetectionScenes:
    """Scenes with several shapes: ``images`` (N, 3, S, S) float32 in [0, 1] and, per image, ``boxes``
    (K, 4) float32 pixel corners (x1, y1, x2, y2) of the drawn pixels, ``labels`` (K,) int64 into
    ``SHAPES``, ``colours`` (K,) into ``COLOURS`` and ``sizes`` (K,) into ``SIZES``."""

    images: torch.Tensor
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    colours: list[torch.Tensor]
    sizes: list[torch.Tensor]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: slice) -> DetectionScenes:
        """The scenes in a slice, as ``DetectionScenes``."""
        if not isinstance(index, slice):
            raise TypeError(f"index detection scenes with a slice, got {type(index).__name__}")
        return DetectionScenes(self.images[index], self.boxes[index], self.labels[index], self.colours[index],
                               self.sizes[index])


def make_detection_scenes(n: int, seed: int = 0, image_size: int = 32, max_objects: int = 3,
                          min_distance: float = 12.0, noise: float = 0.03) -> DetectionScenes:
    """``n`` scenes of 1 to ``max_objects`` shapes each (the number uniform), the same for the same ``seed``.

    Each shape, colour and size is drawn uniformly; a shape has the pixel size of the 16-pixel world
    (a small one is 5 pixels across, a large one 7). Centres sit on pixel centres at least
    ``min_distance`` pixels apart, and boxes keep a gap of at least one pixel, so no two shapes touch
    and every box is exactly the bounding box of its shape's pixels.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an int of at least 16 pixels, got {image_size!r}")
    if not isinstance(max_objects, int) or max_objects < 1:
        raise ValueError(f"max_objects must be a positive int, got {max_objects!r}")
    if not 0 <= noise <= 0.5:
        raise ValueError(f"noise must be in [0, 0.5], got {noise}")
    g = torch.Generator().manual_seed(seed)
    reaches = [int(RADIUS[s] * 16) for s in SIZES]  # 2 and 3 pixels from the centre
    palette = torch.tensor(list(COLOURS.values()))
    pixels = torch.arange(image_size) + 0.5
    background = 0.1
    images = torch.full((n, 3, image_size, image_size), background)
    all_boxes, all_labels, all_colours, all_sizes = [], [], [], []
    for i in range(n):
        count = int(torch.randint(1, max_objects + 1, (1,), generator=g))
        boxes, labels, colours, sizes = [], [], [], []
        tries = 0
        while len(boxes) < count:
            tries += 1
            if tries > 1000:
                raise ValueError(f"cannot place {count} shapes {min_distance} pixels apart in {image_size} pixels: "
                                 "lower max_objects or min_distance")
            shape, colour = int(torch.randint(len(SHAPES), (1,), generator=g)), int(torch.randint(len(COLOURS), (1,), generator=g))
            size = int(torch.randint(len(SIZES), (1,), generator=g))
            reach = reaches[size]
            x, y = (int(v) for v in torch.randint(reach, image_size - reach, (2,), generator=g))
            box = torch.tensor([x - reach, y - reach, x + reach + 1, y + reach + 1], dtype=torch.float32)
            apart = all(((x + 0.5 - (b[0] + b[2]) / 2) ** 2 + (y + 0.5 - (b[1] + b[3]) / 2) ** 2) ** 0.5 >= min_distance
                        and (box[0] > b[2] or b[0] > box[2] or box[1] > b[3] or b[1] > box[3]) for b in boxes)
            if not apart:
                continue
            dx = (pixels - x - 0.5).view(1, 1, -1).expand(1, image_size, image_size)
            dy = (pixels - y - 0.5).view(1, -1, 1).expand(1, image_size, image_size)
            mask = _masks(torch.tensor([shape]), dx, dy, torch.tensor([[[reach + 0.45]]]))[0]  # (S, S)
            shade = (palette[colour] + 0.08 * (2 * torch.rand(3, generator=g) - 1)).clamp(0, 1)
            images[i] = torch.where(mask, shade[:, None, None], images[i])
            boxes.append(box)
            labels.append(shape)
            colours.append(colour)
            sizes.append(size)
        all_boxes.append(torch.stack(boxes))
        all_labels.append(torch.tensor(labels))
        all_colours.append(torch.tensor(colours))
        all_sizes.append(torch.tensor(sizes))
    images = (images + noise * torch.randn(images.shape, generator=g)).clamp(0, 1)
    return DetectionScenes(images.float(), all_boxes, all_labels, all_colours, all_sizes)
