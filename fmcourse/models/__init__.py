"""Models assembled from fmcourse.nn: a GPT (decoder-only), a BERT-style encoder, an encoder–decoder,
and their costs;
contrastive models: image encoders, SimCLR and a CLIP-style dual encoder;
recommenders: popularity, an item bigram, matrix factorization (a GPT over items is a GPT);
speech models: a CTC recognizer and a Tacotron-style synthesizer."""

from fmcourse.models.contrastive import CLIP, ConvEncoder, MLPEncoder, SimCLR, TextEncoder, projection_head
from fmcourse.models.cost import forward_flops, parameter_counts
from fmcourse.models.encoder import Encoder, EncoderConfig
from fmcourse.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from fmcourse.models.gpt import GPT, GPTConfig
from fmcourse.models.recommender import ItemBigram, MatrixFactorization, next_item_scores, popularity_scores, user_states
from fmcourse.models.speech import (RecognizerConfig, SpeechRecognizer, SpeechSynthesizer, SynthesizerConfig,
                                    load_speech_model, save_speech_model)
from fmcourse.models.transformer import TransformerConfig, TransformerLM

__all__ = ["GPT", "Encoder", "EncoderConfig", "EncoderDecoder", "EncoderDecoderConfig", "GPTConfig", "TransformerConfig", "TransformerLM",
           "forward_flops", "parameter_counts",
           "CLIP", "ConvEncoder", "MLPEncoder", "SimCLR", "TextEncoder", "projection_head",
           "ItemBigram", "MatrixFactorization", "next_item_scores", "popularity_scores", "user_states",
           "RecognizerConfig", "SpeechRecognizer", "SpeechSynthesizer", "SynthesizerConfig", "load_speech_model",
           "save_speech_model"]
