"""Compression: int8 quantization, pruning, distillation and bf16, on the shipped GPT and small models."""

import io
import warnings

import pytest
import torch
import torch.nn.functional as F

from fmcourse import compress, env
from fmcourse.data import causal_lm_eval_batches, pydoc_text
from fmcourse.models import GPT, GPTConfig
from fmcourse.pretrain import load_shipped, prepare
from fmcourse.train import evaluate, fit, supervised


@pytest.fixture(scope="module")
def shipped_gpt():
    model, _ = load_shipped("gpt_pydoc_char")
    val = causal_lm_eval_batches(prepare(pydoc_text()).val, 16, 64, max_batches=4)
    return model, val, evaluate(model, val)


def test_quantized_gpt_is_over_2x_smaller_loads_back_and_keeps_its_loss_within_002(shipped_gpt):
    model, val, loss = shipped_gpt
    small = compress.quantize(model)
    assert compress.model_bytes(model) > 2 * compress.model_bytes(small)
    assert abs(evaluate(small, val) - loss) < 0.02
    assert isinstance(model.head, torch.nn.Linear) and model.head.weight.dtype == torch.float32  # the original is kept
    buffer = io.BytesIO()
    torch.save(small.state_dict(), buffer)
    buffer.seek(0)
    fresh = compress.quantize(GPT(model.config))
    with warnings.catch_warnings():  # torch's own loader of packed int8 weights warns about its storage class
        warnings.simplefilter("ignore", UserWarning)
        fresh.load_state_dict(torch.load(buffer, weights_only=True))  # no pickle: tensors and packed weights only
    x = val[0][0]
    torch.testing.assert_close(fresh(x), small(x))


def test_pruning_zeroes_the_smallest_weights_and_costs_little_at_low_sparsity(shipped_gpt):
    model, val, loss = shipped_gpt
    for sparsity, bound in ((0.2, 0.02), (0.5, 1.0)):  # at half the weights: far worse, still far below unigram (3.3)
        pruned = compress.prune(model, sparsity)
        assert compress.sparsity_of(pruned) == pytest.approx(sparsity, abs=1e-3)
        assert abs(evaluate(pruned, val) - loss) < bound
    kept = torch.cat([m.weight.flatten() for m in compress.prunable(model)]).abs()
    threshold = kept.kthvalue(int(0.5 * kept.numel())).values
    pruned = compress.prune(model, 0.5)
    for original, cut in zip(compress.prunable(model), compress.prunable(pruned)):
        zero = cut.weight == 0
        assert (original.weight.abs()[zero] <= threshold + 1e-7).all()  # only small weights were cut
    torch.testing.assert_close(pruned.token_embedding.weight, model.token_embedding.weight)  # tied head left whole
    assert compress.sparsity_of(model) < 0.01 and compress.prune(model, 0).state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5, True])
def test_sparsity_outside_0_1_is_refused(sparsity):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        compress.prune(torch.nn.Linear(2, 2), sparsity)


def test_distillation_with_no_weight_on_the_teacher_is_cross_entropy_and_bf16_is_close_to_float32():
    env.seed_everything(0)
    teacher, student = (GPT(GPTConfig(vocab_size=11, context_length=8, n_layer=1, n_head=2, d_model=16))
                        for _ in range(2))
    x, y = torch.randint(0, 11, (4, 8)), torch.randint(0, 11, (4, 8))
    plain = supervised()(student, (x, y))
    torch.testing.assert_close(compress.distillation(teacher, 2.0, alpha=0.0)(student, (x, y)), plain)
    with torch.no_grad():
        soft = F.softmax(teacher(x), -1)
    expected = -(soft * F.log_softmax(student(x), -1)).sum(-1).mean()
    torch.testing.assert_close(compress.distillation(teacher, 1.0, alpha=1.0)(student, (x, y)), expected)
    low = compress.bf16(supervised())(student, (x, y))
    assert low.dtype == torch.float32 and abs(low.item() - plain.item()) < 0.05


def test_a_distilled_student_learns_from_the_teacher_faster_than_from_labels():
    """A teacher that knows the next token exactly (a fixed random permutation) teaches its full
    distribution; the student from it beats the same student trained on the labels for the same steps."""
    env.seed_everything(0)
    config = GPTConfig(vocab_size=16, context_length=8, n_layer=1, n_head=2, d_model=16)
    g = torch.Generator().manual_seed(0)
    permutation = torch.randperm(16, generator=g)

    class Oracle(torch.nn.Module):
        def forward(self, x):
            return 4.0 * F.one_hot(permutation[x], 16).float() + 0.3 * torch.randn(*x.shape, 16, generator=g)

    def batch():
        x = torch.randint(0, 16, (8, 8), generator=g)
        return x, permutation[x] if torch.rand((), generator=g) < 0.5 else torch.randint(0, 16, (8, 8), generator=g)

    losses = {}
    for name, loss_fn in (("scratch", supervised()), ("distilled", compress.distillation(Oracle(), 1.0, 1.0))):
        env.seed_everything(1)
        student = GPT(config)
        fit(student, batch, loss_fn, steps=60, lr=1e-2, plot=False, progress=False, device="cpu")
        x = torch.randint(0, 16, (64, 8), generator=torch.Generator().manual_seed(5))
        losses[name] = F.cross_entropy(student(x).flatten(0, 1), permutation[x].flatten()).item()
    assert losses["distilled"] < losses["scratch"]
