"""Box geometry and detection metrics against hand-worked answers and independent references: IoU,
grid box coding, NMS (against a brute-force reference) and average precision (against a reference
written from the definition, and scikit-learn's average_precision_score)."""

import itertools

import pytest
import torch
from sklearn.metrics import average_precision_score

from fmcourse.boxes import (Detections, average_precision, box_area, decode_boxes, encode_boxes, iou,
                            match_detections, mean_average_precision, nms)


def random_boxes(n: int, g: torch.Generator, size: float = 32.0) -> torch.Tensor:
    corner = torch.rand(n, 2, generator=g) * size
    extent = torch.rand(n, 2, generator=g) * size / 2
    return torch.cat([corner, corner + extent], 1)


def test_iou_on_hand_worked_boxes():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0],   # overlap 1, union 4 + 4 - 1 = 7
                      [0.0, 0.0, 2.0, 2.0],   # the same box
                      [2.0, 0.0, 4.0, 2.0],   # touching along an edge: no area shared
                      [0.0, 0.0, 4.0, 1.0],   # overlap 2 x 1 = 2, union 4 + 4 - 2 = 6
                      [0.5, 0.5, 1.5, 1.5]])  # inside: 1 / 4
    assert torch.allclose(iou(a, b), torch.tensor([[1 / 7, 1.0, 0.0, 2 / 6, 0.25]]))
    assert box_area(b).tolist() == [4.0, 4.0, 4.0, 4.0, 1.0]


def test_iou_is_symmetric_and_in_the_unit_interval():
    g = torch.Generator().manual_seed(0)
    a, b = random_boxes(50, g), random_boxes(40, g)
    overlaps = iou(a, b)
    assert overlaps.shape == (50, 40)
    assert torch.allclose(overlaps, iou(b, a).T)
    assert overlaps.min() >= 0 and overlaps.max() <= 1
    assert torch.allclose(iou(a, a).diagonal(), torch.ones(50))


def test_box_codes_round_trip():
    g = torch.Generator().manual_seed(1)
    boxes = random_boxes(30, g, size=24.0)  # centres stay inside a 32-pixel image
    cells, codes = encode_boxes(boxes, image_size=32, grid=4)
    assert ((codes[:, :2] >= 0) & (codes[:, :2] < 1)).all()
    for cell, code, box in zip(cells, codes, boxes):
        grid = torch.zeros(4, 4, 4)
        grid[cell // 4, cell % 4] = code
        assert torch.allclose(decode_boxes(grid, 32)[cell // 4, cell % 4], box, atol=1e-4)
    # a box centred at (13, 21) lies in column 1, row 2 of 8-pixel cells: cell 2 * 4 + 1
    cells, codes = encode_boxes(torch.tensor([[11.0, 18.0, 15.0, 24.0]]), 32, 4)
    assert cells.tolist() == [9] and torch.allclose(codes, torch.tensor([[13 / 8 - 1, 21 / 8 - 2, (4 / 32) ** 0.5, (6 / 32) ** 0.5]]))


def brute_force_nms(boxes, scores, threshold):
    """Keep a box when no box with a higher score (ties: earlier index), itself kept, overlaps it more."""
    order = sorted(range(len(boxes)), key=lambda i: (-float(scores[i]), i))
    kept = []
    for i in order:
        if all(float(iou(boxes[i:i + 1], boxes[j:j + 1])) <= threshold for j in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_equals_a_brute_force_reference(threshold):
    g = torch.Generator().manual_seed(2)
    for _ in range(10):
        boxes, scores = random_boxes(25, g, size=12.0), torch.rand(25, generator=g)
        assert nms(boxes, scores, threshold).tolist() == brute_force_nms(boxes, scores, threshold)


def test_nms_per_class_keeps_overlapping_boxes_of_different_classes():
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.1], [0.0, 0.0, 4.0, 4.2]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.5).tolist() == [0]
    assert nms(boxes, scores, 0.5, labels=torch.tensor([0, 1, 0])).tolist() == [0, 1]


def test_average_precision_on_a_hand_worked_example():
    # five detections, best first: hit, miss, hit, miss, hit; four true boxes (one never found)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    hits = torch.tensor([True, False, True, False, True])
    # precision after each: 1, 1/2, 2/3, 2/4, 3/5; recall: 1/4, 1/4, 2/4, 2/4, 3/4
    # interpolated: 1 on [0, 1/4], 2/3 on (1/4, 2/4], 3/5 on (2/4, 3/4]
    assert average_precision(scores, hits, 4) == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)
    assert average_precision(scores, hits, 4, interpolate=False) == pytest.approx((1 + 2 / 3 + 3 / 5) / 4)
    # a miss ranked first: hits 2nd and 3rd, two true boxes; precision 0, 1/2, 2/3 at recall 0, 1/2, 1.
    # Interpolation lifts the precision at recall 1/2 to the 2/3 reached later.
    scores, hits = torch.tensor([0.9, 0.8, 0.7]), torch.tensor([False, True, True])
    assert average_precision(scores, hits, 2) == pytest.approx(2 / 3)
    assert average_precision(scores, hits, 2, interpolate=False) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_average_precision_without_interpolation_equals_scikit_learn_when_every_box_is_found():
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        scores = torch.rand(40, generator=g)
        hits = torch.rand(40, generator=g) < 0.5
        ours = average_precision(scores, hits, int(hits.sum()), interpolate=False)
        assert ours == pytest.approx(average_precision_score(hits.numpy(), scores.numpy()))


def reference_map(predictions, truths, num_classes, threshold=0.5):
    """mAP from the definition, written independently: greedy matching by score over each image, then
    for every recall level reached, the best precision at that recall or more, integrated over recall."""
    aps = []
    for c in range(num_classes):
        rows, total = [], 0
        for found, (boxes, labels) in zip(predictions, truths):
            true = [b for b, l in zip(boxes, labels) if l == c]
            total += len(true)
            taken = set()
            mine = sorted([(float(s), b) for b, s, l in zip(found.boxes, found.scores, found.labels) if l == c],
                          key=lambda t: -t[0])
            for score, box in mine:
                options = [(float(iou(box[None], t[None])), k) for k, t in enumerate(true) if k not in taken]
                best = max(options, default=(0.0, None))
                hit = best[0] >= threshold
                if hit:
                    taken.add(best[1])
                rows.append((score, hit))
        rows.sort(key=lambda t: -t[0])
        points, tp = [], 0
        for k, (_, hit) in enumerate(rows, start=1):
            tp += hit
            points.append((tp / total if total else 0.0, tp / k))
        ap, previous = 0.0, 0.0
        for recall in sorted({r for r, _ in points}):
            ap += (recall - previous) * max(p for r, p in points if r >= recall)
            previous = recall
        aps.append(ap if total else 0.0)
    return sum(aps) / num_classes


def test_mean_average_precision_equals_a_reference_on_random_predictions():
    g = torch.Generator().manual_seed(4)
    predictions, truths = [], []
    for _ in range(12):
        true_boxes = random_boxes(3, g)
        true_labels = torch.randint(3, (3,), generator=g)
        # detections: jittered copies of the truth (some good, some poor) and random boxes
        jitter = true_boxes + torch.randn(3, 4, generator=g) * 2
        jitter = torch.cat([jitter[:, :2].minimum(jitter[:, 2:]), jitter[:, :2].maximum(jitter[:, 2:])], 1)
        boxes = torch.cat([jitter, random_boxes(4, g)])
        labels = torch.cat([true_labels, torch.randint(3, (4,), generator=g)])
        predictions.append(Detections(boxes, torch.rand(7, generator=g), labels))
        truths.append((true_boxes, true_labels))
    ours = mean_average_precision(predictions, truths, 3).mean
    assert 0 < ours < 1
    assert ours == pytest.approx(reference_map(predictions, truths, 3), abs=1e-6)


def test_perfect_detections_score_one_and_duplicates_are_false_positives():
    boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0], [10.0, 10.0, 15.0, 17.0]])
    labels = torch.tensor([0, 1])
    perfect = Detections(boxes, torch.tensor([0.9, 0.8]), labels)
    assert mean_average_precision([perfect], [(boxes, labels)], 2).mean == pytest.approx(1.0)
    twice = torch.cat([boxes[:1], boxes[:1]])
    assert match_detections(twice, torch.tensor([0.9, 0.8]), boxes[:1]).tolist() == [True, False]


@pytest.mark.parametrize("bad", [torch.tensor([[3.0, 0.0, 1.0, 2.0]]), torch.tensor([[0.0, 3.0, 1.0, 2.0]]),
                                 torch.zeros(2, 3)])
def test_bad_boxes_are_refused(bad):
    with pytest.raises(ValueError, match="x2 < x1|shape"):
        iou(bad, torch.zeros(1, 4))


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_nms_threshold_outside_the_unit_interval_is_refused(threshold):
    with pytest.raises(ValueError, match=r"iou_threshold must be a number in \[0, 1\]"):
        nms(torch.zeros(2, 4), torch.zeros(2), threshold)
