"""Speech: features against references and known answers, CTC decoding and error rates by hand and
against jiwer, the eSpeak NG world (tolerant of output that is not bit-identical), the speech models."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fmcourse import audio, decoding, metrics
from fmcourse.data import speech
from fmcourse.models.speech import (RecognizerConfig, SpeechRecognizer, SpeechSynthesizer, SynthesizerConfig,
                                    ctc_loss, ids_to_text, speech_batch, text_to_ids, tts_batch, tts_loss)

needs_espeak = pytest.mark.skipif(not speech.available(), reason="eSpeak NG (fmcourse[speech]) is not installed")


def chirp(seconds: float = 0.5, rate: int = 8000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return 0.5 * torch.sin(2 * math.pi * (300 * t + 1500 * t**2)) + 0.2 * torch.sin(2 * math.pi * 1200 * t)


# --- features -------------------------------------------------------------------------------------------------

def test_stft_then_istft_gives_the_signal_back():
    x = chirp()
    spectrum = audio.stft(x, 256, 64)
    assert spectrum.shape == (129, len(x) // 64 + 1)
    assert torch.allclose(audio.istft(spectrum, 256, 64, length=len(x)), x, atol=1e-5)


def test_stft_of_a_pure_tone_peaks_at_its_bin():
    rate, n_fft = 8000, 256
    k = 20                                               # a tone exactly on bin 20: 625 Hz
    t = torch.arange(4000) / rate
    magnitude = audio.stft_magnitude(torch.sin(2 * math.pi * k * rate / n_fft * t), n_fft, 64)
    assert (magnitude[:, 5:-5].argmax(0) == k).all()
    # a Hann-windowed unit sine on a bin: peak = sum(window) / 2
    assert torch.allclose(magnitude[k, 5:-5], torch.tensor(n_fft / 4), rtol=1e-3)


@pytest.mark.parametrize("n_mels,n_fft,rate,f_min,f_max", [(40, 256, 16000, 40.0, None), (8, 64, 8000, 0.0, 3000.0)])
def test_mel_filterbank_equals_the_reference(n_mels, n_fft, rate, f_min, f_max):
    from transformers.audio_utils import mel_filter_bank

    reference = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=f_min,
                                max_frequency=f_max or rate / 2, sampling_rate=rate, norm=None, mel_scale="htk")
    ours = audio.mel_filterbank(n_mels, n_fft, rate, f_min, f_max)
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)


def test_mel_filterbank_hand_computed():
    # 1 mel band between 0 Hz and Nyquist: centre at mel(Nyquist) / 2, a triangle rising from 0 Hz
    fb = audio.mel_filterbank(1, 8, 8000)
    centre = audio.mel_to_hz(audio.hz_to_mel(4000.0) / 2)
    freqs = torch.arange(5) * 1000.0
    expected = torch.where(freqs <= centre, freqs / centre, (4000 - freqs) / (4000 - centre))
    assert torch.allclose(fb[:, 0], expected.float(), atol=1e-6)
    assert abs(audio.hz_to_mel(1000.0) - 999.99) < 0.1        # the HTK scale puts 1 kHz near 1000 mel


def test_log_mel_shapes_rate_check_and_inverse():
    features = audio.MelFeatures(sample_rate=8000, n_fft=256, hop=64, n_mels=32)
    x = chirp()
    log_mel = features(x, sample_rate=8000)
    assert log_mel.shape == (features.frames(len(x)), 32)
    assert features(torch.stack([x, x])).shape == (2, *log_mel.shape)
    with pytest.raises(ValueError, match="built for 8000 Hz"):
        features(x, sample_rate=16000)
    # back to a non-negative magnitude whose mels are close to the given ones
    magnitude = features.to_magnitude(log_mel)
    assert magnitude.shape == (129, len(log_mel)) and (magnitude >= 0).all()
    again = (magnitude.transpose(0, 1) @ features.filterbank).clamp_min(features.floor).log()
    assert (again - log_mel).abs().mean() < 0.05
    start = (features.to_magnitude(log_mel, n_iter=0).transpose(0, 1) @ features.filterbank).clamp_min(features.floor).log()
    assert (again - log_mel).abs().mean() < (start - log_mel).abs().mean()   # the updates improve on the pseudo-inverse


@pytest.mark.parametrize("bad,error", [(torch.zeros(2, 2, 100), ValueError), (torch.zeros(0), ValueError),
                                       (torch.zeros(100, dtype=torch.int16), TypeError), ([0.0] * 100, TypeError)])
def test_features_reject_bad_audio(bad, error):
    with pytest.raises(error):
        audio.MelFeatures()(bad)


def test_griffin_lim_recovers_a_known_magnitude():
    x = chirp()
    magnitude = audio.stft_magnitude(x, 256, 64)
    y = audio.griffin_lim(magnitude, 256, 64, n_iter=60, length=len(x))
    # spectral convergence ||S - |STFT(y)||| / ||S||: random phases start near 1
    error = (audio.stft_magnitude(y, 256, 64) - magnitude).norm() / magnitude.norm()
    assert error < 0.15, error
    one_step = audio.griffin_lim(magnitude, 256, 64, n_iter=1, length=len(x))
    assert (audio.stft_magnitude(one_step, 256, 64) - magnitude).norm() / magnitude.norm() > error


# --- CTC decoding and error rates ---------------------------------------------------------------------------------

def test_ctc_collapse_hand_examples():
    assert decoding.ctc_collapse([1, 1, 0, 1, 2, 2]) == [1, 1, 2]
    assert decoding.ctc_collapse([0, 0, 0]) == []
    assert decoding.ctc_collapse([3, 3, 3]) == [3]
    assert decoding.ctc_collapse([5, 0, 5, 5, 0, 0, 6], blank=0) == [5, 5, 6]
    assert decoding.ctc_collapse([1, 2, 1], blank=2) == [1, 1]


def test_ctc_greedy_reads_the_best_path_and_respects_lengths():
    best = torch.tensor([[1, 1, 0, 2, 2, 0], [3, 0, 3, 3, 1, 1]])
    log_probs = F.one_hot(best, 4).float().log_softmax(-1)
    assert decoding.ctc_greedy(log_probs) == [[1, 2], [3, 3, 1]]
    assert decoding.ctc_greedy(log_probs, lengths=[3, 4]) == [[1], [3, 3]]
    with pytest.raises(ValueError):
        decoding.ctc_greedy(log_probs[0])


def test_edit_distance_hand_worked():
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.edit_distance("", "abc") == 3
    assert metrics.edit_distance("abc", "abc") == 0
    assert metrics.edit_distance("seven one".split(), "seven nine one".split()) == 1


def test_error_rates_hand_worked_and_against_jiwer():
    jiwer = pytest.importorskip("jiwer")
    assert metrics.character_error_rate(["sevn"], ["seven"]) == pytest.approx(1 / 5)
    assert metrics.word_error_rate(["turn lift now"], ["turn left"]) == pytest.approx(2 / 2)
    hyps = ["seven three one", "turn lef", "a smal red circle at the top", "go", "nine nine"]
    refs = ["seven three one", "turn left", "a small red circle at the top left", "stop", "nine"]
    assert metrics.character_error_rate(hyps, refs) == pytest.approx(jiwer.cer(refs, hyps))
    assert metrics.word_error_rate(hyps, refs) == pytest.approx(jiwer.wer(refs, hyps))
    with pytest.raises(ValueError):
        metrics.character_error_rate(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        metrics.word_error_rate([""], [""])


# --- the speech world -------------------------------------------------------------------------------------------

def test_phrases_and_utterances_are_seeded_and_split():
    split = speech.split_phrases(seed=0)
    assert split == speech.split_phrases(seed=0)
    assert not set(split.train["digits"]) & set(split.test["digits"])
    assert len(split.train["digits"]) + len(split.test["digits"]) == 1110
    assert not set(speech.TRAIN_VOICES) & set(speech.TEST_VOICES)
    a = speech.utterances(50, speech.TRAIN_VOICES, split.train, seed=3)
    assert a == speech.utterances(50, speech.TRAIN_VOICES, split.train, seed=3)
    assert a != speech.utterances(50, speech.TRAIN_VOICES, split.train, seed=4)
    assert all(set(u.text) <= set(speech.ALPHABET) for u in a)


def test_resample_keeps_a_tone_and_removes_what_cannot_be_represented():
    t = torch.arange(22050) / 22050
    low = speech.resample(torch.sin(2 * math.pi * 1000 * t), 22050, 11025)
    assert len(low) == 11025
    expected = torch.sin(2 * math.pi * 1000 * torch.arange(11025) / 11025)
    # the same tone, up to the filter's delay of a fraction of a sample
    assert F.cosine_similarity(low[100:-100], expected[100:-100], dim=0) > 0.99
    high = speech.resample(torch.sin(2 * math.pi * 8000 * t), 22050, 11025)   # above the new Nyquist (5512 Hz)
    assert high[100:-100].abs().max() < 0.05


@needs_espeak
def test_synthesis_and_its_cache_match_the_transcripts(tmp_path, monkeypatch):
    monkeypatch.setenv("FMCOURSE_CACHE", str(tmp_path))
    items = [speech.Utterance("seven three", "en-us+f2", 160, 50), speech.Utterance("turn left", "en+m3", 200, 30)]
    clips = speech.speech_clips(items)
    assert clips.texts == [u.text for u in items]
    assert list((tmp_path / "speech").glob("*.safetensors"))
    fresh = [speech.synthesize(u.text, u.voice, u.rate, u.pitch) for u in items]
    features = audio.MelFeatures()
    for cached, new in zip(clips.waveforms, fresh):
        # eSpeak NG may differ in the last bits from run to run: compare lengths and spectra with tolerance
        assert abs(len(cached) - len(new)) <= 0.02 * len(new)
        n = min(len(cached), len(new))
        assert (features(cached[:n]) - features(new[:n])).abs().mean() < 0.5
    # a different text gives a different clip: the transcript is what was spoken
    other = features(speech.synthesize("nine", "en-us+f2", 160, 50))
    assert abs(len(other) - len(features(clips.waveforms[0]))) > 10
    again = speech.speech_clips(items, augmented=True, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(again.waveforms, speech.speech_clips(items, augmented=True, seed=1).waveforms))


def test_missing_library_gets_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setattr(speech, "_INSTANCE", None)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    with pytest.raises(speech.SpeechLibraryError, match=r'pip install "fmcourse\[speech\]"'):
        speech.synthesize("go")
    assert not speech.available()


@needs_espeak
@pytest.mark.parametrize("text", ["", "Hello", "go 2", 7])
def test_bad_text_is_refused(text):
    with pytest.raises((ValueError, TypeError)):
        speech.synthesize(text)


# --- the models ----------------------------------------------------------------------------------------------------

def test_text_ids_round_trip_and_unknown_symbols():
    assert ids_to_text(text_to_ids("turn left")) == "turn left"
    with pytest.raises(ValueError, match="outside the alphabet"):
        text_to_ids("turn left!")


def test_recognizer_shapes_and_ctc_loss_is_torchs():
    torch.manual_seed(0)
    model = SpeechRecognizer(RecognizerConfig(d_model=32, n_layer=1, n_head=2)).eval()
    waves = [chirp(0.3, 11025), chirp(0.5, 11025)]
    batch = speech_batch(waves, ["go", "stop"], model.features)
    log_probs, lengths = model(batch[0], batch[1])
    assert log_probs.shape == (2, math.ceil(batch[0].size(1) / 3), 1 + len(speech.ALPHABET))
    assert lengths.tolist() == [(n + 2) // 3 for n in batch[1].tolist()]
    expected = F.ctc_loss(log_probs.transpose(0, 1), batch[2], lengths, batch[3], blank=0, zero_infinity=True)
    assert torch.allclose(ctc_loss(model, batch), expected)
    assert all(isinstance(t, str) for t in model.transcribe(waves))
    with pytest.raises(ValueError, match="built for 11025 Hz"):
        model.transcribe(waves, sample_rate=16000)
    with pytest.raises(ValueError, match="n_mels=40"):
        model(torch.zeros(1, 10, 12))


def test_synthesizer_learns_a_tiny_set_and_refuses_unknown_symbols():
    torch.manual_seed(0)
    config = SynthesizerConfig(d_model=32, n_head=2, prenet=32, max_steps=20)
    model = SpeechSynthesizer(config)
    mels = [torch.randn(12, 40) * 0.1 - 2, torch.randn(20, 40) * 0.1]
    batch = tts_batch(["go", "stop"], mels, config)
    assert batch[1].shape == (2, 5, config.reduction * 40) and batch[2].tolist() == [3, 5]
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    first = tts_loss(model, batch).item()
    for _ in range(60):
        loss = tts_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    log_mel, alignment = model.synthesize("go", max_steps=8)
    assert log_mel.size(1) == 40 and alignment.shape == (log_mel.size(0) // config.reduction, 2)
    with pytest.raises(ValueError, match="outside the alphabet"):
        model.synthesize("go!")
