"""Train chapter 09's speech recognizer and synthesizer and ship them.

    python bench/speech_models.py            # all three runs; about 40 minutes on a busy 2-core CPU
    python bench/speech_models.py --only asr # or tts, or baseline (the recognizer without Transformer blocks)

Writes fmcourse/shipped/speech_recognizer.safetensors and speech_synthesizer.safetensors (float16, the
config and the measurements in their metadata) and fmcourse/shipped/speech_models.json (the
measurements and loss curves, which chapter 09 loads), which also holds the baseline: the same recognizer without its Transformer blocks, trained the same way. Every clip is made
by eSpeak NG (fmcourse[speech]) from seeds, so the run needs no download; eSpeak's output may differ in
its last bits between machines, so a rerun gives close, not identical, weights.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fmcourse import env, metrics
from fmcourse.data import speech
from fmcourse.models.speech import (RecognizerConfig, SpeechRecognizer, SpeechSynthesizer, SynthesizerConfig,
                                    ctc_loss, pad_features, pad_ids, save_speech_model, tts_batch, tts_loss)
from fmcourse.train import fit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "fmcourse" / "shipped" / "speech_models.json"

# the recognizer's data: training voices x training phrases (augmented); tests on held-out voices
ASR_TRAIN, ASR_TEST = 4000, 400
TTS_VOICE, TTS_RATE, TTS_PITCH = "en-us", 170, 50   # one speaker for the synthesizer


def bucketed(features: list[torch.Tensor], texts: list[str], batch_size: int, seed: int):
    """A batch function: ``batch_size`` clips of similar length (a random run of the length-sorted list)."""
    order = sorted(range(len(features)), key=lambda i: len(features[i]))
    generator = torch.Generator().manual_seed(seed)

    def batch():
        start = int(torch.randint(0, len(order) - batch_size + 1, (), generator=generator))
        chosen = order[start:start + batch_size]
        log_mel, lengths = pad_features([features[i] for i in chosen])
        return (log_mel, lengths, *pad_ids([texts[i] for i in chosen]))

    return batch


def asr_test_sets(split: speech.PhraseSplit) -> dict[str, speech.SpeechClips]:
    """Held-out voices: on held-out phrases, clean and augmented; on training voices, held-out phrases."""
    unseen = speech.utterances(ASR_TEST, speech.TEST_VOICES, split.test, seed=2)
    return {
        "held-out voices and phrases, clean": speech.speech_clips(unseen),
        "held-out voices and phrases, augmented": speech.speech_clips(unseen, augmented=True, seed=3),
        "training voices, held-out phrases, augmented": speech.speech_clips(
            speech.utterances(ASR_TEST, speech.TRAIN_VOICES, split.test, seed=4), augmented=True, seed=5),
    }


def error_rates(model: SpeechRecognizer, clips: speech.SpeechClips) -> dict[str, float]:
    heard = model.transcribe(clips.waveforms)
    return {"cer": metrics.character_error_rate(heard, clips.texts),
            "wer": metrics.word_error_rate(heard, clips.texts)}


def train_asr(steps: int, n_layer: int = 3) -> dict:
    """The recognizer; with ``n_layer=0``, the baseline without Transformer blocks (convolutions and a
    linear layer over about 90 ms of log-mels per output frame), trained the same way and not shipped."""
    env.seed_everything(0)
    split = speech.split_phrases()
    train = speech.speech_clips(speech.utterances(ASR_TRAIN, speech.TRAIN_VOICES, split.train, seed=0),
                                augmented=True, seed=1)
    model = SpeechRecognizer(RecognizerConfig(n_layer=n_layer))
    features = [model.features(w) for w in train.waveforms]
    start = time.perf_counter()
    history = fit(model, bucketed(features, train.texts, 32, seed=0), ctc_loss, steps=steps, lr=2e-3,
                  weight_decay=0.01, warmup_steps=100, plot=False, progress=True)
    seconds = time.perf_counter() - start
    model.eval()
    results = {name: error_rates(model, clips) for name, clips in asr_test_sets(split).items()}
    info = {"steps": steps, "train_clips": ASR_TRAIN, "seconds": round(seconds, 1),
            "final_train_loss": history.train_loss[-1], "test": results,
            "parameters": sum(p.numel() for p in model.parameters())}
    if n_layer:
        save_speech_model(model, ROOT / "fmcourse" / "shipped" / "speech_recognizer.safetensors", info)
    info["loss_curve"] = history.train_loss[::10]
    return info


def tts_data(phrases: list[str]) -> tuple[list[str], list[torch.Tensor]]:
    """The synthesizer's one speaker saying each phrase once: texts and log-mels ``(T_i, n_mels)``."""
    items = [speech.Utterance(p, TTS_VOICE, TTS_RATE, TTS_PITCH) for p in phrases]
    features = SpeechSynthesizer(SynthesizerConfig()).features
    return phrases, [features(w) for w in speech.synthesize_all(items)]


def train_tts(steps: int) -> dict:
    env.seed_everything(0)
    split = speech.split_phrases()
    texts, mels = tts_data(split.train["digits"] + split.train["commands"])
    model = SpeechSynthesizer(SynthesizerConfig())
    generator = torch.Generator().manual_seed(0)

    def batch():
        chosen = torch.randint(0, len(texts), (32,), generator=generator).tolist()
        return tts_batch([texts[i] for i in chosen], [mels[i] for i in chosen], model.config)

    start = time.perf_counter()
    history = fit(model, batch, tts_loss, steps=steps, lr=2e-3, weight_decay=0.01, warmup_steps=100,
                  plot=False, progress=True)
    seconds = time.perf_counter() - start
    # the recognizer (if trained) listens to the synthesizer on phrases it never saw
    info = {"steps": steps, "train_phrases": len(texts), "seconds": round(seconds, 1),
            "final_train_loss": history.train_loss[-1], "parameters": sum(p.numel() for p in model.parameters())}
    asr_path = ROOT / "fmcourse" / "shipped" / "speech_recognizer.safetensors"
    if asr_path.exists():
        from fmcourse.models.speech import load_speech_model

        asr, _ = load_speech_model(asr_path)
        test = split.test["digits"][:60]
        torch.manual_seed(0)
        heard = asr.transcribe([model.to_waveform(model.synthesize(t)[0]) for t in test])
        info["asr_cer_on_synthesized_test_digits"] = metrics.character_error_rate(heard, test)
    save_speech_model(model, ROOT / "fmcourse" / "shipped" / "speech_synthesizer.safetensors", info)
    info["loss_curve"] = history.train_loss[::10]
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("asr", "tts", "baseline"))
    parser.add_argument("--asr-steps", type=int, default=1500)
    parser.add_argument("--tts-steps", type=int, default=2000)
    args = parser.parse_args()
    runs = (("recognizer", train_asr, args.asr_steps), ("synthesizer", train_tts, args.tts_steps),
            ("recognizer_without_transformer", lambda steps: train_asr(steps, n_layer=0), args.asr_steps))
    for name, train, steps in runs:
        if args.only not in (None, {"recognizer": "asr", "synthesizer": "tts",
                                    "recognizer_without_transformer": "baseline"}[name]):
            continue
        info = train(steps)
        print(json.dumps({k: v for k, v in info.items() if k != "loss_curve"}, indent=1), flush=True)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[name] = info
        RESULTS.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
