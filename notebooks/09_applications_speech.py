# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown] slideshow={"slide_type": "slide"}
# # 09 · Applications in speech: recognition and synthesis
#
# **Seed section 6.3 语音识别 (speech recognition): 语音转文本 (speech to text) and 语音合成 (speech
# synthesis).**
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fmcourse_unpublished/fmcourse/blob/v0.1.0/notebooks/09_applications_speech.ipynb)
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/fmcourse_unpublished/fmcourse/v0.1.0?urlpath=lab/tree/notebooks/09_applications_speech.ipynb)
#
# Speech is a sequence too, but not of tokens: a microphone gives some ten thousand numbers a second.
# This chapter turns those numbers into frames a Transformer can read (the spectrogram), trains a
# recognizer that writes what it hears without ever being told which frame belongs to which letter
# (CTC), and a synthesizer that goes the other way, text to spectrogram to sound, learning by itself
# where to look in the text (attention). All the speech is made on the spot by a formant synthesizer,
# so every clip comes with its exact transcript, the voices used for testing are never heard in
# training, and nothing is downloaded.
#
# **In this notebook you will**
# - compute the short-time Fourier transform and a log-mel spectrogram with torch, and listen to clips;
# - make a speech world with the eSpeak NG synthesizer: digits, commands and the shapes world's
#   captions, spoken by many voices at many pitches and rates, with noise, gain and speed changes;
# - write the CTC collapse, train a recognizer (log-mels → convolutions → Transformer encoder → CTC)
#   live for a few seconds, and measure the shipped one's character and word error rates on voices it
#   never heard, with the alignment CTC found drawn over the spectrogram;
# - write an iteration of Griffin-Lim, then make a Tacotron-style synthesizer speak: text → encoder →
#   attention → mel frames → waveform; look at its alignment, listen, and let the recognizer score it.
#
# **Time on a laptop CPU:** — for the whole notebook.

# %% slideshow={"slide_type": "skip"}
# Setup: on Colab (or any fresh kernel) install what this chapter needs, once; elsewhere this does nothing.
import importlib.util
import subprocess
import sys

COURSE = "fmcourse[speech] @ git+https://github.com/fmcourse_unpublished/fmcourse@v0.1.0"
if any(importlib.util.find_spec(module) is None for module in ("fmcourse", "espeakng_loader")):
    print(f"Installing {COURSE}: a minute or two, pip's progress follows", flush=True)
    subprocess.check_call([sys.executable, "-m", "pip", "install", COURSE])

from fmcourse import env
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import Audio, display

from fmcourse import audio, decoding, metrics, shipped
from fmcourse.data import speech
from fmcourse.models.speech import (RecognizerConfig, SpeechRecognizer, ctc_loss, load_speech_model, pad_features,
                                    pad_ids, speech_batch)
from fmcourse.train import fit

env.print_report()
device = env.get_device()
env.seed_everything(0)
RATE = speech.SAMPLE_RATE

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Audio as data
#
# A waveform is air pressure sampled $f_s$ times a second; here $f_s = 11{,}025$ Hz, so frequencies up
# to $f_s / 2 \approx 5.5$ kHz (the Nyquist frequency) can be represented, enough for the resonances
# that tell vowels apart. What distinguishes one sound from another is not the pressure at any instant
# but *which frequencies are present, and how strongly, over a few tens of milliseconds*. The
# **short-time Fourier transform** (STFT) measures exactly that: cut the signal into overlapping
# windows of $N$ samples, $H$ apart, taper each with a window $w$ (Hann), and take its discrete
# Fourier transform:
#
# $$X[m, k] = \sum_{n=0}^{N-1} x[mH + n]\, w[n]\, e^{-2\pi i k n / N}, \qquad k = 0, \dots, N/2.$$
#
# Here $N = 256$ (23 ms) and $H = 110$ (10 ms): one frame every 10 ms, 129 frequency bins 43 Hz apart.
# $|X|$ is the **spectrogram**. Two more steps make it what speech models read. The ear resolves low
# frequencies finely and high ones coarsely; the **mel scale** $m(f) = 2595 \log_{10}(1 + f / 700)$
# follows it, and a bank of triangular filters, equally spaced in mel, pools the 129 bins into 40
# bands. Loudness is perceived roughly logarithmically, so we take the log. The result, the
# **log-mel spectrogram**, is a 40-number vector per 10 ms: a sequence, like a sentence of tokens.
#
# First a clip. `fmcourse.data.speech.synthesize` asks the eSpeak NG synthesizer to say a phrase. We
# write the STFT from its definition and compare it with `fmcourse.audio.stft` (which calls `torch.stft`).

# %%
phrase = "seven three one"
wave = speech.synthesize(phrase, voice="en-us+f2", rate=160, pitch=50)     # (T,) float in [-1, 1]
print(f"{phrase!r}: {len(wave)} samples = {len(wave) / RATE:.2f} s at {RATE} Hz")
display(Audio(wave.numpy(), rate=RATE))

N_FFT, HOP = 256, 110


def my_stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """(T,) -> (n_fft // 2 + 1, frames): Hann-windowed DFTs of frames hop apart (centred: padded by n_fft // 2)."""
    padded = F.pad(x[None, None], (n_fft // 2, n_fft // 2), mode="reflect")[0, 0]
    frames = padded.unfold(0, n_fft, hop)                                   # (frames, n_fft)
    window = torch.hann_window(n_fft, periodic=True)
    n = torch.arange(n_fft)
    k = torch.arange(n_fft // 2 + 1)
    dft = torch.exp(-2j * math.pi * k[:, None] * n[None, :] / n_fft)        # (n_freqs, n_fft)
    return dft @ (frames * window).T.to(dft.dtype)


mine = my_stft(wave, N_FFT, HOP)
print("frames:", mine.shape[1], " frequency bins:", mine.shape[0])
assert torch.allclose(mine, audio.stft(wave, N_FFT, HOP).to(mine.dtype), atol=1e-3), "the STFT from its definition"
assert torch.allclose(audio.istft(audio.stft(wave, N_FFT, HOP), N_FFT, HOP, len(wave)), wave, atol=1e-5), \
    "overlapping Hann windows add up to a constant, so the STFT can be inverted exactly"

# %% [markdown] slideshow={"slide_type": "subslide"}
# The waveform, the spectrogram (in decibels), the mel filters and the log-mel spectrogram. In the
# spectrogram the dark horizontal stripes of a vowel are its **harmonics** (multiples of the pitch),
# the broad bright bands they pass through are its **formants** (the resonances of the vocal tract,
# which tell "ee" from "oo"), and the fuzzy high-frequency patches are the noise of "s" and "th".

# %%
features = audio.MelFeatures()                 # 11,025 Hz, n_fft 256, hop 110, 40 mels: the course's speech features
filterbank = features.filterbank               # (129, 40)
log_mel = features(wave, sample_rate=RATE)     # (frames, 40)
spectrum_db = 20 * torch.log10(audio.stft_magnitude(wave, N_FFT, HOP).clamp_min(1e-4))

fig, axes = plt.subplots(2, 2, figsize=(12, 6.5))
t = torch.arange(len(wave)) / RATE
axes[0, 0].plot(t, wave, lw=0.5)
axes[0, 0].set(title=f"waveform of {phrase!r}", xlabel="seconds", ylabel="amplitude")
seconds = len(wave) / RATE
im = axes[0, 1].imshow(spectrum_db, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, RATE / 2))
axes[0, 1].set(title="spectrogram |STFT| (dB)", xlabel="seconds", ylabel="Hz")
fig.colorbar(im, ax=axes[0, 1])
freqs = torch.linspace(0, RATE / 2, N_FFT // 2 + 1)
axes[1, 0].plot(freqs, filterbank[:, ::3], lw=1)
axes[1, 0].set(title="every third of the 40 mel filters", xlabel="Hz", ylabel="weight")
im = axes[1, 1].imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, 40))
axes[1, 1].set(title="log-mel spectrogram", xlabel="seconds", ylabel="mel band")
fig.colorbar(im, ax=axes[1, 1])
fig.tight_layout()
plt.show()

centres = audio.mel_to_hz(torch.linspace(audio.hz_to_mel(features.f_min), audio.hz_to_mel(RATE / 2), 42))[1:-1]
widths = (filterbank > 0).sum(0)
print(f"mel band centres from {centres[0]:.0f} Hz to {centres[-1]:.0f} Hz; "
      f"the lowest band spans {widths[0]} bins, the highest {widths[-1]}")
inside = (freqs >= centres[0]) & (freqs <= centres[-1])
assert torch.allclose(filterbank[inside].sum(1), torch.ones(int(inside.sum())), atol=1e-4), \
    "neighbouring triangles add up to 1: every frequency between the first and last centre is counted once"
assert widths[-1] > 3 * widths[0], "bands widen with frequency, as on the mel scale"
assert log_mel.shape == (features.frames(len(wave)), 40)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. A speech world with transcripts, offline
#
# **eSpeak NG** is a *formant synthesizer*: for each phoneme it knows the frequencies of the first few
# formants and how they move into the next; it excites those resonances with a pulse train at the
# pitch (voiced sounds) or with noise (fricatives such as "s"), and takes durations and the pitch
# contour from rules. It speaks in about a millisecond per word, with dozens of accents and voice
# variants and controls for pitch and speaking rate. The `espeakng-loader` package ships it as a
# library with its voice data (GPL-3.0: installed as a dependency, nothing of it copied into the
# course); `fmcourse.data.speech` drives it through `ctypes` and brings its 22,050 Hz output down to
# 11,025 Hz (a low-pass filter first, so that nothing above the new Nyquist frequency folds back).
#
# **What it keeps of real speech:** the formant structure that makes phonemes distinct, their
# coarticulation (formants glide from one phoneme to the next), timing and rhythm that change with the
# rate, pitch that changes with the voice. **What it does not:** the variety of real voices (every
# "seven" of a voice is identical, up to the settings), breath, hesitations, reverberation, real
# background noise, accents beyond its rules. A recognizer that reads it is a recognizer of *this*
# world; real speech needs real recordings and far more data.
#
# The world: **digit strings** ("seven three one"), **commands** ("turn left") and the **captions of
# the shapes world** from chapter 05 ("a small red circle at the top left"). A fifth of the digit
# strings and captions is held out (never heard in training), and so are whole **voices**: the test
# voices are accents or voice variants that the training voices do not include. On top, each training
# clip is played a little faster or slower, quieter or louder, and gets noise.

# %%
split = speech.split_phrases(seed=0)
print("training phrases:", {kind: len(p) for kind, p in split.train.items()},
      " held out:", {kind: len(p) for kind, p in split.test.items() if kind != "commands"})
print(f"{len(speech.TRAIN_VOICES)} training voices, e.g. {', '.join(speech.TRAIN_VOICES[:4])}; "
      f"{len(speech.TEST_VOICES)} test voices: {', '.join(speech.TEST_VOICES)}")

started = time.perf_counter()
voices = {v: speech.synthesize("turn left", voice=v) for v in ("en-us+m1", "en-gb-scotland+f3", "en-029+m7", "en+Annie")}
per_clip = (time.perf_counter() - started) / len(voices)
print(f"{per_clip * 1000:.0f} ms per clip here (synthesis and resampling)")
fig, axes = plt.subplots(1, 4, figsize=(13, 2.8), sharey=True)
for ax, (voice, w) in zip(axes, voices.items()):
    im = ax.imshow(features(w).T, origin="lower", aspect="auto", cmap="magma", vmin=-7, vmax=3)
    ax.set_title(f"'turn left', {voice}", fontsize=9)
    ax.set_xlabel("frame (10 ms)")
axes[0].set_ylabel("mel band")
fig.colorbar(im, ax=axes.tolist())
plt.show()
for voice, w in voices.items():
    print(voice)
    display(Audio(w.numpy(), rate=RATE))


# %% [markdown] slideshow={"slide_type": "subslide"}
# The pitch control moves the **fundamental frequency** $F_0$, the rate of the glottal pulses. We can
# measure it: a periodic signal correlates with itself shifted by one period, so the lag $\tau$ of the
# highest autocorrelation within a plausible range (60–400 Hz) gives $F_0 = f_s / \tau$. A low-pass
# filter at 500 Hz first removes the formants, whose own resonances would otherwise win.

# %%
def fundamental(x: torch.Tensor, rate: int = RATE) -> float:
    """F0 (Hz) of a voiced stretch (T,): the lag of the largest autocorrelation between 60 and 400 Hz."""
    x = speech.lowpass(x - x.mean(), 500 / (rate / 2), half_width=64)
    lags = torch.arange(rate // 400, rate // 60)
    correlation = torch.stack([(x[:-lag] * x[lag:]).mean() for lag in lags.tolist()])
    return rate / lags[correlation.argmax()].item()


f0 = {}
for pitch in (20, 50, 80):
    vowel = speech.synthesize("ah", voice="en-us", rate=120, pitch=pitch)
    starts = [len(vowel) // 4, len(vowel) // 3, len(vowel) // 2]          # three 0.15 s stretches inside the vowel
    f0[pitch] = sorted(fundamental(vowel[s:s + 1600]) for s in starts)[1]  # their median
print("eSpeak pitch setting -> measured F0:", {p: f"{hz:.0f} Hz" for p, hz in f0.items()})
assert f0[20] < f0[50] < f0[80], "a higher pitch setting gives a higher fundamental frequency"

# %% [markdown] slideshow={"slide_type": "subslide"}
# Now the data sets. `utterances` draws phrases (60% digit strings, 20% commands, 20% captions),
# voices, rates (130–210 words a minute) and pitches (25–75) from a seed; `speech_clips` synthesizes
# them once and caches them (eSpeak's output is not always bit-identical from run to run, so the
# cache keeps each run the same), and `augmented=True` adds the random speed (±10%), gain and noise
# (10–40 dB signal-to-noise). The **test set** is held-out voices saying held-out phrases, with the
# same augmentation; the live training below uses a small set of training voices and phrases.

# %%
test_items = speech.utterances(240, speech.TEST_VOICES, split.test, seed=2)
test = speech.speech_clips(test_items, augmented=True, seed=3)
live_items = speech.utterances(600, speech.TRAIN_VOICES, split.train, seed=10, weights={"digits": 1.0})
live = speech.speech_clips(live_items, augmented=True, seed=11)
lengths = torch.tensor([len(w) / RATE for w in test.waveforms])
print(f"test: {len(test)} clips of {lengths.min():.1f}–{lengths.max():.1f} s; e.g. {test.texts[0]!r} "
      f"by {test_items[0].voice} at {test_items[0].rate} words/min, pitch {test_items[0].pitch}")
display(Audio(test.waveforms[0].numpy(), rate=RATE))
assert not {u.voice for u in test_items} & set(speech.TRAIN_VOICES), "test voices are never training voices"
held_out = {p for kind in ("digits", "captions") for p in split.test[kind]}
assert not held_out & {p for kind in ("digits", "captions") for p in split.train[kind]}
assert all(u.text == text for u, text in zip(test_items, test.texts)), "each clip's transcript is the text it says"
