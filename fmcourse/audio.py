"""Audio as data: the short-time Fourier transform, mel spectrograms, and Griffin-Lim, in torch.

    features = MelFeatures(sample_rate=11_025)          # 40 mels, 23 ms windows every 10 ms
    log_mel = features(waveform)                        # (T,) -> (frames, 40)
    magnitude = stft_magnitude(waveform, 256, 110)      # (129, frames)
    waveform = griffin_lim(magnitude, 256, 110)         # a waveform whose STFT has that magnitude

A waveform is a 1-D float tensor of samples (or a batch ``(B, T)``). The STFT cuts it into
overlapping windows of ``n_fft`` samples, ``hop`` apart, and takes the Fourier transform of each:
``(n_fft // 2 + 1)`` frequency bins per frame. The mel filterbank pools those bins into bands that
are narrow at low frequencies and wide at high ones, as the ear does; the log compresses loudness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def _check_waveform(waveform) -> torch.Tensor:
    if not isinstance(waveform, torch.Tensor):
        raise TypeError(f"a waveform must be a torch.Tensor of samples, got {type(waveform).__name__}")
    if waveform.dim() not in (1, 2):
        raise ValueError(f"a waveform must be (samples,) or (batch, samples), got shape {tuple(waveform.shape)}")
    if waveform.size(-1) == 0:
        raise ValueError("the waveform is empty (0 samples)")
    if not waveform.is_floating_point():
        raise TypeError(f"a waveform must hold floats in [-1, 1], got dtype {waveform.dtype} "
                        "(int16 audio: divide by 32768)")
    return waveform


def _window(n_fft: int, device, dtype) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, device=device, dtype=dtype)


def stft(waveform: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT with a Hann window, centred frames: ``(..., T) -> (..., n_fft // 2 + 1, frames)``,
    ``frames = T // hop + 1``."""
    waveform = _check_waveform(waveform)
    if waveform.size(-1) <= n_fft // 2:
        raise ValueError(f"the waveform has {waveform.size(-1)} samples; the STFT needs more than n_fft // 2 = "
                         f"{n_fft // 2}")
    return torch.stft(waveform, n_fft, hop, window=_window(n_fft, waveform.device, waveform.dtype),
                      center=True, return_complex=True)


def istft(spectrum: torch.Tensor, n_fft: int, hop: int, length: int | None = None) -> torch.Tensor:
    """The inverse of ``stft``: ``(..., n_fft // 2 + 1, frames) -> (..., T)`` by overlap-add."""
    return torch.istft(spectrum, n_fft, hop, window=_window(n_fft, spectrum.device, spectrum.real.dtype),
                       center=True, length=length)


def stft_magnitude(waveform: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """``|STFT|``: ``(..., T) -> (..., n_fft // 2 + 1, frames)``."""
    return stft(waveform, n_fft, hop).abs()


def hz_to_mel(hz):
    """The HTK mel scale: ``2595 log10(1 + f / 700)``."""
    if isinstance(hz, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_to_hz(mel):
    """The inverse of ``hz_to_mel``."""
    if isinstance(mel, torch.Tensor):
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular filters ``(n_freqs = n_fft // 2 + 1, n_mels)``, equally spaced on the HTK mel scale.

    Filter m rises linearly (in Hz) from centre m - 1 to centre m and falls to centre m + 1, where the
    n_mels + 2 centres are equally spaced in mel from ``f_min`` to ``f_max`` (default: Nyquist). Peak 1,
    no area normalisation. ``spectrogram (..., n_freqs, frames)`` -> mel bands: ``fb.T @ spectrogram``.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not (isinstance(n_mels, int) and n_mels > 0 and isinstance(n_fft, int) and n_fft > 1):
        raise ValueError(f"n_mels and n_fft must be positive ints, got {n_mels!r}, {n_fft!r}")
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}, got {f_min}, {f_max}")
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)       # (n_freqs,)
    centres = mel_to_hz(torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64))
    lower, centre, upper = centres[:-2], centres[1:-1], centres[2:]                         # (n_mels,) each
    rising = (freqs[:, None] - lower) / (centre - lower)
    falling = (upper - freqs[:, None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0).float()                      # (n_freqs, n_mels)


@dataclass(frozen=True)
class MelFeatures:
    """Log-mel features for audio at one ``sample_rate``: ``(T,) -> (frames, n_mels)`` or
    ``(B, T) -> (B, frames, n_mels)``, ``log(max(mel magnitude, floor))``.

    The mels pool the STFT *magnitude* (not power), so that ``to_magnitude`` can undo them linearly.
    """

    sample_rate: int = 11_025
    n_fft: int = 256
    hop: int = 110
    n_mels: int = 40
    f_min: float = 40.0
    floor: float = 1e-3

    @property
    def filterbank(self) -> torch.Tensor:
        """``(n_fft // 2 + 1, n_mels)``."""
        return mel_filterbank(self.n_mels, self.n_fft, self.sample_rate, self.f_min)

    def frames(self, samples: int) -> int:
        """The number of feature frames of a waveform of ``samples`` samples."""
        return samples // self.hop + 1

    def check_rate(self, sample_rate: int) -> None:
        """A clear error when audio at ``sample_rate`` meets features built for another rate."""
        if sample_rate != self.sample_rate:
            raise ValueError(f"these features were built for {self.sample_rate} Hz audio, got {sample_rate} Hz: "
                             f"resample it (fmcourse.data.speech.resample) or build MelFeatures(sample_rate="
                             f"{sample_rate})")

    def mel(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Mel magnitudes ``(..., frames, n_mels)``."""
        if sample_rate is not None:
            self.check_rate(sample_rate)
        magnitude = stft_magnitude(waveform, self.n_fft, self.hop)                  # (..., n_freqs, frames)
        return magnitude.transpose(-1, -2) @ self.filterbank.to(magnitude.device)   # (..., frames, n_mels)

    def __call__(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Log-mel features ``(..., frames, n_mels)``; pass ``sample_rate`` to have it checked."""
        return self.mel(waveform, sample_rate).clamp_min(self.floor).log()

    def to_magnitude(self, log_mel: torch.Tensor, n_iter: int = 100) -> torch.Tensor:
        """Log-mel ``(..., frames, n_mels)`` back to an STFT magnitude ``(..., n_freqs, frames)``.

        Many magnitudes give the same mels (the detail inside each band is lost); this finds a
        non-negative one whose mels are close: it starts from the pseudo-inverse, clipped at 0, and
        runs ``n_iter`` multiplicative updates ``x <- x * (F y) / (F F^T x)`` (F the filterbank, y the
        mels), which keep x >= 0 and never increase ``|F^T x - y|^2`` (Lee and Seung, 2001)."""
        if log_mel.size(-1) != self.n_mels:
            raise ValueError(f"log-mel frames must have {self.n_mels} mels, got shape {tuple(log_mel.shape)}")
        fb = self.filterbank.to(log_mel.device)                                        # (n_freqs, n_mels)
        mel = log_mel.exp()                                                            # (..., frames, n_mels)
        x = (mel @ torch.linalg.pinv(fb.double()).float()).clamp_min(1e-6)            # (..., frames, n_freqs)
        numerator = mel @ fb.T
        for _ in range(n_iter):
            x = x * numerator / ((x @ fb) @ fb.T).clamp_min(1e-12)
        return x.transpose(-1, -2)


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop: int, n_iter: int = 32, momentum: float = 0.99,
                length: int | None = None, seed: int = 0) -> torch.Tensor:
    """A waveform whose STFT magnitude approaches ``magnitude (..., n_fft // 2 + 1, frames)``.

    Griffin and Lim (1984): start from random phases; repeat: make a waveform from magnitude and phase
    (iSTFT), take its STFT, keep its phase and put back the wanted magnitude. Each step cannot increase
    the distance between the wanted magnitude and a consistent STFT. ``momentum`` is the "fast"
    Griffin-Lim of Perraudin et al. (2013) (0 gives the original algorithm).
    """
    if magnitude.dim() not in (2, 3) or magnitude.size(-2) != n_fft // 2 + 1:
        raise ValueError(f"magnitude must be (..., n_fft // 2 + 1 = {n_fft // 2 + 1}, frames), got "
                         f"{tuple(magnitude.shape)}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    generator = torch.Generator().manual_seed(seed)
    angles = torch.rand(magnitude.shape, generator=generator) * 2 * math.pi
    phase = torch.polar(torch.ones_like(magnitude.cpu()), angles).to(magnitude.device)
    previous = torch.zeros_like(phase)
    for _ in range(n_iter):
        waveform = istft(magnitude * phase, n_fft, hop, length)
        rebuilt = stft(waveform, n_fft, hop)
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous if momentum else rebuilt
        previous = rebuilt
        phase = accelerated / accelerated.abs().clamp_min(1e-8)
    return istft(magnitude * phase, n_fft, hop, length)
