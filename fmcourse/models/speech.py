"""Speech models: a recognizer (speech to text, trained with CTC) and a synthesizer (text to speech,
Tacotron style), both Transformers over log-mel frames.

    asr = SpeechRecognizer(RecognizerConfig())
    batch = speech_batch(clips, asr.features)            # padded log-mels, lengths, transcripts as ids
    loss = ctc_loss(asr, batch)                          # F.ctc_loss over the recognizer's frames
    asr.transcribe(waveforms)                            # ["seven three one", ...] by greedy CTC

    tts = SpeechSynthesizer(SynthesizerConfig())
    loss = tts_loss(tts, tts_batch(texts, log_mels, tts.config))
    log_mel, alignment = tts.synthesize("turn left")     # (frames, n_mels), (decoder steps, characters)

The recognizer: log-mel ``(B, T, n_mels)`` -> two 1-D convolutions (the second with stride 3: one
output frame per 30 ms) -> sinusoidal positions -> Transformer encoder blocks -> a linear layer to the
characters plus the CTC *blank* (id 0). The synthesizer: characters -> embedding -> convolutions ->
Transformer encoder (the memory); the mel frames so far, ``reduction`` frames per decoder step, ->
a pre-net (two layers with dropout kept on, as in Tacotron) -> causal Transformer decoder blocks that
also attend to the memory -> the next ``reduction`` frames, a residual post-net, and a stop score.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fmcourse.audio import MelFeatures, griffin_lim
from fmcourse.data.speech import ALPHABET, SAMPLE_RATE, check_text
from fmcourse.decoding import ctc_greedy
from fmcourse.nn import Block, sinusoidal_positions

BLANK = 0   # CTC's blank (recognizer) and padding (synthesizer): characters are 1..len(ALPHABET)


def text_to_ids(text: str, alphabet: str = ALPHABET) -> list[int]:
    """Character ids ``1..len(alphabet)`` of ``text``; a clear error for a character with no symbol."""
    check_text(text, alphabet)
    return [alphabet.index(c) + 1 for c in text]


def ids_to_text(ids, alphabet: str = ALPHABET) -> str:
    """The inverse of ``text_to_ids`` (0, the blank or padding, is skipped)."""
    return "".join(alphabet[i - 1] for i in ids if i != BLANK)


def _check_features(log_mel: torch.Tensor, n_mels: int) -> None:
    if not isinstance(log_mel, torch.Tensor) or log_mel.dim() != 3 or log_mel.size(-1) != n_mels:
        shape = tuple(log_mel.shape) if isinstance(log_mel, torch.Tensor) else type(log_mel).__name__
        raise ValueError(f"log-mel features must be (batch, frames, n_mels={n_mels}), got {shape}")
    if log_mel.size(1) == 0:
        raise ValueError("log-mel features have 0 frames")


def _lengths_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, T)`` bool, True at real positions."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


# --- batches ----------------------------------------------------------------------------------------------

def pad_features(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A list of ``(T_i, n_mels)`` -> padded ``(B, max T_i, n_mels)`` (padded with the smallest value,
    silence) and lengths ``(B,)``."""
    lengths = torch.tensor([len(f) for f in features])
    padded = torch.full((len(features), int(lengths.max()), features[0].size(-1)), float(min(f.min() for f in features)))
    for i, f in enumerate(features):
        padded[i, :len(f)] = f
    return padded, lengths


def pad_ids(texts: list[str], alphabet: str = ALPHABET) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> character ids ``(B, L)`` padded with 0, and lengths ``(B,)``."""
    ids = [text_to_ids(t, alphabet) for t in texts]
    padded = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
    for row, i in zip(padded, ids):
        row[:len(i)] = torch.tensor(i)
    return padded, torch.tensor([len(i) for i in ids])


def speech_batch(waveforms: list[torch.Tensor], texts: list[str] | None, features: MelFeatures,
                 sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, ...]:
    """Waveforms ``(T_i,)`` and transcripts -> ``(log_mel (B, T, n_mels), lengths (B,), targets (B, L),
    target_lengths (B,))``, targets padded with 0; only the first two without texts."""
    if not waveforms:
        raise ValueError("no waveforms")
    features.check_rate(sample_rate)
    log_mel, lengths = pad_features([features(w) for w in waveforms])
    if texts is None:
        return log_mel, lengths
    if len(texts) != len(waveforms):
        raise ValueError(f"{len(waveforms)} waveforms for {len(texts)} transcripts")
    return (log_mel, lengths, *pad_ids(texts))


# --- the recognizer ---------------------------------------------------------------------------------------

@dataclass
class RecognizerConfig:
    """Sizes of the recognizer; ``features`` are the log-mels it reads (their sample rate is checked)."""

    d_model: int = 96
    n_head: int = 4
    n_layer: int = 3
    dropout: float = 0.1
    max_frames: int = 1024            # the longest input, in feature frames
    alphabet: str = ALPHABET
    features: dict = field(default_factory=lambda: asdict(MelFeatures()))


class SpeechRecognizer(nn.Module):
    """Log-mel ``(B, T, n_mels)`` and lengths ``(B,)`` -> CTC log-probabilities ``(B, T', 1 + len(alphabet))``
    and output lengths ``(B,)``, ``T' = ceil(T / 3)``."""

    def __init__(self, config: RecognizerConfig):
        super().__init__()
        if not isinstance(config, RecognizerConfig):
            raise TypeError(f"SpeechRecognizer needs a RecognizerConfig, got {type(config).__name__}")
        self.config = c = config
        self.features = MelFeatures(**c.features)
        n_mels = self.features.n_mels
        self.front = nn.Sequential(
            nn.Conv1d(n_mels, c.d_model, kernel_size=5, padding=2), nn.GELU(),
            nn.Conv1d(c.d_model, c.d_model, kernel_size=5, stride=3, padding=2), nn.GELU(),
        )
        self.register_buffer("positions", sinusoidal_positions((c.max_frames + 2) // 3, c.d_model), persistent=False)
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c.d_model, c.n_head, c.dropout) for _ in range(c.n_layer))
        self.norm = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, 1 + len(c.alphabet))

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """Frames after the stride-3 convolution: ``ceil(T / 3)``."""
        return (lengths + 2) // 3

    def forward(self, log_mel: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        n_mels = self.features.n_mels
        _check_features(log_mel, n_mels)
        B, T, _ = log_mel.shape
        if T > self.config.max_frames:
            raise ValueError(f"{T} frames exceed the recognizer's max_frames={self.config.max_frames}")
        lengths = torch.full((B,), T, device=log_mel.device) if lengths is None else lengths.to(log_mel.device)
        real = _lengths_mask(lengths, T)[..., None]                                      # (B, T, 1)
        # normalise each utterance (a louder recording only shifts its log-mels)
        count = (real.sum((1, 2)) * n_mels).clamp_min(1)
        mean = (log_mel * real).sum((1, 2)) / count
        std = (((log_mel - mean[:, None, None]) * real).pow(2).sum((1, 2)) / count).sqrt().clamp_min(1e-3)
        x = ((log_mel - mean[:, None, None]) / std[:, None, None]) * real
        x = self.front(x.transpose(1, 2)).transpose(1, 2)                                 # (B, T', d)
        out_lengths = self.output_lengths(lengths)
        is_token = _lengths_mask(out_lengths, x.size(1))
        x = self.dropout(x + self.positions[:x.size(1)])
        for block in self.blocks:
            x = block(x, is_token)
        return self.head(self.norm(x)).log_softmax(-1), out_lengths

    @torch.no_grad()
    def transcribe(self, waveforms: list[torch.Tensor], sample_rate: int = SAMPLE_RATE,
                   batch_size: int = 64) -> list[str]:
        """Greedy CTC transcripts of waveforms ``(T_i,)`` at ``sample_rate`` (checked against the features)."""
        if isinstance(waveforms, torch.Tensor):
            waveforms = [waveforms] if waveforms.dim() == 1 else list(waveforms)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        texts = []
        for start in range(0, len(waveforms), batch_size):
            log_mel, lengths = speech_batch(waveforms[start:start + batch_size], None, self.features, sample_rate)
            log_probs, lengths = self(log_mel.to(device), lengths.to(device))
            texts += [ids_to_text(ids, self.config.alphabet) for ids in ctc_greedy(log_probs.cpu(), lengths.cpu())]
        self.train(was_training)
        return texts


def ctc_loss(model: SpeechRecognizer, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean CTC loss per target character of a ``speech_batch`` (``F.ctc_loss``, blank 0)."""
    log_mel, lengths, targets, target_lengths = batch
    log_probs, out_lengths = model(log_mel, lengths)
    return F.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, target_lengths,
                      blank=BLANK, reduction="mean", zero_infinity=True)


# --- the synthesizer --------------------------------------------------------------------------------------

@dataclass
class SynthesizerConfig:
    """Sizes of the synthesizer. ``reduction`` mel frames come out of each decoder step; the log-mels
    are modelled as ``(log_mel - mel_mean) / mel_scale``; ``features`` are the mels it writes."""

    d_model: int = 80
    n_head: int = 4
    n_layer: int = 1
    n_decoder_layer: int = 2
    prenet: int = 80
    prenet_dropout: float = 0.5
    dropout: float = 0.1
    reduction: int = 4
    max_text: int = 64
    max_steps: int = 100
    mel_mean: float = -1.0
    mel_scale: float = 1.5
    alphabet: str = ALPHABET
    features: dict = field(default_factory=lambda: asdict(MelFeatures()))


class SpeechSynthesizer(nn.Module):
    """Text ids ``(B, S)`` and the mel frames so far -> the next frames: ``forward(ids, frames_in)``
    with frames_in ``(B, steps, reduction * n_mels)`` (normalised; step 0 is zeros) returns mel
    ``(B, steps, reduction * n_mels)``, refined mel (post-net), stop logits ``(B, steps)`` and the
    decoder's cross-attention weights, one ``(B, n_head, steps, S)`` per layer."""

    def __init__(self, config: SynthesizerConfig):
        super().__init__()
        if not isinstance(config, SynthesizerConfig):
            raise TypeError(f"SpeechSynthesizer needs a SynthesizerConfig, got {type(config).__name__}")
        self.config = c = config
        self.features = MelFeatures(**c.features)
        frame = c.reduction * self.features.n_mels
        self.embedding = nn.Embedding(1 + len(c.alphabet), c.d_model, padding_idx=BLANK)
        self.text_convs = nn.ModuleList(nn.Conv1d(c.d_model, c.d_model, 5, padding=2) for _ in range(2))
        self.encoder_blocks = nn.ModuleList(Block(c.d_model, c.n_head, c.dropout) for _ in range(c.n_layer))
        self.encoder_norm = nn.LayerNorm(c.d_model)
        self.prenet = nn.ModuleList([nn.Linear(frame, c.prenet), nn.Linear(c.prenet, c.prenet)])
        self.prenet_out = nn.Linear(c.prenet, c.d_model)
        positions = torch.cat([sinusoidal_positions(c.max_text, c.d_model), sinusoidal_positions(c.max_steps, c.d_model)])
        self.register_buffer("positions", positions, persistent=False)
        self.text_position_scale = nn.Parameter(torch.ones(()))
        self.step_position_scale = nn.Parameter(torch.ones(()))
        self.decoder_blocks = nn.ModuleList(Block(c.d_model, c.n_head, c.dropout, causal=True, cross=True)
                                            for _ in range(c.n_decoder_layer))
        self.decoder_norm = nn.LayerNorm(c.d_model)
        self.to_frames = nn.Linear(c.d_model, frame)
        self.to_stop = nn.Linear(c.d_model, 1)
        n_mels = self.features.n_mels
        self.postnet = nn.Sequential(nn.Conv1d(n_mels, 64, 5, padding=2), nn.Tanh(), nn.Conv1d(64, n_mels, 5, padding=2))

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids ``(B, S)`` (0 = padding) -> memory ``(B, S, d_model)`` and its mask ``(B, S)``."""
        if ids.dim() != 2 or ids.size(1) > self.config.max_text:
            raise ValueError(f"ids must be (batch, length <= {self.config.max_text}), got {tuple(ids.shape)}")
        is_token = ids != BLANK
        x = self.embedding(ids)
        for conv in self.text_convs:
            x = x + F.relu(conv(x.transpose(1, 2))).transpose(1, 2) * is_token[..., None]
        x = x + self.text_position_scale * self.positions[:ids.size(1)]
        for block in self.encoder_blocks:
            x = block(x, is_token)
        return self.encoder_norm(x), is_token

    def decode(self, frames_in: torch.Tensor, memory: torch.Tensor, memory_is_token: torch.Tensor):
        c = self.config
        if frames_in.size(1) > c.max_steps:
            raise ValueError(f"{frames_in.size(1)} decoder steps exceed max_steps={c.max_steps}")
        x = frames_in
        for layer in self.prenet:                                  # dropout on also in evaluation (Tacotron)
            x = F.dropout(F.relu(layer(x)), c.prenet_dropout, training=True)
        x = self.prenet_out(x) + self.step_position_scale * self.positions[c.max_text:c.max_text + x.size(1)]
        maps = []
        for block in self.decoder_blocks:
            x, (_, cross) = block(x, None, need_weights=True, memory=memory, memory_is_token=memory_is_token)
            maps.append(cross)
        x = self.decoder_norm(x)
        mel = self.to_frames(x)                                    # (B, steps, r * n_mels)
        return mel, self.to_stop(x).squeeze(-1), maps

    def refine(self, mel: torch.Tensor) -> torch.Tensor:
        """Post-net: ``(B, steps, r * n_mels)`` plus a residual computed over frames."""
        B, steps, _ = mel.shape
        frames = mel.reshape(B, steps * self.config.reduction, -1).transpose(1, 2)     # (B, n_mels, frames)
        return mel + self.postnet(frames).transpose(1, 2).reshape(B, steps, -1)

    def forward(self, ids: torch.Tensor, frames_in: torch.Tensor):
        memory, is_token = self.encode(ids)
        mel, stop, maps = self.decode(frames_in, memory, is_token)
        return mel, self.refine(mel), stop, maps

    def normalise(self, log_mel: torch.Tensor) -> torch.Tensor:
        return (log_mel - self.config.mel_mean) / self.config.mel_scale

    def denormalise(self, mel: torch.Tensor) -> torch.Tensor:
        return mel * self.config.mel_scale + self.config.mel_mean

    @torch.no_grad()
    def synthesize(self, text: str, max_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel ``(frames, n_mels)`` for ``text``, generated step by step until the stop score says
        so, and the alignment ``(steps, characters)``: the last decoder layer's cross-attention, averaged
        over heads. A character outside the alphabet is a clear ValueError."""
        c = self.config
        ids = torch.tensor([text_to_ids(text, c.alphabet)])
        if ids.size(1) > c.max_text:
            raise ValueError(f"text of {ids.size(1)} characters exceeds max_text={c.max_text}")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        memory, is_token = self.encode(ids.to(device))
        frames = torch.zeros(1, 1, c.reduction * self.features.n_mels, device=device)
        for _ in range(max_steps or c.max_steps):
            mel, stop, maps = self.decode(frames, memory, is_token)
            frames = torch.cat([frames, mel[:, -1:]], dim=1)
            if stop[0, -1] > 0:
                break
        refined = self.refine(frames[:, 1:])
        self.train(was_training)
        log_mel = self.denormalise(refined).reshape(-1, self.features.n_mels)
        return log_mel.cpu(), maps[-1][0].mean(0).cpu()

    def to_waveform(self, log_mel: torch.Tensor, n_iter: int = 32) -> torch.Tensor:
        """A waveform for log-mel ``(frames, n_mels)``: mel -> STFT magnitude -> Griffin-Lim."""
        f = self.features
        return griffin_lim(f.to_magnitude(log_mel), f.n_fft, f.hop, n_iter=n_iter)


def tts_batch(texts: list[str], log_mels: list[torch.Tensor], config: SynthesizerConfig) -> tuple[torch.Tensor, ...]:
    """Texts and their log-mels ``(T_i, n_mels)`` -> ``(ids (B, S), frames (B, steps, r n_mels), steps (B,),
    text_lengths (B,))``: frames normalised, padded with the clip's silence to a multiple of r."""
    if len(texts) != len(log_mels) or not texts:
        raise ValueError(f"give one log-mel per text (got {len(texts)} texts, {len(log_mels)} log-mels)")
    r = config.reduction
    steps = torch.tensor([math.ceil(len(m) / r) for m in log_mels])
    n_mels = log_mels[0].size(-1)
    frames = torch.full((len(texts), int(steps.max()) * r, n_mels), config.mel_mean + 0.0)
    for i, m in enumerate(log_mels):
        frames[i, :len(m)] = m
        frames[i, len(m):] = m.min()                      # silence after the end
    frames = (frames - config.mel_mean) / config.mel_scale
    padded_ids, text_lengths = pad_ids(texts, config.alphabet)
    return padded_ids, frames.reshape(len(texts), int(steps.max()), r * n_mels), steps, text_lengths


def guided_attention_weights(steps: torch.Tensor, text_lengths: torch.Tensor, T: int, S: int,
                             width: float = 0.2) -> torch.Tensor:
    """``(B, T, S)`` penalties ``1 - exp(-(s / S_b - t / T_b)^2 / (2 width^2))``: small near the
    diagonal, where a monotonic alignment of step t to character s lies (Tachibana et al., 2018)."""
    t = torch.arange(T)[None, :, None] / steps[:, None, None].clamp_min(1)
    s = torch.arange(S)[None, None, :] / text_lengths[:, None, None].clamp_min(1)
    return 1 - torch.exp(-((s - t) ** 2) / (2 * width ** 2))


def tts_loss(model: SpeechSynthesizer, batch: tuple[torch.Tensor, ...], guide: float = 1.0) -> torch.Tensor:
    """L1 on the frames (before and after the post-net) + stop-score cross-entropy (every step) + ``guide`` times the
    guided-attention penalty on every decoder layer's cross-attention, over the real steps."""
    ids, frames, steps, text_lengths = batch
    frames_in = torch.cat([torch.zeros_like(frames[:, :1]), frames[:, :-1]], dim=1)     # teacher forcing
    mel, refined, stop, maps = model(ids, frames_in)
    B, T, _ = frames.shape
    real = _lengths_mask(steps, T)                          # (B, T)
    weight = real[..., None].float() / (real.sum() * frames.size(-1))
    reconstruction = ((mel - frames).abs() * weight).sum() + ((refined - frames).abs() * weight).sum()
    # stop target 1 from the last real step on (padding included), as Tacotron 2 does
    is_done = (torch.arange(T, device=frames.device)[None, :] >= (steps - 1)[:, None]).float()
    stop_loss = F.binary_cross_entropy_with_logits(stop, is_done)
    penalty = guided_attention_weights(steps.cpu(), text_lengths.cpu(), T, ids.size(1)).to(frames.device)
    text_real = (ids != BLANK)[:, None, :]
    mask = (real[..., None] & text_real).float()
    guided = sum((m * (penalty * mask)[:, None]).sum() / (mask.sum() * m.size(1)) for m in maps) / len(maps)
    return reconstruction + stop_loss + guide * guided


# --- saving and loading -----------------------------------------------------------------------------------

_KINDS = {"recognizer": (SpeechRecognizer, RecognizerConfig), "synthesizer": (SpeechSynthesizer, SynthesizerConfig)}


def save_speech_model(model: SpeechRecognizer | SpeechSynthesizer, path, info: dict | None = None) -> None:
    """Weights in float16 safetensors, with the config (and ``info``, JSON) in its metadata."""
    import json

    from safetensors.torch import save_file

    kind = next((k for k, (cls, _) in _KINDS.items() if isinstance(model, cls)), None)
    if kind is None:
        raise TypeError(f"expected a SpeechRecognizer or SpeechSynthesizer, got {type(model).__name__}")
    tensors = {k: v.detach().cpu().half().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"kind": kind, "config": json.dumps(asdict(model.config)),
                                            "info": json.dumps(info or {})})


def load_speech_model(path) -> tuple[SpeechRecognizer | SpeechSynthesizer, dict]:
    """A model saved by ``save_speech_model`` (float32, in eval mode) and its ``info``; a shipped name
    such as ``"speech_recognizer.safetensors"`` is looked up with ``fmcourse.shipped.path``."""
    import json
    from pathlib import Path

    from safetensors import safe_open

    from fmcourse import shipped

    path = Path(path)
    if not path.exists():
        path = shipped.path(str(path))
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
        tensors = {k: file.get_tensor(k).float() for k in file.keys()}
    if metadata.get("kind") not in _KINDS:
        raise ValueError(f"{path} is not a speech model saved by save_speech_model (metadata {sorted(metadata)})")
    cls, config_cls = _KINDS[metadata["kind"]]
    model = cls(config_cls(**json.loads(metadata["config"])))
    model.load_state_dict(tensors)
    return model.eval(), json.loads(metadata.get("info", "{}"))
