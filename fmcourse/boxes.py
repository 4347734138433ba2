"""Boxes for object detection: overlap (IoU), non-maximum suppression, and mean average precision.

    iou(boxes_a, boxes_b)                      # (N, 4), (M, 4) corner boxes -> (N, M) intersection over union
    keep = nms(boxes, scores, iou_threshold=0.5)          # indices of the boxes kept, best score first
    result = mean_average_precision(predictions, truths, num_classes=4)   # mAP@0.5 over images and classes

A box is ``(x1, y1, x2, y2)`` in pixels, the top-left and bottom-right corners, with ``x1 <= x2`` and
``y1 <= y2`` (y grows downwards, as in an image). Its area is ``(x2 - x1) (y2 - y1)``.

IoU of two boxes is the area they share over the area they cover together: 1 for the same box, 0 for
boxes that do not touch. A detection *matches* a true box when their IoU is at least a threshold (0.5
in PASCAL VOC, "mAP@0.5").

Average precision (AP) of one class sorts every detection of that class over all images by score,
walks down the list, and records precision and recall after each one. AP is the area under the
precision-recall curve after each precision is replaced by the best precision at that recall or
beyond (the "all-point interpolation" of PASCAL VOC 2010 on); mAP is the mean of AP over classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


def check_boxes(boxes: torch.Tensor, name: str = "boxes") -> torch.Tensor:
    """``boxes`` as a float ``(N, 4)`` tensor of corners, after checking that each has ``x1 <= x2`` and
    ``y1 <= y2``; raises TypeError/ValueError naming ``name`` otherwise."""
    if not isinstance(boxes, torch.Tensor):
        raise TypeError(f"{name} must be a (N, 4) tensor of (x1, y1, x2, y2) corners, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.size(-1) != 4:
        raise ValueError(f"{name} must have shape (N, 4): (x1, y1, x2, y2) per box, got {tuple(boxes.shape)}")
    if boxes.is_complex() or boxes.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got {boxes.dtype}")
    boxes = boxes.float() if not boxes.is_floating_point() else boxes
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{name} contain NaN or infinite coordinates")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{name}[{i}] = {boxes[i].tolist()} has x2 < x1 or y2 < y1: boxes are "
                         "(x1, y1, x2, y2) with the top-left corner first")
    return boxes


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas ``(N,)`` of boxes ``(N, 4)``."""
    boxes = check_boxes(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box in ``boxes_a`` ``(N, 4)`` with every box in ``boxes_b``
    ``(M, 4)``: ``(N, M)`` in [0, 1]. Two empty boxes (area 0) have IoU 0."""
    a, b = check_boxes(boxes_a, "boxes_a"), check_boxes(boxes_b, "boxes_b")
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)  # (N, M)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def encode_boxes(boxes: torch.Tensor, image_size: int, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid cell responsible for each box and the box's code in that cell (as YOLO v1).

    The image is cut into ``grid x grid`` cells of ``s = image_size / grid`` pixels; the cell that holds
    a box's centre ``(cx, cy)`` predicts it. Returns ``cells`` ``(N,)``, the index ``row * grid + column``
    of that cell, and ``codes`` ``(N, 4)``: ``(cx / s - column, cy / s - row, sqrt(w / image_size),
    sqrt(h / image_size))``: the centre's place inside its cell (in [0, 1)) and the square roots of
    width and height (so an error of a pixel counts more on a small box than on a large one).
    """
    boxes = check_boxes(boxes)
    if not isinstance(grid, int) or grid < 1 or not isinstance(image_size, int) or image_size % grid:
        raise ValueError(f"grid must be a positive int dividing image_size {image_size}, got {grid!r}")
    s = image_size / grid
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2): x, y
    if ((centre < 0) | (centre >= image_size)).any():
        raise ValueError(f"box centres must lie inside the image [0, {image_size})")
    column_row = (centre / s).floor()
    cells = (column_row[:, 1] * grid + column_row[:, 0]).long()
    size = (boxes[:, 2:] - boxes[:, :2]) / image_size  # (N, 2): w, h
    return cells, torch.cat([centre / s - column_row, size.sqrt()], 1)


def decode_boxes(codes: torch.Tensor, image_size: int) -> torch.Tensor:
    """Boxes ``(..., G, G, 4)`` in pixels from the codes ``(..., G, G, 4)`` of every cell of a ``G x G``
    grid (the inverse of ``encode_boxes``; negative width codes are read as 0)."""
    if codes.dim() < 3 or codes.size(-1) != 4 or codes.size(-2) != codes.size(-3):
        raise ValueError(f"codes must have shape (..., G, G, 4), got {tuple(codes.shape)}")
    grid = codes.size(-2)
    s = image_size / grid
    rows, columns = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    cx = (codes[..., 0] + columns.to(codes)) * s
    cy = (codes[..., 1] + rows.to(codes)) * s
    w, h = codes[..., 2].clamp(min=0) ** 2 * image_size, codes[..., 3].clamp(min=0) ** 2 * image_size
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.5,
        labels: torch.Tensor | None = None) -> torch.Tensor:
    """Non-maximum suppression: the indices ``(K,)`` of the boxes kept, highest score first.

    Take the best-scoring box, drop every remaining box whose IoU with it is *above* ``iou_threshold``
    (in [0, 1]), repeat with the best box left. With ``labels`` ``(N,)`` only boxes of the same label
    suppress each other (one NMS per class).
    """
    boxes = check_boxes(boxes)
    if not isinstance(iou_threshold, (int, float)) or not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be a number in [0, 1], got {iou_threshold!r}")
    if not isinstance(scores, torch.Tensor) or scores.shape != (len(boxes),):
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"scores must be a ({len(boxes)},) tensor, one per box, got {got}")
    if labels is not None and (not isinstance(labels, torch.Tensor) or labels.shape != (len(boxes),)):
        raise ValueError(f"labels must be a ({len(boxes)},) tensor, one per box")
    order = scores.argsort(descending=True, stable=True)
    overlaps = iou(boxes, boxes)
    if labels is not None:
        overlaps = torch.where(labels[:, None] == labels[None, :], overlaps, torch.zeros_like(overlaps))
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def match_detections(boxes: torch.Tensor, scores: torch.Tensor, true_boxes: torch.Tensor,
                     iou_threshold: float = 0.5) -> torch.Tensor:
    """Which detections of one class in one image are true positives: ``(N,)`` bool.

    Detections are taken best score first; each takes the unclaimed true box it overlaps most, if that
    IoU is at least ``iou_threshold``. A second detection of an already claimed box is a false positive.
    """
    hits = torch.zeros(len(boxes), dtype=torch.bool)
    if len(boxes) == 0 or len(true_boxes) == 0:
        return hits
    overlaps = iou(boxes, true_boxes)  # (N, T)
    claimed = torch.zeros(len(true_boxes), dtype=torch.bool)
    for i in scores.argsort(descending=True, stable=True).tolist():
        free = overlaps[i].masked_fill(claimed, -1.0)
        best = int(free.argmax())
        if free[best] >= iou_threshold:
            hits[i], claimed[best] = True, True
    return hits


def average_precision(scores: torch.Tensor, is_hit: torch.Tensor, num_true: int, interpolate: bool = True) -> float:
    """Average precision of one class from all its detections over a data set.

    ``scores`` ``(N,)``: confidence of each detection; ``is_hit`` ``(N,)`` bool: whether it matched a true
    box; ``num_true``: the number of true boxes of the class (misses included). ``interpolate``: replace
    each precision by the best precision at equal or higher recall (PASCAL VOC); without it, AP is
    sum over hits of (precision at that hit) / num_true, which is scikit-learn's
    ``average_precision_score`` when every true box is found. A class without true boxes has AP 0.
    """
    if num_true < 0:
        raise ValueError(f"num_true must be >= 0, got {num_true}")
    if int(is_hit.sum()) > num_true:
        raise ValueError(f"{int(is_hit.sum())} hits but only {num_true} true boxes: a true box is matched once")
    if num_true == 0 or len(scores) == 0:
        return 0.0
    order = scores.argsort(descending=True, stable=True)
    hits = is_hit[order].float()
    true_positives = hits.cumsum(0)
    precision = true_positives / torch.arange(1, len(hits) + 1)
    recall = true_positives / num_true
    if interpolate:  # running maximum from the right: the best precision at this recall or beyond
        precision = precision.flip(0).cummax(0).values.flip(0)
    recall_steps = torch.diff(recall, prepend=torch.zeros(1))
    return float((precision * recall_steps).sum())


@dataclass(frozen=True)
class Detections:
    """What a detector found in one image: ``boxes`` ``(K, 4)``, ``scores`` ``(K,)``, ``labels`` ``(K,)``."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class MAPResult:
    """``mean``: mAP over the classes; ``per_class``: AP of each class; ``curves``: (recall, precision)
    of each class, as lists, for plotting."""

    mean: float
    per_class: list[float]
    curves: list[tuple[list[float], list[float]]]


def precision_recall(scores: torch.Tensor, is_hit: torch.Tensor, num_true: int) -> tuple[list[float], list[float]]:
    """Recall and precision after each detection, best score first (one class)."""
    order = scores.argsort(descending=True, stable=True)
    tp = is_hit[order].float().cumsum(0)
    return (tp / max(num_true, 1)).tolist(), (tp / torch.arange(1, len(tp) + 1)).tolist()


def mean_average_precision(predictions: Sequence[Detections], truths: Sequence[tuple[torch.Tensor, torch.Tensor]],
                           num_classes: int, iou_threshold: float = 0.5) -> MAPResult:
    """mAP of detections over a data set.

    ``predictions``: one ``Detections`` per image; ``truths``: one ``(boxes (T, 4), labels (T,))`` per
    image. Detections are matched to true boxes of their own class in their own image
    (``match_detections``); then AP is computed per class over all images and averaged over classes.
    """
    if len(predictions) != len(truths):
        raise ValueError(f"{len(predictions)} predictions for {len(truths)} images: give one per image")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    scores = [[] for _ in range(num_classes)]
    hits = [[] for _ in range(num_classes)]
    counts = [0] * num_classes
    for found, (true_boxes, true_labels) in zip(predictions, truths):
        for c in range(num_classes):
            mine, theirs = found.labels == c, true_labels == c
            counts[c] += int(theirs.sum())
            scores[c].append(found.scores[mine])
            hits[c].append(match_detections(found.boxes[mine], found.scores[mine], true_boxes[theirs], iou_threshold))
    per_class, curves = [], []
    for c in range(num_classes):
        s, h = torch.cat(scores[c]), torch.cat(hits[c])
        per_class.append(average_precision(s, h, counts[c]))
        curves.append(precision_recall(s, h, counts[c]))
    return MAPResult(sum(per_class) / num_classes, per_class, curves)
