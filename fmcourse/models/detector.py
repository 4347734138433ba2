"""A single-stage grid detector in the style of YOLO (Redmon et al., 2016), its targets and its loss.

    model = GridDetector(num_classes=4, image_size=32, grid=4)
    outputs = model(images)                                   # (B, 4, 4, 5 + 4): per cell
    targets = detection_targets(boxes, labels, image_size=32, grid=4)
    loss, parts = detection_loss(outputs, targets)            # parts: objectness, no-object, box, class
    found = detect(model, images, confidence=0.5, iou_threshold=0.5)   # one Detections per image

The image is cut into ``G x G`` cells; the cell that holds a box's centre is *responsible* for it. Each
cell predicts, in one pass: an objectness logit (is a centre here?), the box's code (``encode_boxes``:
centre within the cell, square roots of width and height) and the class logits. A detection's score
is ``P(object) x P(class | object)``; low scores are dropped and non-maximum suppression removes
duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.boxes import Detections, check_boxes, decode_boxes, encode_boxes, nms
from fmcourse.models.resnet import check_images
from fmcourse.nn import ResidualBlock, conv_norm


class GridDetector(nn.Module):
    """Images ``(B, 3, image_size, image_size)`` -> raw outputs ``(B, grid, grid, 5 + num_classes)``:
    objectness logit, box code ``(x, y, sqrt w, sqrt h)`` (x and y through a sigmoid, so inside the
    cell) and class logits for every cell. The backbone is a stem and residual blocks of stride 2
    down to the grid."""

    def __init__(self, num_classes: int = 4, image_size: int = 32, grid: int = 4, width: int = 32):
        super().__init__()
        halvings = (image_size // grid).bit_length() - 1
        if image_size % grid or 2 ** halvings != image_size // grid:
            raise ValueError(f"image_size / grid must be a power of two, got {image_size} / {grid}")
        self.num_classes, self.image_size, self.grid = num_classes, image_size, grid
        self.stem = nn.Sequential(conv_norm(3, width // 2), nn.ReLU())
        blocks, channels = [], width // 2
        for i in range(halvings):
            blocks.append(ResidualBlock(channels, width * 2 ** (i // 2), stride=2))
            channels = width * 2 ** (i // 2)
        blocks.append(ResidualBlock(channels, channels))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels, 5 + num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, 3, self.image_size)
        out = self.head(self.blocks(self.stem(images))).permute(0, 2, 3, 1)  # (B, G, G, 5 + C)
        xy = out[..., 1:3].sigmoid()
        return torch.cat([out[..., :1], xy, out[..., 3:]], -1)


@dataclass(frozen=True)
class DetectionTargets:
    """What each cell should predict: ``has_object`` ``(B, G, G)`` bool, ``codes`` ``(B, G, G, 4)``
    (zero where no object), ``classes`` ``(B, G, G)`` int64 (0 where no object)."""

    has_object: torch.Tensor
    codes: torch.Tensor
    classes: torch.Tensor


def detection_targets(boxes: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], image_size: int,
                      grid: int) -> DetectionTargets:
    """The cell targets of a batch from its true ``boxes`` (one ``(K, 4)`` per image) and ``labels``
    (one ``(K,)``). Two boxes whose centres fall in one cell are an error: the cell can hold one."""
    if len(boxes) != len(labels):
        raise ValueError(f"{len(boxes)} box sets for {len(labels)} label sets: give one of each per image")
    B = len(boxes)
    has_object = torch.zeros(B, grid * grid, dtype=torch.bool)
    codes = torch.zeros(B, grid * grid, 4)
    classes = torch.zeros(B, grid * grid, dtype=torch.long)
    for b, (image_boxes, image_labels) in enumerate(zip(boxes, labels)):
        cells, image_codes = encode_boxes(check_boxes(image_boxes), image_size, grid)
        if len(set(cells.tolist())) < len(cells):
            raise ValueError(f"image {b}: two boxes have their centres in one cell of the {grid}x{grid} grid")
        has_object[b, cells], codes[b, cells], classes[b, cells] = True, image_codes, image_labels
    return DetectionTargets(has_object.view(B, grid, grid), codes.view(B, grid, grid, 4), classes.view(B, grid, grid))


def detection_loss(outputs: torch.Tensor, targets: DetectionTargets, box_weight: float = 5.0,
                   no_object_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """The detector's loss, summed over cells and averaged over images, and its four terms.

    - objectness: binary cross-entropy of the objectness logit where a box's centre lies;
    - no-object: the same where no centre lies, weighted by ``no_object_weight`` (most cells are empty,
      and they would otherwise teach the detector to say "nothing" everywhere);
    - box: squared error of the four box codes, in responsible cells only, weighted by ``box_weight``;
    - class: cross-entropy of the class logits, in responsible cells only.
    """
    if outputs.shape[:-1] != targets.has_object.shape:
        raise ValueError(f"outputs {tuple(outputs.shape)} do not fit targets for cells {tuple(targets.has_object.shape)}")
    B = outputs.size(0)
    obj = targets.has_object
    bce = F.binary_cross_entropy_with_logits(outputs[..., 0], obj.float(), reduction="none")
    parts = {
        "objectness": bce[obj].sum() / B,
        "no-object": no_object_weight * bce[~obj].sum() / B,
        "box": box_weight * ((outputs[..., 1:5] - targets.codes) ** 2)[obj].sum() / B,
        "class": F.cross_entropy(outputs[..., 5:][obj], targets.classes[obj], reduction="sum") / B,
    }
    return sum(parts.values()), {name: float(value.detach()) for name, value in parts.items()}


@torch.no_grad()
def detect(model: GridDetector, images: torch.Tensor, confidence: float = 0.5, iou_threshold: float = 0.5,
           outputs: torch.Tensor | None = None) -> list[Detections]:
    """Detections of every image: cells whose score ``P(object) x max P(class)`` is at least
    ``confidence`` (in [0, 1]), then non-maximum suppression per class at ``iou_threshold``.
    ``outputs``: the model's outputs for ``images`` when already computed."""
    if not 0 <= confidence <= 1:
        raise ValueError(f"confidence must be in [0, 1], got {confidence}")
    if outputs is None:
        outputs = model(images)
    boxes = decode_boxes(outputs[..., 1:5], model.image_size).flatten(1, 2)  # (B, G*G, 4)
    class_p, classes = outputs[..., 5:].softmax(-1).max(-1)
    scores = (outputs[..., 0].sigmoid() * class_p).flatten(1)  # (B, G*G)
    classes = classes.flatten(1)
    found = []
    for b in range(len(outputs)):
        mine = scores[b] >= confidence
        kept_boxes, kept_scores, kept_labels = boxes[b][mine], scores[b][mine], classes[b][mine]
        keep = nms(kept_boxes, kept_scores, iou_threshold, labels=kept_labels)
        found.append(Detections(kept_boxes[keep], kept_scores[keep], kept_labels[keep]))
    return found
