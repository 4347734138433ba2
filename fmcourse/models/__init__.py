"""Models assembled from fmcourse.nn: a GPT (decoder-only) and a BERT-style encoder, and their costs;
contrastive models: image encoders, SimCLR and a CLIP-style dual encoder."""

from fmcourse.models.contrastive import CLIP, ConvEncoder, MLPEncoder, SimCLR, TextEncoder, projection_head
from fmcourse.models.cost import forward_flops, parameter_counts
from fmcourse.models.encoder import Encoder, EncoderConfig
from fmcourse.models.gpt import GPT, GPTConfig
from fmcourse.models.transformer import TransformerConfig, TransformerLM

__all__ = ["GPT", "Encoder", "EncoderConfig", "GPTConfig", "TransformerConfig", "TransformerLM",
           "forward_flops", "parameter_counts",
           "CLIP", "ConvEncoder", "MLPEncoder", "SimCLR", "TextEncoder", "projection_head"]
