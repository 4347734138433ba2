"""Accuracy and the confusion matrix agree with scikit-learn; bad input gets a clear error."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from fmcourse.metrics import accuracy, confusion_matrix


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
