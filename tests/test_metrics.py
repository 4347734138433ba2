"""Accuracy, the confusion matrix, F1 and calibration agree with scikit-learn and with hand-computed
cases; bad input gets a clear error."""

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from fmcourse.metrics import accuracy, calibration, confusion_matrix, f1_scores, macro_f1


def random_case(seed: int, shape=(50,), num_classes=7):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(*shape, num_classes, generator=g)
    targets = torch.randint(0, num_classes, shape, generator=g)
    # make about half of the predictions right, so the matrix has a real diagonal
    right = torch.rand(shape, generator=g) < 0.5
    scores[right] = scores[right].scatter(-1, targets[right].unsqueeze(-1), 10.0)
    return scores, targets


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", [(50,), (4, 9), (2, 3, 5)])
def test_accuracy_matches_sklearn(seed, shape):
    scores, targets = random_case(seed, shape)
    labels = scores.argmax(-1)
    expected = accuracy_score(targets.flatten().numpy(), labels.flatten().numpy())
    assert accuracy(scores, targets) == pytest.approx(expected)  # from scores
    assert accuracy(labels, targets) == pytest.approx(expected)  # from labels
    assert accuracy(labels.numpy(), targets.tolist()) == pytest.approx(expected)  # NumPy and lists


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", [(60,), (6, 10)])
def test_confusion_matrix_matches_sklearn(seed, shape):
    scores, targets = random_case(seed, shape)
    expected = sklearn_confusion_matrix(targets.flatten().numpy(), scores.argmax(-1).flatten().numpy(), labels=range(7))
    matrix = confusion_matrix(scores, targets)
    assert matrix.shape == (7, 7) and matrix.dtype == torch.int64
    np.testing.assert_array_equal(matrix.numpy(), expected)
    np.testing.assert_array_equal(confusion_matrix(scores.argmax(-1), targets, num_classes=7).numpy(), expected)
    assert matrix.sum() == targets.numel()
    assert torch.equal(matrix.sum(1), torch.bincount(targets.flatten(), minlength=7))  # rows: true classes


def test_confusion_matrix_counts_a_known_case():
    predicted, targets = torch.tensor([0, 1, 1, 2, 2, 2]), torch.tensor([0, 1, 2, 2, 2, 0])
    expected = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 2]])
    assert torch.equal(confusion_matrix(predicted, targets), expected)
    assert accuracy(predicted, targets) == pytest.approx(4 / 6)


def test_num_classes_defaults_to_score_columns_and_can_exceed_labels_seen():
    scores = torch.tensor([[0.1, 0.9, 0.0, 0.0]])
    assert confusion_matrix(scores, torch.tensor([1])).shape == (4, 4)
    assert confusion_matrix(torch.tensor([1]), torch.tensor([1]), num_classes=5).shape == (5, 5)


@pytest.mark.parametrize("predictions, targets, message", [
    (torch.randn(5, 10), torch.zeros(4, dtype=torch.long), r"\(5, 10\) do not fit targets of shape \(4,\).*\(4, C\)"),
    (torch.zeros(5, dtype=torch.long), torch.zeros(4, dtype=torch.long), r"\(5,\) do not fit targets of shape \(4,\)"),
    (torch.randn(4, 10), torch.zeros(4, 1, dtype=torch.long), r"targets of shape \(4, 1\).*\(4, 1, C\)"),
    (torch.randn(4, 10), torch.tensor([0, 1, 12, 3]), r"class index 12.*\[0, 9\] for 10 classes"),
    (torch.randn(4, 10), torch.tensor([0, -1, 2, 3]), r"class index -1"),
    (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), "empty"),
])
def test_accuracy_rejects_bad_input(predictions, targets, message):
    with pytest.raises(ValueError, match=message):
        accuracy(predictions, targets)


def test_confusion_matrix_rejects_labels_outside_num_classes():
    with pytest.raises(ValueError, match=r"predicted labels contain class index 5.*\[0, 2\]"):
        confusion_matrix(torch.tensor([0, 5]), torch.tensor([0, 1]), num_classes=3)
    with pytest.raises(ValueError, match=r"targets contain class index 3"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 3]), num_classes=3)
    with pytest.raises(ValueError, match="positive int"):
        confusion_matrix(torch.tensor([0]), torch.tensor([0]), num_classes=0)


def test_float_labels_and_targets_are_refused():
    with pytest.raises(TypeError, match="integer"):
        accuracy(torch.zeros(3, 4), torch.zeros(3))
    with pytest.raises(TypeError, match=r"class dimension, shape \(3, C\)"):
        accuracy(torch.zeros(3), torch.zeros(3, dtype=torch.long))


# --- F1 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_f1_matches_sklearn(seed):
    scores, targets = random_case(seed, (80,))
    predicted = scores.argmax(-1)
    predicted[predicted == 6] = 5  # class 6 is never predicted: its F1 is 0
    present = sorted(set(targets.tolist()) | set(predicted.tolist()))
    np.testing.assert_allclose(f1_scores(predicted, targets, 7)[present].numpy(),
                               f1_score(targets.numpy(), predicted.numpy(), average=None, labels=present))
    assert macro_f1(predicted, targets) == pytest.approx(f1_score(targets.numpy(), predicted.numpy(), average="macro"))
    assert macro_f1(scores, targets) == pytest.approx(f1_score(targets.numpy(), scores.argmax(-1).numpy(), average="macro"))


def test_f1_of_a_known_case():
    # class 0: TP 2, FP 1, FN 0 -> 4/5; class 1: TP 1, FP 0, FN 1 -> 2/3; class 2 never occurs -> NaN
    predicted, targets = torch.tensor([0, 0, 1, 0]), torch.tensor([0, 0, 1, 1])
    f1 = f1_scores(predicted, targets, num_classes=3)
    torch.testing.assert_close(f1[:2], torch.tensor([4 / 5, 2 / 3], dtype=torch.float64))
    assert torch.isnan(f1[2])
    assert macro_f1(predicted, targets, num_classes=3) == pytest.approx((4 / 5 + 2 / 3) / 2)


def test_macro_f1_punishes_ignoring_a_rare_class():
    targets = torch.tensor([0] * 90 + [1] * 10)
    always_zero = torch.zeros(100, dtype=torch.long)
    assert accuracy(always_zero, targets) == pytest.approx(0.9)
    assert macro_f1(always_zero, targets) == pytest.approx((2 * 90 / (2 * 90 + 10) + 0) / 2)


# --- calibration ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_calibration_bins_match_sklearn(seed):
    g = torch.Generator().manual_seed(seed)
    probabilities = torch.softmax(torch.randn(300, 4, generator=g, dtype=torch.float64) * 2, dim=1)
    targets = torch.randint(0, 4, (300,), generator=g)
    confidence, predicted = probabilities.max(1)
    correct = (predicted == targets).numpy()
    result = calibration(probabilities, targets, bins=8)
    filled = result.counts > 0
    accuracy_in_bin, confidence_in_bin = calibration_curve(correct, confidence.numpy(), n_bins=8)
    np.testing.assert_allclose(result.accuracy[filled].numpy(), accuracy_in_bin)
    np.testing.assert_allclose(result.confidence[filled].numpy(), confidence_in_bin)
    assert result.counts.sum() == 300 and torch.isnan(result.accuracy[~filled]).all()
    gaps = np.abs(accuracy_in_bin - confidence_in_bin) * result.counts[filled].numpy() / 300
    assert result.ece == pytest.approx(gaps.sum())


def test_ece_of_known_cases():
    # always right with full confidence: perfectly calibrated
    assert calibration(torch.eye(3)[[0, 1, 2, 0]], torch.tensor([0, 1, 2, 0])).ece == 0
    # always 0.9 sure, right half the time: off by 0.4
    p = torch.tensor([[0.9, 0.1]] * 4)
    assert calibration(p, torch.tensor([0, 1, 0, 1])).ece == pytest.approx(0.4)
    # bins of width 0.25: 0.6 sure and always right (gap 0.4), 0.95 sure and right 1 of 2 (gap 0.45)
    p = torch.tensor([[0.6, 0.4], [0.6, 0.4], [0.95, 0.05], [0.95, 0.05]])
    assert calibration(p, torch.tensor([0, 0, 0, 1]), bins=4).ece == pytest.approx((0.4 + 0.45) / 2)


def test_calibration_refuses_logits_and_bad_bins():
    with pytest.raises(ValueError, match=r"pass softmax\(logits\)"):
        calibration(torch.randn(5, 3) * 3, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="bins must be a positive int"):
        calibration(torch.full((2, 2), 0.5), torch.tensor([0, 1]), bins=0)
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        calibration(torch.full((4,), 0.5), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="class index 3"):
        calibration(torch.full((2, 2), 0.5), torch.tensor([0, 3]))
