"""BLEU and exact match: a hand-worked example, clipping, the brevity penalty, and agreement with an
independent implementation written from the definition in Papineni et al. (2002)."""

import math
import random

import pytest
import torch

from fmcourse.metrics import bleu, exact_match


def reference_bleu(hypotheses, reference_lists, max_n=4):
    """Corpus BLEU from the paper's definition, written independently: for each hypothesis, each n-gram
    counts at most its largest count in any of its references; the effective reference length is the
    reference length closest to the hypothesis length (the shorter on ties)."""
    clipped_total = [0] * max_n
    candidate_total = [0] * max_n
    c = r = 0
    for hyp, refs in zip(hypotheses, reference_lists):
        c += len(hyp)
        r += min((abs(len(ref) - len(hyp)), len(ref)) for ref in refs)[1]
        for n in range(1, max_n + 1):
            grams = [" ".join(map(str, hyp[i:i + n])) for i in range(len(hyp) - n + 1)]
            for gram in set(grams):
                most_in_a_reference = max(
                    [" ".join(map(str, ref[i:i + n])) for i in range(len(ref) - n + 1)].count(gram) for ref in refs
                )
                clipped_total[n - 1] += min(grams.count(gram), most_in_a_reference)
            candidate_total[n - 1] += len(grams)
    if c == 0 or 0 in clipped_total:
        return 0.0
    score = 1.0
    for clipped, total in zip(clipped_total, candidate_total):
        score *= (clipped / total) ** (1 / max_n)
    return score * (1.0 if c > r else math.exp(1 - r / c))


def test_a_hand_worked_example():
    # hypothesis "the cat sat on the mat", reference "the cat is on the mat":
    # unigrams 5/6 (sat is not in it), bigrams 3/5 (the cat, on the, the mat), trigrams 1/4 (on the mat),
    # 4-grams 0/3; equal lengths, so no brevity penalty
    hyp, ref = ["the cat sat on the mat"], ["the cat is on the mat"]
    assert bleu(hyp, ref, max_n=1) == pytest.approx(5 / 6)
    assert bleu(hyp, ref, max_n=2) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert bleu(hyp, ref, max_n=3) == pytest.approx(0.5)  # (5/6 * 3/5 * 1/4) ** (1/3) = (1/8) ** (1/3)
    assert bleu(hyp, ref) == 0.0


def test_clipping_and_the_brevity_penalty():
    # "the the the the" against "the cat": "the" is counted once only, p1 = 1/4; longer than the reference
    assert bleu(["the the the the"], ["the cat"], max_n=1) == pytest.approx(1 / 4)
    # "the cat" against a reference of 6 words: every n-gram matches, but BP = exp(1 - 6/2)
    assert bleu(["the cat"], ["the cat is on the mat"], max_n=2) == pytest.approx(math.exp(-2))
    # a perfect corpus
    assert bleu(["三百零五", "一百一十"], ["三百零五", "一百一十"], split="chars") == 1.0
    # characters: 三百零五 against 三百五十: 三, 百, 五 match (p1 = 3/4), of the bigrams only 三百 (p2 = 1/3)
    assert bleu(["三百零五"], ["三百五十"], max_n=2, split="chars") == pytest.approx(math.sqrt(3 / 4 * 1 / 3))


def test_agrees_with_the_independent_implementation_on_sample_corpora():
    rng = random.Random(0)
    words = "a b c d e f".split()
    for trial in range(30):
        hypotheses, references = [], []
        for _ in range(rng.randint(1, 8)):
            ref = [rng.choice(words) for _ in range(rng.randint(1, 12))]
            hyp = [w if rng.random() < 0.7 else rng.choice(words) for w in ref]  # a noisy copy
            if rng.random() < 0.3:
                hyp = hyp[:rng.randint(1, len(hyp))]  # too short: the brevity penalty applies
            if rng.random() < 0.2:
                hyp = hyp + hyp[:3]  # too long
            hypotheses.append(hyp)
            references.append(ref)
        for max_n in (1, 2, 4):
            expected = reference_bleu(hypotheses, [[r] for r in references], max_n)
            assert bleu(hypotheses, references, max_n) == pytest.approx(expected, abs=1e-12), (trial, max_n)
        strings = bleu([" ".join(h) for h in hypotheses], [" ".join(r) for r in references])
        assert strings == pytest.approx(reference_bleu(hypotheses, [[r] for r in references]), abs=1e-12)
    ids = bleu([torch.tensor([1, 2, 3, 4, 5])], [torch.tensor([1, 2, 3, 4, 6])], max_n=2)
    assert ids == pytest.approx(reference_bleu([[1, 2, 3, 4, 5]], [[[1, 2, 3, 4, 6]]], 2))


def test_exact_match():
    assert exact_match(["三百零五", "十", "一十"], ["三百零五", "十", "十"]) == pytest.approx(2 / 3)
    assert exact_match([[1, 2], [3]], [[1, 2], [4]]) == 0.5
    assert exact_match([torch.tensor([1, 2])], [[1, 2]]) == 1.0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no examples"):
        bleu([], [])
    with pytest.raises(TypeError, match="hypotheses must be a list"):
        bleu("the cat", "the cat")
    with pytest.raises(ValueError, match="max_n must be a positive int, got 0"):
        bleu(["a"], ["a"], max_n=0)
    with pytest.raises(ValueError, match="split must be 'whitespace' or 'chars', got 'words'"):
        bleu(["a"], ["a"], split="words")
    with pytest.raises(ValueError, match="3 predictions for 2 targets"):
        exact_match(["a", "b", "c"], ["a", "b"])
    with pytest.raises(ValueError, match="no examples"):
        exact_match([], [])
