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
# (CTC), and a synthesizer that goes the other way, text to spectrogram to sound, learning where to
# look in the text as it speaks (attention). All the speech is made on the spot by a formant synthesizer,
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
# **Time on a laptop CPU:** 12 s for the whole notebook.

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
import json
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
# contour from rules. It is fast (the cell below measures it, resampling included), with dozens of
# accents and voice variants and controls for pitch and speaking rate. The `espeakng-loader` package ships it as a
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
# strings and captions is held out (never heard in training; the 14 commands are too few to split,
# so on them the test measures new voices only), and so are whole **voices**: the test
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
# same augmentation; the live training below uses 600 clips of training digit strings by training voices.

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

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Recognition: speech to text with CTC
#
# A recognizer reads $T$ frames and must write $L < T$ characters, and nobody says which frames
# belong to which character. **Connectionist temporal classification** (CTC; Graves et al., 2006)
# lets the model decide. The model outputs, at every frame $t$, a distribution $p_t(\cdot \mid x)$
# over the characters plus one extra symbol, the **blank** "-" ("no new character here"). A path
# $\pi = (\pi_1, \dots, \pi_T)$ is one symbol per frame; the collapse $\mathcal{B}$ merges repeated
# symbols and then drops the blanks, so $\mathcal{B}(\text{"-ss-eee-vv-e-nn"}) = \text{"seven"}$ and a
# double letter needs a blank between its halves ($\mathcal{B}(\text{"l-l"}) = \text{"ll"}$, but
# $\mathcal{B}(\text{"ll"}) = \text{"l"}$). The probability of a transcript sums over every path that
# collapses to it, and the loss is its negative log:
#
# $$p(y \mid x) = \sum_{\pi:\, \mathcal{B}(\pi) = y} \prod_{t=1}^{T} p_t(\pi_t \mid x), \qquad
# \mathcal{L}_\text{CTC} = -\log p(y \mid x).$$
#
# There are exponentially many paths, but a dynamic program over (frame, position in $y$ with blanks
# interleaved) sums them in $O(T L)$: that is `torch.nn.functional.ctc_loss`, which we use as it is.
# Decoding greedily takes the most likely symbol of each frame and collapses. We write the collapse,
# check it against `fmcourse.decoding`, and check the CTC sum itself on a case small enough to list
# every path.

# %%
def my_collapse(frame_labels: list[int], blank: int = 0) -> list[int]:
    """CTC's collapse: merge runs of equal labels, then drop the blanks."""
    merged = [label for i, label in enumerate(frame_labels) if i == 0 or label != frame_labels[i - 1]]
    return [label for label in merged if label != blank]


for path in ([1, 1, 0, 1, 2, 2], [0, 0, 0], [3, 3, 3], [5, 0, 5, 5, 0, 0, 6], [0, 4, 4, 0, 0, 4]):
    assert my_collapse(path) == decoding.ctc_collapse(path), path
print(my_collapse([1, 1, 0, 1, 2, 2]), "<- [a, a, -, a, b, b]: the blank keeps the two a's apart")

# every path of 4 frames over {blank, a, b}, and those that collapse to "ab"
import itertools

frame_probs = torch.softmax(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), dim=-1)   # (T=4, 3)
paths = [p for p in itertools.product(range(3), repeat=4) if my_collapse(list(p)) == [1, 2]]
by_hand = sum(math.prod(frame_probs[t, s].item() for t, s in enumerate(p)) for p in paths)
torch_loss = F.ctc_loss(frame_probs.log()[:, None], torch.tensor([[1, 2]]), torch.tensor([4]), torch.tensor([2]),
                        blank=0, reduction="sum")
print(f"{len(paths)} of the 81 paths collapse to 'ab'; their total probability {by_hand:.5f}, "
      f"exp(-F.ctc_loss) = {math.exp(-torch_loss.item()):.5f}")
assert abs(by_hand - math.exp(-torch_loss.item())) < 1e-5, "F.ctc_loss sums the probability of every path"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The recognizer** (`fmcourse.models.SpeechRecognizer`): each utterance's log-mels are normalised
# (a louder recording only shifts them), two 1-D convolutions over time look at about 90 ms around
# each frame, the second with stride 3, so that the Transformer sees one vector every 30 ms; sinusoidal
# positions; Transformer encoder blocks (bidirectional: each output frame may use the whole clip);
# a linear layer to the 28 characters plus the blank. It trains with `F.ctc_loss`.
#
# First, live, a small one for a few seconds on 600 clips of digit strings by the training voices,
# with `fmcourse.train.fit`. CTC training has a typical course: the loss drops fast as the model
# learns to say "blank" everywhere (the most common symbol), stays on a plateau, and drops again once
# it starts placing characters.

# %%
def bucketed_batches(clips: speech.SpeechClips, features: audio.MelFeatures, batch_size: int, seed: int):
    """A batch function for fit: batch_size clips of similar length, as (log_mel, lengths, targets, target_lengths)."""
    mels = [features(w) for w in clips.waveforms]
    order = sorted(range(len(mels)), key=lambda i: len(mels[i]))
    generator = torch.Generator().manual_seed(seed)

    def batch():
        start = int(torch.randint(0, len(order) - batch_size + 1, (), generator=generator))
        chosen = order[start:start + batch_size]
        return (*pad_features([mels[i] for i in chosen]), *pad_ids([clips.texts[i] for i in chosen]))

    return batch


env.seed_everything(0)
small = SpeechRecognizer(RecognizerConfig(d_model=64, n_head=4, n_layer=2))
history = fit(small, bucketed_batches(live, small.features, 16, seed=0), ctc_loss, steps=150, lr=3e-3,
              warmup_steps=20, device=device)
first, last = sum(history.train_loss[:10]) / 10, sum(history.train_loss[-10:]) / 10
print(f"{sum(p.numel() for p in small.parameters()):,} parameters; CTC loss per character "
      f"{first:.2f} -> {last:.2f} in {history.seconds:.0f} s")
small_heard = small.transcribe(live.waveforms[:4])
for heard, said in zip(small_heard, live.texts[:4]):
    print(f"  said {said!r:24} heard {heard!r}")
assert last < 0.5 * first, "the CTC loss falls during training"

# %% [markdown] slideshow={"slide_type": "subslide"}
# A few seconds already give a model that spells digit words roughly. The shipped recognizer is the same
# architecture, larger (3 blocks of width 96), trained by `python bench/speech_models.py` for 1,500
# steps on 4,000 augmented clips by the 50 training voices (digits, commands and captions). We measure
# it on the test set: **held-out voices saying held-out phrases**, augmented. The measures are the
# **character error rate** and the **word error rate**, the edit distance (substitutions $S$,
# deletions $D$, insertions $I$) from what it heard to what was said, over the length $N$ of what was
# said, summed over the set: $\text{CER} = (S + D + I) / N$ in characters, WER the same in words.
# As reference points: answering nothing gives CER 1, and answering the most common training phrase
# every time (a constant answer) gives the CER printed below. The cell asserts a CER below 0.12.
#
# What do the Transformer blocks add? The same command trains the recognizer without them
# (convolutions, then a linear layer over about 90 ms of log-mels per output frame: the strongest
# simple model we have here) on the same data, for the same steps, with the same learning rate
# (neither model was tuned). The plot shows both on the command's three test sets. The baseline is
# also six times smaller, so this measures what the blocks add to this recipe, not that attention
# beats every convolutional model of its size.
#
# One more number comes from the shipped run's metadata: the same held-out clips *without*
# augmentation. The recognizer only ever heard augmented audio in training, always with some noise;
# on clean clips, with pauses of perfect digital silence it never met, it does worse. A reminder that
# a model is tested on the world it was trained for, and that "more realistic" is not "cleaner".

# %%
ASR_CER_BOUND = 0.12                     # the bound this section asserts
asr, asr_info = load_speech_model("speech_recognizer.safetensors")
asr = asr.to(device)
started = time.perf_counter()
heard = asr.transcribe(test.waveforms)
seconds = time.perf_counter() - started
cer = metrics.character_error_rate(heard, test.texts)
wer = metrics.word_error_rate(heard, test.texts)
most_common = max(set(live.texts), key=live.texts.count)
constant = metrics.character_error_rate([most_common] * len(test), test.texts)
print(f"{sum(p.numel() for p in asr.parameters()):,} parameters; {len(test)} test clips transcribed in {seconds:.1f} s")
print(f"held-out voices and phrases: CER {cer:.3f}, WER {wer:.3f}   (answering {most_common!r} always: CER {constant:.3f})")
by_kind = {}
for u, h in zip(test_items, heard):
    kind = "digits" if u.text.split()[0] in speech.DIGITS else "commands" if u.text in speech.COMMANDS else "captions"
    by_kind.setdefault(kind, ([], []))
    by_kind[kind][0].append(h)
    by_kind[kind][1].append(u.text)
for kind, (h, r) in sorted(by_kind.items()):
    print(f"  {kind:9} {len(r):3} clips: CER {metrics.character_error_rate(h, r):.3f}, WER {metrics.word_error_rate(h, r):.3f}")
digit_clips = [i for i, u in enumerate(test_items) if u.text.split()[0] in speech.DIGITS]
small_cer = metrics.character_error_rate(small.transcribe([test.waveforms[i] for i in digit_clips]),
                                         [test.texts[i] for i in digit_clips])
print(f"  (the small model trained live above, on the digit clips: CER {small_cer:.3f})")
print("the shipped run's own measurements:", {k: {m: round(v, 3) for m, v in d.items()} for k, d in asr_info["test"].items()})

# the same recipe (data, steps, learning rate) without the Transformer blocks, from the same command
runs = json.loads(shipped.path("speech_models.json").read_text(encoding="utf-8"))
fig, ax = plt.subplots(figsize=(8, 2.8))
sets = list(runs["recognizer"]["test"])
for offset, (name, label) in enumerate((("recognizer", "convolutions + 3 Transformer blocks"),
                                        ("recognizer_without_transformer", "convolutions + linear (no Transformer)"))):
    values = [runs[name]["test"][k]["cer"] for k in sets]
    ax.barh([i + 0.4 * offset for i in range(len(sets))], values, height=0.4, label=f"{label}, "
            f"{runs[name]['parameters']:,} parameters")
ax.axvline(constant, color="k", ls="--", lw=1, label="a constant answer (this test set)")
ax.set_yticks([i + 0.2 for i in range(len(sets))], sets, fontsize=8)
ax.set(xlabel="CER (bench/speech_models.py)", xlim=(0, 1))
ax.legend(fontsize=7, loc="lower right")
plt.show()
without = runs["recognizer_without_transformer"]["test"]["held-out voices and phrases, augmented"]["cer"]
with_blocks = runs["recognizer"]["test"]["held-out voices and phrases, augmented"]["cer"]
wrong = [(h, r) for h, r in zip(heard, test.texts) if h != r]
print(f"{len(wrong)} of {len(test)} transcripts are not exact; some of them:")
for h, r in wrong[:5]:
    print(f"  said {r!r:42} heard {h!r}")
assert cer < ASR_CER_BOUND, f"the recognizer reads held-out voices with CER below {ASR_CER_BOUND}"
assert cer < 0.5 * constant, "far better than a constant answer"
assert with_blocks < 0.5 * without, "in this recipe the Transformer blocks more than halve the CER"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The alignment CTC found.** Below, a test clip's log-mel spectrogram and, over the same time
# axis, the recognizer's probability of each character at each of its 30 ms frames (the blank left
# out). Nothing told the model where the characters are; it found a placement that makes the
# transcript likely, and it is confident about it (each frame's most likely symbol has most of the
# probability). Frames are scarce here, one per 30 ms for about a dozen characters a second, so most
# frames carry a character, a repeated symbol marks a long sound, and blanks fall where a letter is
# doubled or silent. (With finer frames, CTC is known to be *peaky*: blank almost everywhere and each
# character a single spike.)

# %%
index = next(i for i, u in enumerate(test_items) if u.text.split()[0] in speech.DIGITS and len(u.text.split()) == 3)
clip_mel = asr.features(test.waveforms[index])                                      # (frames, 40)
with torch.no_grad():
    log_probs, out_len = asr(clip_mel[None].to(device))
probs = log_probs[0].exp().cpu()                                                    # (frames / 3, 29)
best = probs.argmax(-1)
chars = sorted(set(test.texts[index].replace(" ", "")) | {" "})
rows = [speech.ALPHABET.index(c) + 1 for c in chars]
fig, axes = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
seconds = len(test.waveforms[index]) / RATE
im = axes[0].imshow(clip_mel.T, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, 40))
axes[0].set(ylabel="mel band", title=f"said {test.texts[index]!r} ({test_items[index].voice}); "
            f"heard {heard[index]!r}")
fig.colorbar(im, ax=axes[0])
step = 3 * features.hop / RATE                                                      # seconds per recognizer frame
im = axes[1].imshow(probs[:, rows].T, origin="lower", aspect="auto", cmap="Blues", vmin=0, vmax=1,
                    extent=(0, probs.size(0) * step, -0.5, len(rows) - 0.5), interpolation="nearest")
axes[1].set_yticks(range(len(rows)), [repr(c) for c in chars])
axes[1].set(xlabel="seconds", title="p(character | frame), blank left out")
fig.colorbar(im, ax=axes[1])
fig.tight_layout()
plt.show()
display(Audio(test.waveforms[index].numpy(), rate=RATE))
blank_share = (best == 0).float().mean().item()
confidence = probs.max(-1).values.mean().item()
print(f"{blank_share:.0%} of the frames are most likely blank; the most likely symbol has probability "
      f"{confidence:.2f} on average; the path:"
      f" {''.join('-' if i == 0 else speech.ALPHABET[i - 1] for i in best.tolist())!r}")
assert confidence > 0.7, "the recognizer is confident about its alignment"
assert decoding.ctc_greedy(log_probs.cpu())[0] == [speech.ALPHABET.index(c) + 1 for c in heard[index]], \
    "greedy decoding is the collapse of the most likely path"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Synthesis: text to speech, Tacotron style
#
# The other direction. Tacotron (Wang et al., 2017) and its successors split it in two: a network
# that turns text into a **mel spectrogram**, and a **vocoder** that turns the spectrogram into a
# waveform. The mel spectrogram is missing what the vocoder must invent: the phase of every
# frequency in every frame, and the detail inside each mel band.
#
# **The vocoder: Griffin-Lim** (1984). Given a magnitude $S = |X|$, find a signal $y$ whose STFT
# magnitude is close to it. Not every array of complex numbers is the STFT of a signal (overlapping
# frames must agree), so alternate between the two constraints: start from random phases $\phi$, and
# repeat
#
# $$y \leftarrow \text{iSTFT}(S\, e^{i\phi}), \qquad \phi \leftarrow \angle\, \text{STFT}(y).$$
#
# Each step keeps the magnitude we want and the phase of a consistent STFT; the distance between them
# never grows. The "fast" variant adds momentum to the phase updates. We write the plain iteration,
# check it against `fmcourse.audio.griffin_lim` from the same random start, and measure how close the
# magnitude gets, as the **spectral convergence** $\lVert S - |\text{STFT}(y)| \rVert / \lVert S \rVert$.

# %%
def my_griffin_lim(magnitude: torch.Tensor, n_iter: int, seed: int = 0) -> tuple[torch.Tensor, list[float]]:
    """A waveform whose STFT magnitude approaches magnitude (n_freqs, frames), and the error after each step."""
    angles = torch.rand(magnitude.shape, generator=torch.Generator().manual_seed(seed)) * 2 * math.pi
    phase = torch.polar(torch.ones_like(magnitude), angles)
    errors = []
    for _ in range(n_iter):
        y = audio.istft(magnitude * phase, N_FFT, HOP, length=len(wave))
        rebuilt = audio.stft(y, N_FFT, HOP)
        errors.append(((rebuilt.abs() - magnitude).norm() / magnitude.norm()).item())
        phase = rebuilt / rebuilt.abs().clamp_min(1e-8)
    return audio.istft(magnitude * phase, N_FFT, HOP, length=len(wave)), errors


magnitude = audio.stft_magnitude(wave, N_FFT, HOP)                   # the clip of section 1
rebuilt_wave, errors = my_griffin_lim(magnitude, 32)
assert torch.allclose(rebuilt_wave, audio.griffin_lim(magnitude, N_FFT, HOP, n_iter=32, momentum=0, length=len(wave)),
                      atol=1e-4), "the same algorithm as fmcourse.audio.griffin_lim (momentum 0)"
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(1, 33), errors, marker=".")
ax.set(xlabel="iteration", ylabel="spectral convergence", title="Griffin-Lim on the clip of section 1", ylim=(0, None))
plt.show()
print(f"spectral convergence: {errors[0]:.3f} after one iteration, {errors[-1]:.3f} after 32")
display(Audio(rebuilt_wave.numpy(), rate=RATE))
assert all(b <= a + 1e-4 for a, b in zip(errors, errors[1:])), "each iteration brings the magnitude closer"
assert errors[-1] < 0.5 * errors[0]

# %% [markdown] slideshow={"slide_type": "subslide"}
# **The text-to-mel network** (`fmcourse.models.SpeechSynthesizer`), Tacotron's plan with Transformer
# parts (as in Transformer TTS, Li et al., 2019):
#
# - **encoder**: character embeddings, two convolutions (each character sees its neighbours, as
#   pronunciation depends on them), a Transformer block;
# - **decoder**, autoregressive: the mel frames so far go through a **pre-net**, two small layers with
#   dropout that stays on even when generating (Tacotron's trick: the decoder cannot simply copy the
#   previous frame, so it must listen to the text), then causal Transformer blocks whose
#   **cross-attention** reads the encoder's output: the attention decides which character is being
#   spoken now. Each step emits $r = 4$ frames (40 ms) at once, a **stop** score that says whether
#   the utterance is over, and a small convolutional **post-net** refines the frames;
# - **loss**: $L_1$ on the frames (before and after the post-net), cross-entropy on the stop score,
#   and a **guided attention** penalty (Tachibana et al., 2018), $\sum_{t,s} A_{ts}\,
#   (1 - e^{-(s/S - t/T)^2 / 2g^2})$, which makes attention away from the diagonal cost something:
#   speech reads its text from left to right, and the hint saves most of the training it would take
#   to discover it.
#
# The shipped synthesizer was trained by `python bench/speech_models.py` for 2,000 steps on one
# voice (en-us, 170 words a minute) saying the training digit strings and the commands. Here it
# speaks digit strings it never saw; the vocoder is Griffin-Lim, with the mel bands first turned back
# into an STFT magnitude (`MelFeatures.to_magnitude`, a non-negative least-squares fit).

# %%
tts, tts_info = load_speech_model("speech_synthesizer.safetensors")
tts = tts.to(device)
torch.manual_seed(0)                                            # the pre-net's dropout is on while speaking
text = split.test["digits"][7]
tts_mel, alignment = tts.synthesize(text)                       # (frames, 40), (steps, characters)
tts_wave = tts.to_waveform(tts_mel)
reference_mel = features(speech.synthesize(text, "en-us", 170, 50))

fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.1]})
for ax, mel, title in ((axes[0], reference_mel, "eSpeak NG (the teacher)"), (axes[1], tts_mel, "the synthesizer")):
    im = ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", vmin=-7, vmax=3)
    ax.set(title=f"{title}: {text!r}", xlabel="frame (10 ms)", ylabel="mel band")
fig.colorbar(im, ax=axes[1])
im = axes[2].imshow(alignment.T, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
axes[2].set_yticks(range(len(text)), list(text), fontsize=7)
axes[2].set(title="cross-attention (last decoder layer)", xlabel="decoder step (4 frames)", ylabel="character")
fig.colorbar(im, ax=axes[2])
fig.tight_layout()
plt.show()
display(Audio(tts_wave.numpy(), rate=RATE))
focus = alignment.argmax(-1)
backwards = (focus.diff() < 0).float().mean().item()
print(f"{len(tts_mel)} frames ({len(tts_mel) / 100:.2f} s; eSpeak's: {len(reference_mel) / 100:.2f} s); "
      f"the attention's focus moves backwards on {backwards:.0%} of the steps")
assert backwards < 0.2, "the alignment runs forward through the text"
assert 0.5 < len(tts_mel) / len(reference_mel) < 2, "it stops at about the right time"

# %% [markdown] slideshow={"slide_type": "subslide"}
# **What the recognizer hears.** The recognizer of section 3 scores the synthesizer: it transcribes
# the synthesized speech of held-out digit strings, and the CER says how much of the text came
# through. Two references separate the two halves of the pipeline: the recognizer on eSpeak's own
# clips of the same phrases (the teacher; same voice), and on Griffin-Lim applied to eSpeak's mel
# spectrograms (a perfect text-to-mel network with our vocoder). The cell asserts a CER below 0.10
# for the synthesizer.

# %%
TTS_CER_BOUND = 0.10                     # the bound this section asserts
texts = split.test["digits"][::7]         # 32 of the 222 held-out digit strings, spread over the (sorted) list
torch.manual_seed(0)
started = time.perf_counter()
synthesized = [tts.to_waveform(tts.synthesize(t)[0]) for t in texts]
seconds = time.perf_counter() - started
teacher = [speech.synthesize(t, "en-us", 170, 50) for t in texts]
vocoded = [tts.to_waveform(features(w)) for w in teacher]
results = {name: metrics.character_error_rate(asr.transcribe(waves), texts)
           for name, waves in (("eSpeak NG itself", teacher), ("eSpeak's mels + Griffin-Lim", vocoded),
                               ("the synthesizer + Griffin-Lim", synthesized))}
print(f"{len(texts)} held-out digit strings synthesized and vocoded in {seconds:.1f} s; the recognizer's CER:")
for name, value in results.items():
    print(f"  {name:31} {value:.3f}")
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.barh(list(results), list(results.values()), color=["gray", "C1", "C0"])
ax.axvline(1.0, color="k", ls="--", lw=1, label="answering nothing")
ax.set(xlabel="recognizer's CER", xlim=(0, 1.05))
ax.legend(loc="lower right")
for i, v in enumerate(results.values()):
    ax.text(v + 0.01, i, f"{v:.3f}", va="center")
plt.show()
heard_tts = asr.transcribe(synthesized[:4])
for t, h in zip(texts[:4], heard_tts):
    print(f"  wrote {t!r:22} heard {h!r}")
assert results["the synthesizer + Griffin-Lim"] < TTS_CER_BOUND, f"the recognizer reads the synthesizer with CER below {TTS_CER_BOUND}"

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Summary
#
# - Speech becomes a sequence of frames: the STFT measures which frequencies are present every 10 ms,
#   the mel filterbank pools them as the ear does, the log compresses loudness. 40 numbers a frame.
# - A formant synthesizer gives a speech world with exact transcripts, many voices, pitch and rate,
#   offline; it keeps formants and timing and lacks the variety and noise of real speech, so what is
#   measured here holds for this world.
# - CTC trains a recognizer without alignments: a blank symbol and a collapse rule turn every frame
#   labelling into a transcript, and `F.ctc_loss` sums over all of them. The shipped recognizer's
#   CER on voices and phrases it never heard is printed in section 3, against a constant answer and
#   the same recipe without Transformer blocks; its alignment is confident and runs with the sound.
# - A Tacotron-style synthesizer writes mel frames step by step, attending to the character being
#   spoken; guided attention and a pre-net with dropout make it learn to read left to right. Griffin-Lim
#   recovers a waveform from magnitudes alone, and the recognizer, listening, measures how much of the
#   text survives each half of the pipeline.
#
# Next, chapter 10 applies foundation models to recommendation.
#
# ## Exercises
#
# Each exercise has an automatic check: replace the `...` with your answer and run the cell. The
# check prints ✓, or what is wrong (the likely mistake, when it can tell) and a hint. The experiment
# asks you to predict first, then change something, run it and record what you measured.

# %%
from fmcourse.exercises import speech as exercises

# 1. Code. CTC's collapse: given one label per frame (ints) and the blank's id, return the labels of
#    the transcript: runs of equal labels merged, then the blanks dropped.
def my_ctc_collapse(frame_labels, blank):
    ...  # your code here


exercises.ctc_collapse.check(my_ctc_collapse)

# %%
# 2. A number. By hand: the character error rate of the hypothesis "sevn tree" against the reference
#    "seven three" (one pair: edits over the reference's characters, the space counts).
my_cer = ...

exercises.cer_by_hand.check(my_cer)

# %%
# 3. Code. One Griffin-Lim iteration: given the wanted magnitude (n_freqs, frames), the current phase
#    (complex, of absolute value 1, same shape), n_fft and hop, return the new phase: the phase of the
#    STFT of the waveform made from magnitude * phase. Use fmcourse.audio.istft and fmcourse.audio.stft.
def my_griffin_lim_step(magnitude, phase, n_fft, hop):
    ...  # your code here


exercises.griffin_lim_step.check(my_griffin_lim_step)

# %%
# 4. An experiment. The cell runs 16 Griffin-Lim iterations on a short chirp and prints the spectral
#    convergence. Predict first: with momentum 0.99 (fast Griffin-Lim), will the error after 16
#    iterations be "lower" or "higher" than without? Then set momentum = 0.99, run, and record it.
momentum = 0.0  # change me
print(f"momentum {momentum}: spectral convergence {exercises.spectral_convergence(momentum):.4f} "
      f"after {exercises.MOMENTUM_ITERATIONS} iterations")

my_prediction = ...   # "lower" or "higher", written down BEFORE running with momentum 0.99
my_measurement = ...  # the error printed with momentum 0.99
exercises.griffin_lim_momentum.check(my_prediction, my_measurement)

# %% [markdown] slideshow={"slide_type": "subslide"}
# ### Solutions
#
# Try first. The cell below checks that every solution passes and every typical mistake is caught,
# then offers the solutions behind a button: click it only when you want to see them (or run
# `exercises.<name>.show_solution()` for one exercise).

# %%
from fmcourse.exercises import show_solutions

assert show_solutions(exercises.ctc_collapse, exercises.cer_by_hand, exercises.griffin_lim_step,
                      exercises.griffin_lim_momentum)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Further reading
#
# - A. Graves, S. Fernández, F. Gomez, J. Schmidhuber, "Connectionist temporal classification:
#   labelling unsegmented sequence data with recurrent neural networks", ICML 2006: CTC, its forward
#   algorithm and best-path decoding.
# - L. Dong, S. Xu, B. Xu, "Speech-Transformer: a no-recurrence sequence-to-sequence model for speech
#   recognition", ICASSP 2018; and A. Gulati et al., "Conformer: convolution-augmented Transformer for
#   speech recognition", Interspeech 2020: Transformer recognizers with convolutional front ends.
# - A. Radford et al., "Robust speech recognition via large-scale weak supervision" (Whisper), 2022:
#   a foundation model for speech, an encoder–decoder trained on 680,000 hours of transcribed audio.
# - Y. Wang et al., "Tacotron: towards end-to-end speech synthesis", Interspeech 2017; J. Shen et al.,
#   "Natural TTS synthesis by conditioning WaveNet on mel spectrogram predictions" (Tacotron 2), ICASSP 2018.
# - N. Li et al., "Neural speech synthesis with Transformer network", AAAI 2019; H. Tachibana, K. Uenoyama,
#   S. Aihara, "Efficiently trainable text-to-speech system based on deep convolutional networks with
#   guided attention", ICASSP 2018.
# - D. Griffin, J. Lim, "Signal estimation from modified short-time Fourier transform", IEEE TASSP 1984;
#   N. Perraudin, P. Balazs, P. Søndergaard, "A fast Griffin-Lim algorithm", WASPAA 2013.
# - The eSpeak NG synthesizer: https://github.com/espeak-ng/espeak-ng (formant synthesis, GPL-3.0).
