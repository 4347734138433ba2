"""Chapter 08 exercises: IoU of two boxes, non-maximum suppression, a residual block's forward pass,
average precision by hand, and an experiment on the IoU threshold of mAP with the shipped detector."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fmcourse.boxes import iou, nms
from fmcourse.exercises import Exercise, WrongAnswer, as_number, close

# --- 1. IoU of two boxes (code) ----------------------------------------------------------------------

_IOU_CASES = [
    ((0, 0, 2, 2), (1, 1, 3, 3)),        # partial overlap: 1 / 7
    ((0, 0, 4, 4), (1, 1, 2, 3)),        # one inside the other
    ((0, 0, 2, 2), (5, 5, 7, 8)),        # far apart: widths and heights of the overlap both negative
    ((0, 0, 2, 2), (2, 0, 4, 2)),        # touching along an edge
    ((1, 2, 6, 5), (3, 0, 8, 4)),
    ((0, 0, 3, 3), (4, 0, 6, 3)),        # apart in x only
]


def _check_iou(fn) -> str | None:
    for a, b in _IOU_CASES:
        expected = float(iou(torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32)))
        value = as_number(fn(a, b), f"box_iou({a}, {b})")
        if close(value, expected, abs_tol=1e-6):
            continue
        if value > 0 and expected == 0:
            return (f"box_iou({a}, {b}) = {value:.4g}, but these boxes do not overlap: a negative width and a "
                    "negative height of the overlap multiply to a positive area; clamp each at 0 first")
        return f"box_iou({a}, {b}) = {value:.4g}, expected {expected:.4g}"
    return None


def box_iou_solution(a, b):
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))      # the overlap's width, 0 when apart
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _iou_mistake(a, b):
    inter = (min(a[2], b[2]) - max(a[0], b[0])) * (min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


box_iou = Exercise(
    title="IoU of two boxes",
    checker=_check_iou,
    hint="the overlap runs from the larger of the two left edges to the smaller of the two right edges "
         "(the same for top and bottom); when that is negative there is no overlap",
    solution=box_iou_solution,
    mistake=_iou_mistake,
    mistake_message="do not overlap",
)


# --- 2. non-maximum suppression (code) ---------------------------------------------------------------


def _nms_cases():
    g = torch.Generator().manual_seed(0)
    fixed = (torch.tensor([[0.0, 0, 4, 4], [1, 0, 5, 4], [10, 10, 14, 14], [0, 1, 4, 5]]),
             torch.tensor([0.6, 0.9, 0.8, 0.7]), 0.5)
    cases = [fixed]
    for n, threshold in ((12, 0.3), (20, 0.5), (15, 0.7)):
        corner = torch.rand(n, 2, generator=g) * 10
        boxes = torch.cat([corner, corner + 2 + torch.rand(n, 2, generator=g) * 4], 1)
        cases.append((boxes, torch.rand(n, generator=g), threshold))
    return cases


def _check_nms(fn) -> str | None:
    for boxes, scores, threshold in _nms_cases():
        answer = fn(boxes.clone(), scores.clone(), threshold)
        kept = [int(i) for i in (answer.tolist() if isinstance(answer, torch.Tensor) else answer)]
        expected = nms(boxes, scores, threshold).tolist()
        name = f"with {len(boxes)} boxes and threshold {threshold} you kept {kept}"
        if kept == expected:
            continue
        if sorted(kept) == sorted(expected):
            return f"{name}: the right boxes, but list them highest score first"
        in_order = [i for i in range(len(boxes))]
        suppressed, greedy = set(), []
        for i in in_order:
            if i not in suppressed:
                greedy.append(i)
                suppressed |= {j for j in range(len(boxes)) if float(iou(boxes[i:i + 1], boxes[j:j + 1])) > threshold}
        if sorted(kept) == sorted(greedy):
            return f"{name}: you went through the boxes in index order; take them highest score first"
        return f"{name}, expected {expected}"
    return None


def nms_solution(boxes, scores, threshold):
    order = scores.argsort(descending=True).tolist()    # highest score first
    kept = []
    for i in order:
        if all(iou(boxes[i:i + 1], boxes[j:j + 1]).item() <= threshold for j in kept):
            kept.append(i)
    return kept


def _nms_mistake(boxes, scores, threshold):
    kept = []
    for i in range(len(boxes)):                          # index order: the score is ignored
        if all(iou(boxes[i:i + 1], boxes[j:j + 1]).item() <= threshold for j in kept):
            kept.append(i)
    return kept


non_maximum_suppression = Exercise(
    title="non-maximum suppression",
    checker=_check_nms,
    hint="sort the boxes by score, best first; keep a box unless its IoU with a box already kept is above "
         "the threshold (fmcourse.boxes.iou computes the IoU)",
    solution=nms_solution,
    mistake=_nms_mistake,
    mistake_message="index order",
)


# --- 3. a residual block (code) ----------------------------------------------------------------------


def _check_residual(fn) -> str | None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 6, 6, generator=g)
    w1, w2 = torch.randn(4, 4, 3, 3, generator=g) * 0.3, torch.randn(4, 4, 3, 3, generator=g) * 0.3

    def conv1(t):
        return F.conv2d(t, w1, padding=1)

    def conv2(t):
        return F.conv2d(t, w2, padding=1)

    answer = fn(x.clone(), conv1, conv2)
    if not isinstance(answer, torch.Tensor) or answer.shape != x.shape:
        raise WrongAnswer(f"return a tensor of the input's shape {tuple(x.shape)}")
    expected = F.relu(conv2(F.relu(conv1(x))) + x)
    if torch.allclose(answer, expected, atol=1e-5):
        return None
    if torch.allclose(answer, F.relu(conv2(F.relu(conv1(x)))) + x, atol=1e-5):
        return "you added the input after the last ReLU: add it to conv2's output, then apply the ReLU"
    if torch.allclose(answer, F.relu(conv2(F.relu(conv1(x)))), atol=1e-5):
        return "there is no shortcut: the block must add its input x to conv2's output"
    return "the result differs from relu(conv2(relu(conv1(x))) + x)"


def residual_solution(x, conv1, conv2):
    out = conv2(torch.relu(conv1(x)))
    return torch.relu(out + x)                          # the shortcut joins before the last ReLU


residual_block = Exercise(
    title="a residual block",
    checker=_check_residual,
    hint="compute conv2(relu(conv1(x))), add x, then apply the ReLU",
    solution=residual_solution,
    mistake=lambda x, conv1, conv2: torch.relu(conv2(torch.relu(conv1(x)))) + x,
    mistake_message="after the last ReLU",
)


# --- 4. average precision by hand (value) ------------------------------------------------------------
# Three detections of one class, best score first: a miss, then two hits; the data hold two true boxes.

AP_CASE = "miss, hit, hit (two true boxes)"


def _ap_by_hand() -> float:
    from fmcourse.boxes import average_precision
    return average_precision(torch.tensor([0.9, 0.8, 0.7]), torch.tensor([False, True, True]), 2)


def _check_ap(value) -> str | None:
    from fmcourse.exercises import number_problem
    return number_problem(f"your AP for {AP_CASE}", value, _ap_by_hand(), known=[
        ((0.5 + 2 / 3) / 2, "that is the area without interpolation: at recall 1/2 use the best precision at recall "
                            "1/2 or beyond"),
        ((0 + 0.5 + 2 / 3) / 3, "that is the mean precision over every detection: AP weighs precision by the recall "
                                "each hit adds"),
    ])


average_precision_by_hand = Exercise(
    title="average precision by hand",
    checker=_check_ap,
    hint="list precision and recall after each detection; replace each precision by the largest at that recall "
         "or beyond; sum precision times the recall gained",
    solution=2 / 3,
    mistake=(0.5 + 2 / 3) / 2,
    kind="value",
    mistake_message="without interpolation",
)


# --- 5. an experiment: how strict is IoU 0.75? -------------------------------------------------------

MAP_SCENES = 300  # held-out detection scenes, seed 2


def detector_map(iou_threshold: float) -> float:
    """mAP of the shipped detector on ``MAP_SCENES`` held-out scenes (seed 2) at ``iou_threshold``."""
    return _detector_map(float(iou_threshold))


def _detector_map(iou_threshold: float) -> float:
    if iou_threshold not in _MAPS:
        from fmcourse.boxes import mean_average_precision
        from fmcourse.data.shapes import make_detection_scenes
        from fmcourse.models.detector import detect
        from fmcourse.models.vision_shipped import load_vision

        scenes = make_detection_scenes(MAP_SCENES, seed=2)
        found = detect(load_vision("detector"), scenes.images, confidence=0.01)
        _MAPS[iou_threshold] = mean_average_precision(found, list(zip(scenes.boxes, scenes.labels)), 4,
                                                      iou_threshold=iou_threshold).mean
    return _MAPS[iou_threshold]


_MAPS: dict[float, float] = {}


def _check_strict(prediction, measured) -> str | None:
    from fmcourse.exercises import number_problem
    if prediction not in ("more than half", "less than half"):
        raise WrongAnswer(f'the prediction should be "more than half" or "less than half", got {prediction!r}')
    return number_problem("your mAP@0.75", measured, detector_map(0.75), rel=2e-3, known=[
        (detector_map(0.5), "that is mAP@0.5: set iou_threshold = 0.75 in the cell and run it again")])


def _strict_truth() -> str:
    return "more than half" if detector_map(0.75) > detector_map(0.5) / 2 else "less than half"


def _strict_note(prediction, measured) -> str:
    from fmcourse.exercises import verdict
    return (f"{verdict(prediction, _strict_truth())}: mAP is {detector_map(0.5):.3f} at IoU 0.5 and "
            f"{detector_map(0.75):.3f} at 0.75. A box of a 5-pixel shape that is one pixel off on each side "
            "already has an IoU near 0.5, so the stricter threshold asks for nearly pixel-exact boxes")


strict_iou_experiment = Exercise(
    title="experiment: how strict is IoU 0.75?",
    checker=_check_strict,
    hint="in the cell, set iou_threshold = 0.75 and copy the mAP it prints",
    solution=lambda: (_strict_truth(), detector_map(0.75)),
    mistake=lambda: ("less than half" if _strict_truth() == "more than half" else "more than half", detector_map(0.5)),
    kind="experiment",
    parts=2,
    lazy=True,
    note=_strict_note,
    mistake_message="that is mAP@0.5",
)
