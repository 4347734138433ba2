"""Data: where text comes from, how it is cleaned and split, and how it becomes batches.

- ``corpora``: ``pydoc_text`` (offline English), ``read_text`` (your UTF-8 file), ``tiny_shakespeare``
  (a download), ``clean_text``, ``train_val_split``;
- ``markov``: ``MarkovChain``, synthetic text whose entropy rate (the best possible loss) is known;
- ``batches``: random windows for causal LM, BERT-style masking for masked LM;
- ``registry``: pinned, checked, cached downloads; ``files``: atomic writes and checksums;
- ``shapes``: a synthetic world of small images of shapes with exact captions, and scenes of several
  shapes with exact boxes;
- ``augment``: random views of image batches (crop, rotation, blur, noise, erasing), in torch;
- ``numbers``: English number words and their Chinese numerals (a parallel corpus with exact answers);
- ``text_tasks``: prefixed text-to-text tasks (question answering over facts, translation, counting);
- ``pairs``: ``PairVocab``, source/target text pairs as padded id batches for an encoder–decoder;
- ``recsys``: ``ShopWorld``, users with known tastes buying items in sequence; ``leave_last_out``.
- ``speech``: spoken digits, commands and captions with exact transcripts, synthesized by eSpeak NG
  (``fmcourse[speech]``), with held-out voices and phrases.
- ``reversal``: chapter 03's digit-reversal task, a behaviour with a known mechanism;
- ``shortcut``: a world with a planted spurious correlation (colour predicts the class in training only).
"""

from fmcourse.data.augment import Augment, affine, erase, gaussian_blur
from fmcourse.data.batches import (
    IGNORE_INDEX,
    causal_lm_batches,
    causal_lm_eval_batches,
    mask_tokens,
    masked_lm_batches,
    masked_lm_eval_batches,
)
from fmcourse.data.corpora import clean_text, pydoc_text, read_text, tiny_shakespeare, train_val_split
from fmcourse.data.digits import load_digits_split
from fmcourse.data.files import atomic_path, sha256_file
from fmcourse.data.markov import MarkovChain
from fmcourse.data.numbers import NumberSplit, number_pairs, number_vocab, split_numbers, to_chinese, to_digits, to_english
from fmcourse.data.pairs import PairVocab
from fmcourse.data.recsys import LeaveLastOut, ShopWorld, leave_last_out
from fmcourse.data.registry import REGISTRY, ChecksumError, Download, fetch
from fmcourse.data import speech
from fmcourse.data.reversal import reversal_batch
from fmcourse.data.shortcut import GROUP_NAMES, ShortcutWorld, best_shape_only_accuracy, shortcut_world
from fmcourse.data.shapes import DetectionScenes, Scenes, caption, encode_captions, make_detection_scenes, make_scenes
from fmcourse.data.text_tasks import TextExample, text_task_split

__all__ = [
    "load_digits_split",
    "IGNORE_INDEX", "causal_lm_batches", "causal_lm_eval_batches", "mask_tokens", "masked_lm_batches",
    "masked_lm_eval_batches", "clean_text", "pydoc_text", "read_text", "tiny_shakespeare", "train_val_split",
    "atomic_path", "sha256_file", "MarkovChain", "REGISTRY", "ChecksumError", "Download", "fetch",
    "Augment", "affine", "erase", "gaussian_blur", "DetectionScenes", "Scenes", "caption", "encode_captions", "make_detection_scenes", "make_scenes",
    "NumberSplit", "number_pairs", "number_vocab", "split_numbers", "to_chinese", "to_digits", "to_english",
    "PairVocab", "TextExample", "text_task_split", "LeaveLastOut", "ShopWorld", "leave_last_out", "speech",
    "reversal_batch", "GROUP_NAMES", "ShortcutWorld", "best_shape_only_accuracy", "shortcut_world",
]
