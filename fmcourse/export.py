"""Take a GPT elsewhere: export it as a Hugging Face ``transformers`` GPT-2.

    hf_model = to_huggingface(model, "runs/gpt-hf", tokenizer=tok)   # a GPT2LMHeadModel, saved
    # elsewhere:  GPT2LMHeadModel.from_pretrained("runs/gpt-hf")

fmcourse's GPT is GPT-2's architecture (pre-LayerNorm blocks, learned positions, tanh-GELU MLPs of
width 4 d_model, biases, a head tied to the token embedding), so the export only renames and
transposes weights: GPT-2 stores its linear layers as ``Conv1D`` with the weight ``(in, out)``, the
transpose of ``nn.Linear``'s ``(out, in)``. The logits of the two models agree (tested).

The course's tokenizers are not GPT-2's: ``save_pretrained`` folders get the tokenizer as
``fmcourse_tokenizer.json``, which ``fmcourse.tokenizers.load_tokenizer`` reads.

Needs ``transformers`` (``pip install 'fmcourse[hf]'``), imported only when an export is asked for.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fmcourse.models import GPT
from fmcourse.tokenizers import Tokenizer

TOKENIZER_FILE = "fmcourse_tokenizer.json"


def _transformers():
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            "exporting to Hugging Face needs the transformers package: pip install 'fmcourse[hf]' "
            "(or pip install transformers)"
        ) from error
    return transformers


def gpt2_config(model: GPT):
    """The ``transformers.GPT2Config`` with the sizes of ``model`` (no dropout, tied embeddings)."""
    if not isinstance(model, GPT):
        raise TypeError(f"only fmcourse's GPT can be exported as a GPT-2, got {type(model).__name__}")
    c = model.config
    if c.positional != "learned":
        raise ValueError(f"GPT-2 has learned absolute positions; this GPT uses positional={c.positional!r}, "
                         f"which a GPT2LMHeadModel cannot represent")
    transformers = _transformers()
    return transformers.GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.context_length, n_embd=c.d_model, n_layer=c.n_layer,
        n_head=c.n_head, n_inner=4 * c.d_model, activation_function="gelu_new",  # GELU, tanh approximation
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=model.norm.eps,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=None,
    )


def gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """``model``'s weights under GPT-2's names and layouts (linear weights transposed to ``(in, out)``)."""
    state = {
        "transformer.wte.weight": model.token_embedding.weight,
        "transformer.wpe.weight": model.position_embedding.weight,
        "transformer.ln_f.weight": model.norm.weight,
        "transformer.ln_f.bias": model.norm.bias,
    }
    for i, block in enumerate(model.blocks):
        prefix = f"transformer.h.{i}."
        for ours, theirs in ((block.norm1, "ln_1"), (block.norm2, "ln_2")):
            state[prefix + theirs + ".weight"], state[prefix + theirs + ".bias"] = ours.weight, ours.bias
        for ours, theirs in ((block.attn.qkv, "attn.c_attn"), (block.attn.out, "attn.c_proj"),
                             (block.mlp.fc, "mlp.c_fc"), (block.mlp.proj, "mlp.c_proj")):
            state[prefix + theirs + ".weight"] = ours.weight.T  # Conv1D: (in, out)
            state[prefix + theirs + ".bias"] = ours.bias
    return {name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in state.items()}


def to_huggingface(model: GPT, path: str | Path | None = None, *, tokenizer: Tokenizer | None = None):
    """A ``transformers.GPT2LMHeadModel`` (eval mode, on the CPU) computing the same logits as ``model``.

    With ``path``, it is also written there with ``save_pretrained`` (``config.json`` and
    ``model.safetensors``), with ``tokenizer`` as ``fmcourse_tokenizer.json`` when given.
    """
    config = gpt2_config(model)
    transformers = _transformers()
    hf_model = transformers.GPT2LMHeadModel(config)
    missing, unexpected = hf_model.load_state_dict(gpt2_state_dict(model), strict=False)
    # lm_head.weight is tied to wte (nothing to load); attention-mask buffers are not weights.
    missing = [name for name in missing if name != "lm_head.weight" and not name.endswith(("attn.bias", "masked_bias"))]
    if missing or unexpected:
        raise RuntimeError(f"the GPT-2 of this transformers version does not match: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    hf_model.tie_weights()
    hf_model.eval()
    if path is not None:
        folder = Path(path)
        hf_model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save(folder / TOKENIZER_FILE)
    return hf_model
