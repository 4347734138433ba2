"""The losses agree with torch's built-ins in value and gradient, for random shapes and several dtypes."""

import math

import pytest
import torch
import torch.nn.functional as F

from fmcourse.objectives import cross_entropy, log_softmax, logsumexp, mse, softmax

# bfloat16 keeps 8 bits of mantissa: compare it loosely, and against torch run in bfloat16 too.
TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12),
             torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}
DTYPES = list(TOLERANCE)
SEEDS = range(4)


def random_shape(g: torch.Generator, min_dims: int = 1, max_dims: int = 4) -> tuple[int, ...]:
    dims = int(torch.randint(min_dims, max_dims + 1, (), generator=g))
    return tuple(int(n) for n in torch.randint(1, 7, (dims,), generator=g))


def leaf(shape, dtype, g, scale=3.0):
    return (scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype).requires_grad_()


def assert_same_value_and_grad(ours_fn, torch_fn, inputs, dtype):
    """Run both functions on copies of ``inputs``, backpropagate the same random upstream gradient."""
    ours_in = [x.detach().clone().requires_grad_() for x in inputs]
    ref_in = [x.detach().clone().requires_grad_() for x in inputs]
    ours, ref = ours_fn(*ours_in), torch_fn(*ref_in)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    torch.testing.assert_close(ours, ref, **TOLERANCE[dtype], equal_nan=True)
    upstream = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    ours.backward(upstream)
    ref.backward(upstream)
    for a, b in zip(ours_in, ref_in):
        torch.testing.assert_close(a.grad, b.grad, **TOLERANCE[dtype])


# --- log-sum-exp, softmax, log-softmax ------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_logsumexp_softmax_log_softmax_match_torch(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    shape = random_shape(g)
    dim = int(torch.randint(-len(shape), len(shape), (), generator=g))
    x = leaf(shape, dtype, g)
    assert_same_value_and_grad(lambda t: logsumexp(t, dim), lambda t: torch.logsumexp(t, dim), [x], dtype)
    assert_same_value_and_grad(lambda t: softmax(t, dim), lambda t: torch.softmax(t, dim), [x], dtype)
    assert_same_value_and_grad(lambda t: log_softmax(t, dim), lambda t: torch.log_softmax(t, dim), [x], dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_logits_do_not_overflow(dtype):
    z = torch.tensor([[1000.0, 0.0, -1000.0], [1e4, 1e4, 1e4]], dtype=dtype)
    assert torch.isinf(z.exp().sum(-1)).all()  # the naive sum overflows
    torch.testing.assert_close(softmax(z), torch.softmax(z, -1))
    torch.testing.assert_close(logsumexp(z), torch.logsumexp(z, -1))
    assert logsumexp(z)[1].item() == pytest.approx(1e4 + math.log(3))


@pytest.mark.parametrize("offset", [1e3, -1e3, 1e5])
def test_precision_survives_a_large_common_offset(offset):
    z = torch.randn(8, 6, generator=torch.Generator().manual_seed(0)) + offset  # float32
    torch.testing.assert_close(softmax(z), torch.softmax(z, -1))
    torch.testing.assert_close(log_softmax(z), torch.log_softmax(z, -1))
    torch.testing.assert_close(cross_entropy(z, torch.arange(8) % 6), F.cross_entropy(z, torch.arange(8) % 6))


def test_masked_entries_count_as_zero_probability():
    z = torch.tensor([[0.0, -math.inf, 0.0], [-math.inf, -math.inf, -math.inf]])
    torch.testing.assert_close(logsumexp(z), torch.logsumexp(z, -1))  # log 2 and -inf
    torch.testing.assert_close(softmax(z[:1]), torch.tensor([[0.5, 0.0, 0.5]]))


def test_softmax_is_shift_invariant_and_sums_to_one():
    z = torch.randn(5, 7, dtype=torch.float64)
    torch.testing.assert_close(softmax(z + 123.0), softmax(z))
    torch.testing.assert_close(softmax(z).sum(-1), torch.ones(5, dtype=torch.float64))


@pytest.mark.parametrize("fn", [softmax, log_softmax, logsumexp])
def test_integer_input_is_refused(fn):
    with pytest.raises(TypeError, match="floating-point"):
        fn(torch.arange(3))


# --- mean squared error ---------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_mse_matches_torch(seed, dtype, reduction):
    g = torch.Generator().manual_seed(seed)
    shape = random_shape(g)
    inputs = [leaf(shape, dtype, g), leaf(shape, dtype, g)]
    assert_same_value_and_grad(lambda p, t: mse(p, t, reduction), lambda p, t: F.mse_loss(p, t, reduction=reduction),
                               inputs, dtype)


def test_mse_refuses_the_broadcasting_trap():
    predictions, targets = torch.randn(4, 1), torch.randn(4)
    with pytest.warns(UserWarning):  # torch broadcasts to (4, 4) and only warns
        F.mse_loss(predictions, targets)
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        mse(predictions, targets)


def test_mse_rejects_bad_reduction_and_integer_targets():
    with pytest.raises(ValueError, match="reduction"):
        mse(torch.zeros(2), torch.zeros(2), reduction="avg")
    with pytest.raises(TypeError, match="targets"):
        mse(torch.zeros(2), torch.zeros(2, dtype=torch.long))


# --- cross-entropy --------------------------------------------------------------------------------

def torch_cross_entropy(logits, targets, **kwargs):
    """torch wants the classes in dimension 1: (N, C, d1, ...)."""
    return F.cross_entropy(logits.movedim(-1, 1) if logits.dim() > 2 else logits,
                           targets.movedim(-1, 1) if targets.shape == logits.shape and logits.dim() > 2 else targets,
                           **kwargs)


def index_targets(shape, num_classes, g, ignore_index=None):
    targets = torch.randint(0, num_classes, shape, generator=g)
    if ignore_index is not None:  # ignore about a third, but keep at least one position counted
        ignored = torch.rand(shape, generator=g) < 0.33
        ignored.view(-1)[0] = False
        targets[ignored] = ignore_index
    return targets


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", ["plain", "weight", "smoothing", "ignore", "all"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_with_class_indices_matches_torch(seed, dtype, options, reduction):
    g = torch.Generator().manual_seed(seed)
    shape = random_shape(g, min_dims=1, max_dims=3)  # the positions (...), then C classes
    num_classes = int(torch.randint(2, 9, (), generator=g))
    kwargs = {"reduction": reduction}
    if options in ("weight", "all"):
        kwargs["weight"] = torch.rand(num_classes, generator=g, dtype=torch.float64).add(0.1).to(dtype)
    if options in ("smoothing", "all"):
        kwargs["label_smoothing"] = 0.15
    if options in ("ignore", "all"):
        kwargs["ignore_index"] = -1 if seed % 2 else num_classes + 3
    targets = index_targets(shape, num_classes, g, kwargs.get("ignore_index"))
    logits = leaf(shape + (num_classes,), dtype, g)
    assert_same_value_and_grad(lambda z: cross_entropy(z, targets, **kwargs),
                               lambda z: torch_cross_entropy(z, targets, **kwargs), [logits], dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_with_probability_targets_matches_torch(seed, dtype, reduction):
    g = torch.Generator().manual_seed(seed)
    shape = random_shape(g, min_dims=2, max_dims=4)
    probabilities = torch.softmax(torch.randn(shape, generator=g, dtype=torch.float64), -1).to(dtype)
    weight = torch.rand(shape[-1], generator=g, dtype=torch.float64).add(0.1).to(dtype)
    kwargs = dict(weight=weight, label_smoothing=0.1, reduction=reduction)
    assert_same_value_and_grad(lambda z: cross_entropy(z, probabilities, **kwargs),
                               lambda z: torch_cross_entropy(z, probabilities, **kwargs),
                               [leaf(shape, dtype, g)], dtype)


def test_cross_entropy_of_uniform_prediction_is_log_num_classes():
    logits = torch.zeros(6, 10)
    assert cross_entropy(logits, torch.arange(6)).item() == pytest.approx(math.log(10))


def test_gradient_is_softmax_minus_one_hot_over_n():
    logits = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 3, 1, 1, 2])
    cross_entropy(logits, targets).backward()
    expected = (torch.softmax(logits, -1) - F.one_hot(targets, 4)) / 5
    torch.testing.assert_close(logits.grad, expected.detach())


def test_huge_logits_give_a_finite_loss():
    logits = torch.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    loss = cross_entropy(logits, torch.tensor([1]))
    assert loss.item() == pytest.approx(1000.0)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masked_logits_match_torch(dtype, label_smoothing, reduction):
    """-inf logits (a causal or padding mask): finite like torch without smoothing; with smoothing the
    uniform target puts weight on the masked class, so the loss is inf in torch too (the gradient stays finite)."""
    g = torch.Generator().manual_seed(0)
    logits = leaf((3, 4, 6), dtype, g)
    masked = torch.rand(3, 4, 6, generator=g) < 0.3
    masked[..., 0] = False  # targets below stay on unmasked class 0 or 1
    masked[..., 1] = False
    logits = logits.detach().masked_fill(masked, -math.inf)
    targets = torch.randint(0, 2, (3, 4), generator=g)
    targets[0, 0] = -100
    kwargs = dict(label_smoothing=label_smoothing, reduction=reduction)
    assert_same_value_and_grad(lambda z: cross_entropy(z, targets, **kwargs),
                               lambda z: torch_cross_entropy(z, targets, **kwargs), [logits], dtype)
    if label_smoothing == 0:
        assert torch.isfinite(cross_entropy(logits, targets, **kwargs)).all()


def test_all_ignored_gives_nan_like_torch():
    logits, targets = torch.randn(3, 4), torch.full((3,), -100)
    assert torch.isnan(cross_entropy(logits, targets)) and torch.isnan(F.cross_entropy(logits, targets))
    assert cross_entropy(logits, targets, reduction="sum").item() == 0.0


def test_cross_entropy_accepts_int32_indices():
    logits, targets = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    torch.testing.assert_close(cross_entropy(logits, targets.int()), F.cross_entropy(logits, targets))


@pytest.mark.parametrize("targets, error, message", [
    (torch.zeros(4, 2, dtype=torch.long), ValueError, r"shape \(4, 2\).*logits of shape \(4, 10\).*\(4,\)"),
    (torch.zeros(5, dtype=torch.long), ValueError, r"expected class indices of shape \(4,\)"),
    (torch.tensor([0, 1, 10, 2]), ValueError, r"class index 10 is out of range.*\[0, 9\]"),
    (torch.tensor([0, -3, 1, 2]), ValueError, r"class index -3 is out of range"),
    (torch.tensor([0.0, 1.0, 2.0, 3.0]), TypeError, "integer"),
])
def test_cross_entropy_rejects_bad_targets(targets, error, message):
    with pytest.raises(error, match=message):
        cross_entropy(torch.randn(4, 10), targets)


@pytest.mark.parametrize("kwargs, message", [
    ({"weight": torch.ones(3)}, r"weight must have shape \(10,\)"),
    ({"label_smoothing": 1.5}, r"label_smoothing must be in \[0, 1\]"),
    ({"reduction": "avg"}, "reduction must be one of"),
])
def test_cross_entropy_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cross_entropy(torch.randn(4, 10), torch.zeros(4, dtype=torch.long), **kwargs)


def test_cross_entropy_rejects_integer_logits_and_scalars():
    with pytest.raises(TypeError, match="floating-point"):
        cross_entropy(torch.zeros(4, 10, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="class dimension"):
        cross_entropy(torch.tensor(1.0), torch.tensor(0))


def test_distillation_loss_is_cross_entropy_for_one_hot_targets_at_temperature_1():
    from fmcourse.objectives import distillation_loss

    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(3, 5, 7, generator=g), torch.randint(0, 7, (3, 5), generator=g)
    one_hot = F.one_hot(labels, 7).float()
    got = distillation_loss(logits, teacher_probs=one_hot, temperature=1.0)
    torch.testing.assert_close(got, F.cross_entropy(logits.flatten(0, 1), labels.flatten()))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0])
def test_distillation_loss_is_t_squared_kl_plus_the_teachers_entropy(temperature):
    from fmcourse.objectives import distillation_loss

    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(6, 9, generator=g, requires_grad=True), torch.randn(6, 9, generator=g)
    p = torch.softmax(teacher / temperature, -1)
    kl = F.kl_div(torch.log_softmax(student / temperature, -1), p, reduction="batchmean")
    entropy = -(p * p.log()).sum(-1).mean()
    got = distillation_loss(student, teacher, temperature)
    torch.testing.assert_close(got, temperature**2 * (kl + entropy))
    got.backward()  # the teacher gets no gradient, the student does
    assert student.grad is not None and teacher.grad is None
