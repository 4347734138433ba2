"""Neural-network building blocks: attention (teaching and fast paths, self- and cross-attention),
positions, Transformer blocks, convolutional and residual blocks, LoRA adapters, the key/value cache for generation."""

from fmcourse.nn.attention import (
    CrossAttention,
    KVCache,
    LayerKV,
    MultiHeadAttention,
    attention,
    attention_weights,
    causal_mask,
    padding_mask,
    set_fast_attention,
)
from fmcourse.nn.conv import ResidualBlock, conv_norm
from fmcourse.nn.blocks import MLP, Block, mean_over_tokens
from fmcourse.nn.lora import LoRALinear
from fmcourse.nn.positional import Rotary, sinusoidal_positions

__all__ = [
    "CrossAttention",
    "ResidualBlock",
    "conv_norm",
    "KVCache",
    "LayerKV",
    "mean_over_tokens",
    "MLP",
    "Block",
    "LoRALinear",
    "MultiHeadAttention",
    "Rotary",
    "attention",
    "attention_weights",
    "causal_mask",
    "padding_mask",
    "set_fast_attention",
    "sinusoidal_positions",
]
