"""Models assembled from fmcourse.nn: a GPT (decoder-only), a BERT-style encoder, an encoder–decoder,
and their costs;
contrastive models: image encoders, SimCLR and a CLIP-style dual encoder;
recommenders: popularity, an item bigram, matrix factorization (a GPT over items is a GPT);
speech models: a CTC recognizer and a Tacotron-style synthesizer;
vision: a ResNet, a YOLO-style grid detector, a VQ-VAE image tokenizer with a GPT prior (text to image)."""

from fmcourse.models.contrastive import CLIP, ConvEncoder, MLPEncoder, SimCLR, TextEncoder, projection_head
from fmcourse.models.detector import DetectionTargets, GridDetector, detect, detection_loss, detection_targets
from fmcourse.models.cost import forward_flops, parameter_counts
from fmcourse.models.encoder import Encoder, EncoderConfig
from fmcourse.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from fmcourse.models.gpt import GPT, GPTConfig
from fmcourse.models.recommender import ItemBigram, MatrixFactorization, next_item_scores, popularity_scores, user_states
from fmcourse.models.speech import (RecognizerConfig, SpeechRecognizer, SpeechSynthesizer, SynthesizerConfig,
                                    load_speech_model, save_speech_model)
from fmcourse.models.resnet import ResNet
from fmcourse.models.text_to_image import HELD_OUT, AttributeJudge, TextToImage, VQVAE, caption_ids, is_held_out
from fmcourse.models.vision_shipped import load_vision, vision_info
from fmcourse.models.transformer import TransformerConfig, TransformerLM

__all__ = ["GPT", "Encoder", "EncoderConfig", "EncoderDecoder", "EncoderDecoderConfig", "GPTConfig", "TransformerConfig", "TransformerLM",
           "forward_flops", "parameter_counts",
           "CLIP", "ConvEncoder", "MLPEncoder", "SimCLR", "TextEncoder", "projection_head",
           "ItemBigram", "MatrixFactorization", "next_item_scores", "popularity_scores", "user_states",
           "RecognizerConfig", "SpeechRecognizer", "SpeechSynthesizer", "SynthesizerConfig", "load_speech_model",
           "save_speech_model",
           "ResNet", "GridDetector", "DetectionTargets", "detect", "detection_loss", "detection_targets",
           "VQVAE", "TextToImage", "AttributeJudge", "caption_ids", "HELD_OUT", "is_held_out", "load_vision", "vision_info"]
