"""A speech world with exact transcripts, offline: words and phrases spoken by the eSpeak NG synthesizer.

    wave = synthesize("seven three one", voice="en-us+f2", rate=160, pitch=60)   # (T,) at 11,025 Hz
    clips = speech_clips(utterances(400, TRAIN_VOICES, train_phrases, seed=0), augment=True, seed=0)
    clips.waveforms[0], clips.texts[0]                                          # audio and its transcript

eSpeak NG is a formant synthesizer: it builds each sound from a source (a pulse train for voiced
sounds, noise for fricatives) filtered by resonances (the formants) that move from phoneme to
phoneme, with durations and a pitch contour from rules. The PyPI package ``espeakng-loader`` ships it
as a shared library with its voice data (GPL-3.0; the course uses it as an installed library and
copies nothing of it); this module drives it through ``ctypes``. It speaks in milliseconds per clip,
with many accents and voice variants and controls for pitch and rate.

The phrases: digit strings ("seven three one"), spoken commands ("turn left") and the captions of the
shapes world ("a small red circle at the top left"). ``split_phrases`` holds out some phrases, and
``TRAIN_VOICES`` / ``TEST_VOICES`` hold out whole voices, so a recognizer can be tested on speech it
never heard. Its output can differ in the last bits from run to run, so clips are synthesized once
and cached (in ``fmcourse.env.cache_dir() / "speech"``).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import math
import random
import threading
from dataclasses import asdict, dataclass

import torch

from fmcourse import env
from fmcourse.data.files import atomic_path
from fmcourse.data.shapes import COLOURS, POSITIONS, SHAPES, SIZES

NATIVE_RATE = 22_050     # eSpeak NG's output rate
SAMPLE_RATE = 11_025     # the course's speech rate: half, enough for formants up to 5.5 kHz
ALPHABET = " abcdefghijklmnopqrstuvwxyz'"   # the characters a transcript may hold
INSTALL_HINT = 'pip install "fmcourse[speech]"'
CACHE_VERSION = 2

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COMMANDS = ("go", "stop", "yes", "no", "turn left", "turn right", "move up", "move down", "start the timer",
            "stop the music", "open the door", "close the window", "lights on", "lights off")

_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbcwmd")
_VARIANTS = ("m1", "m2", "m3", "m6", "f1", "f2", "f3", "Alex", "Michael", "Annie")
TRAIN_VOICES = tuple(f"{accent}+{variant}" for accent in _ACCENTS for variant in _VARIANTS)
# never heard in training: unseen variants, unseen accents, or both
TEST_VOICES = ("en+m4", "en-us+f4", "en-gb-scotland+Andy", "en-gb-x-rp+linda", "en-029+m7", "en-us-nyc+f5",
               "en-029+f1", "en-us-nyc+m2")


class SpeechLibraryError(RuntimeError):
    """The eSpeak NG library could not be loaded (``espeakng-loader`` missing or broken)."""


class _Espeak:
    """The eSpeak NG shared library, initialised once, in synchronous mode (audio handed to a callback)."""

    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
    _RATE, _PITCH = 1, 3                          # espeak_PARAMETER values

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as error:
            raise SpeechLibraryError(
                f"the speech world needs the eSpeak NG synthesizer from the package espeakng-loader: {INSTALL_HINT}"
            ) from error
        try:
            self.lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
            data = str(espeakng_loader.get_data_path()).encode()
        except OSError as error:
            raise SpeechLibraryError(f"the eSpeak NG library of espeakng-loader does not load ({error}); "
                                     f"reinstall it: {INSTALL_HINT}") from error
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        rate = self.lib.espeak_Initialize(2, 0, data, 0)           # 2 = AUDIO_OUTPUT_SYNCHRONOUS
        if rate != NATIVE_RATE:
            raise SpeechLibraryError(f"eSpeak NG did not start (it answered {rate}); reinstall it: {INSTALL_HINT}")
        self.chunks: list[torch.Tensor] = []
        self.callback = self._CALLBACK(self._receive)              # kept alive as long as the library
        self.lib.espeak_SetSynthCallback(self.callback)
        self.lock = threading.Lock()

    def _receive(self, samples, count, events) -> int:
        if count > 0:
            self.chunks.append(torch.tensor(samples[:count], dtype=torch.int16))
        return 0                                                    # 0: go on

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> torch.Tensor:
        """int16 samples ``(T,)`` at NATIVE_RATE."""
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}; try one of TRAIN_VOICES, e.g. 'en-us+f2'")
            self.lib.espeak_SetParameter(self._RATE, rate, 0)
            self.lib.espeak_SetParameter(self._PITCH, pitch, 0)
            self.chunks = []
            encoded = text.encode() + b"\0"
            self.lib.espeak_Synth(encoded, len(encoded), 0, 1, 0, 0, None, None)   # 1 = POS_CHARACTER
            self.lib.espeak_Synchronize()
            chunks, self.chunks = self.chunks, []
        return torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.int16)


_INSTANCE: _Espeak | None = None


def _espeak() -> _Espeak:
    """The library, loaded on first use (so that importing this module never needs it)."""
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = _Espeak()
    return _INSTANCE


def available() -> bool:
    """Whether eSpeak NG loads here."""
    try:
        _espeak()
    except SpeechLibraryError:
        return False
    return True


def check_text(text, alphabet: str = ALPHABET) -> str:
    """``text`` if it is a non-empty string of characters from ``alphabet``; a clear error otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("text is empty: there is nothing to say")
    unknown = sorted(set(text) - set(alphabet))
    if unknown:
        raise ValueError(f"text {text!r} has characters outside the alphabet {alphabet!r}: {unknown}; "
                         "write numbers as words and use lower case")
    return text


def lowpass(waveform: torch.Tensor, cutoff: float, half_width: int = 16) -> torch.Tensor:
    """``(T,)`` filtered by a Hann-windowed sinc: frequencies above ``cutoff`` (a fraction of Nyquist,
    in (0, 1]) removed. Same length."""
    offsets = torch.arange(-half_width, half_width + 1, dtype=torch.float32)
    kernel = cutoff * torch.sinc(cutoff * offsets) * (0.5 + 0.5 * torch.cos(math.pi * offsets / (half_width + 1)))
    kernel = kernel / kernel.sum()                                  # gain 1 at 0 Hz
    return torch.nn.functional.conv1d(waveform.view(1, 1, -1), kernel.view(1, 1, -1), padding=half_width).view(-1)


def resample(waveform: torch.Tensor, from_rate: float, to_rate: float) -> torch.Tensor:
    """``(T,)`` at ``from_rate`` Hz to ``(round(T to_rate / from_rate),)`` at ``to_rate`` Hz: low-passed
    below the new Nyquist frequency when going down (no aliasing), then linearly interpolated."""
    if not isinstance(waveform, torch.Tensor) or waveform.dim() != 1 or waveform.numel() == 0:
        raise ValueError("resample takes a non-empty (samples,) waveform tensor")
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
    ratio = to_rate / from_rate
    if ratio < 1:
        waveform = lowpass(waveform.float(), ratio)
    n_out = max(1, round(waveform.numel() * ratio))
    t = torch.arange(n_out, dtype=torch.float64) / ratio            # each output sample's instant, in input samples
    left = t.floor().long().clamp(max=waveform.numel() - 1)
    right = (left + 1).clamp(max=waveform.numel() - 1)
    w = (t - left).float().clamp(0, 1)
    waveform = waveform.float()
    return waveform[left] * (1 - w) + waveform[right] * w


def synthesize(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50,
               sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """``text`` spoken by eSpeak NG: float32 ``(T,)`` in [-1, 1] at ``sample_rate`` Hz.

    ``voice``: an accent with an optional variant, ``"en-us+f2"``; ``rate``: words per minute (80–450);
    ``pitch``: 0–100 (50 is the voice's own). Raises SpeechLibraryError when eSpeak NG cannot load.
    """
    check_text(text)
    if not 80 <= rate <= 450 or not 0 <= pitch <= 100:
        raise ValueError(f"rate must be in [80, 450] words per minute and pitch in [0, 100], got {rate}, {pitch}")
    samples = _espeak().speak(text, voice, int(rate), int(pitch)).float() / 32768.0
    if samples.numel() == 0:
        raise RuntimeError(f"eSpeak NG produced no audio for {text!r} with voice {voice!r}")
    return samples if sample_rate == NATIVE_RATE else resample(samples, NATIVE_RATE, sample_rate)


# --- the phrases --------------------------------------------------------------------------------------

def digit_phrases(max_digits: int = 3) -> list[str]:
    """Every string of 1 to ``max_digits`` digit words: "zero", ..., "nine nine nine"."""
    phrases, level = [], [()]
    for _ in range(max_digits):
        level = [p + (d,) for p in level for d in DIGITS]
        phrases += [" ".join(p) for p in level]
    return phrases


def caption_phrases() -> list[str]:
    """Every caption of the shapes world: "a small red circle at the top left"."""
    return [f"a {size} {colour} {shape} at the {position}"
            for size in SIZES for colour in COLOURS for shape in SHAPES for position in POSITIONS]


@dataclass(frozen=True)
class PhraseSplit:
    """Phrases for training and phrases held out (never heard in training), by kind."""

    train: dict[str, list[str]]
    test: dict[str, list[str]]


def split_phrases(test_fraction: float = 0.2, seed: int = 0) -> PhraseSplit:
    """Digit strings and captions split at random into train and test; the commands, few, stay in both."""
    rng = random.Random(seed)
    train, test = {}, {}
    for kind, phrases in (("digits", digit_phrases()), ("captions", caption_phrases())):
        shuffled = phrases[:]
        rng.shuffle(shuffled)
        cut = round(len(shuffled) * test_fraction)
        test[kind], train[kind] = sorted(shuffled[:cut]), sorted(shuffled[cut:])
    train["commands"] = test["commands"] = list(COMMANDS)
    return PhraseSplit(train, test)


# --- utterances and clips ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Utterance:
    """What to synthesize: the text, the voice, the rate (words per minute) and the pitch (0–100)."""

    text: str
    voice: str
    rate: int
    pitch: int


def utterances(n: int, voices, phrases: dict[str, list[str]], seed: int = 0,
               weights: dict[str, float] | None = None, rate: tuple[int, int] = (130, 210),
               pitch: tuple[int, int] = (25, 75)) -> list[Utterance]:
    """``n`` utterances: a kind of phrase (by ``weights``, default digits 0.6, commands 0.2, captions
    0.2), a phrase of it, a voice, a rate and a pitch, drawn uniformly and seeded."""
    if not voices:
        raise ValueError("give at least one voice")
    weights = weights or {"digits": 0.6, "commands": 0.2, "captions": 0.2}
    kinds = [k for k in weights if phrases.get(k)]
    if not kinds:
        raise ValueError(f"no phrases of the kinds {list(weights)}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        out.append(Utterance(rng.choice(phrases[kind]), rng.choice(list(voices)),
                             rng.randint(*rate), rng.randint(*pitch)))
    return out


@dataclass
class SpeechClips:
    """Waveforms (a list of float32 ``(T_i,)`` at ``sample_rate``), their transcripts and how each was made."""

    waveforms: list[torch.Tensor]
    texts: list[str]
    utterances: list[Utterance]
    sample_rate: int = SAMPLE_RATE

    def __len__(self) -> int:
        return len(self.texts)


def _cache_file(items: list[Utterance], sample_rate: int):
    key = json.dumps([CACHE_VERSION, sample_rate, [asdict(u) for u in items]]).encode()
    return env.cache_dir() / "speech" / f"{hashlib.sha256(key).hexdigest()[:24]}.safetensors"


def synthesize_all(items: list[Utterance], sample_rate: int = SAMPLE_RATE, cache: bool = True) -> list[torch.Tensor]:
    """The waveforms of ``items``, synthesized once and then read from the cache (int16 safetensors)."""
    from safetensors.torch import load_file, save_file

    path = _cache_file(items, sample_rate)
    if cache and path.exists():
        stored = load_file(path)
        lengths = stored["lengths"].tolist()
        if len(lengths) == len(items):
            return [w.float() / 32768.0 for w in stored["samples"].split(lengths)]
    waves = [synthesize(u.text, u.voice, u.rate, u.pitch, sample_rate) for u in items]
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = torch.cat([(w * 32768.0).round().clamp(-32768, 32767).short() for w in waves])
        with atomic_path(path) as tmp:
            save_file({"samples": samples, "lengths": torch.tensor([len(w) for w in waves])}, str(tmp))
    return waves


def augment(waveform: torch.Tensor, generator: torch.Generator, speed: tuple[float, float] = (0.9, 1.1),
            gain: tuple[float, float] = (0.3, 1.0), snr_db: tuple[float, float] = (10.0, 40.0)) -> torch.Tensor:
    """A random variant of ``(T,)``: played faster or slower (pitch and tempo together), scaled, and with
    white noise at a signal-to-noise ratio drawn from ``snr_db``."""
    def draw(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=generator).item()

    out = resample(waveform, draw(*speed), 1.0)
    out = out * (draw(*gain) / out.abs().max().clamp_min(1e-6))
    noise = torch.randn(out.shape, generator=generator)
    noise_power = out.pow(2).mean() / 10 ** (draw(*snr_db) / 10)
    return (out + noise * noise_power.sqrt()).clamp(-1, 1)


def speech_clips(items: list[Utterance], augmented: bool = False, seed: int = 0,
                 sample_rate: int = SAMPLE_RATE, cache: bool = True) -> SpeechClips:
    """The clips of ``items`` (cached), optionally augmented (seeded: same seed, same clips)."""
    waves = synthesize_all(items, sample_rate, cache)
    if augmented:
        generator = torch.Generator().manual_seed(seed)
        waves = [augment(w, generator) for w in waves]
    return SpeechClips(waves, [u.text for u in items], list(items), sample_rate)
