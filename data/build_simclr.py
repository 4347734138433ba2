"""Build fmcourse/shipped/simclr_digits.safetensors: the SimCLR digits encoder of chapter 05, pretrained once.

    python data/build_simclr.py            # about 10 s on a laptop CPU

The recipe is chapter 05's, step for step, on fewer images: scikit-learn's digits split as in
chapters 05 and 06 (``load_digits_split(test_size=500)``), and only the first 1,000 of the training
images, the pool that chapter 06 draws its labels from. Chapter 06's 297 validation images and its 500
test images are never seen, not even without labels, so every validation and test number of chapter
06 is measured on images new to the encoder. An ``MLPEncoder((1, 8, 8), hidden=256, dim=128)`` with a 64-wide
projection head, NT-Xent at temperature 0.5, 200 steps of 256 images with two augmented views each,
AdamW at 5e-3 with 20 warm-up steps, seed 0; no labels are used. Only the encoder's weights are kept
(the projection head is thrown away, as after any SimCLR pretraining). The settings are written
into the file's metadata (entry ``fmcourse``, a JSON document); chapter 06 loads the weights with
``MLPEncoder(...).load_state_dict(load_file(path))``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from fmcourse import env
from fmcourse.data import Augment, atomic_path, load_digits_split, sha256_file
from fmcourse.models import MLPEncoder, SimCLR
from fmcourse.train import fit

OUT = Path(__file__).resolve().parent.parent / "fmcourse" / "shipped" / "simclr_digits.safetensors"
SETTINGS = {"hidden": 256, "dim": 128, "projection_dim": 64, "temperature": 0.5, "steps": 200, "batch_size": 256,
            "lr": 5e-3, "warmup_steps": 20, "seed": 0, "test_images": 500,
            "pretraining_images": 1000}
AUGMENT = dict(crop_scale=(0.5, 1.0), max_rotation=15, blur_p=0.5, blur_sigma=(0.2, 0.8), noise_std=0.1,
               erase_p=0.25, erase_area=(0.05, 0.2))


def main() -> Path:
    s = SETTINGS
    env.seed_everything(s["seed"])
    images, _, train_idx, _ = load_digits_split(test_size=s["test_images"], seed=s["seed"])
    # chapter 06's label pool only: its validation images (train_idx[1000:]) and the test images stay unseen
    x_train = images[train_idx[:s["pretraining_images"]]]
    augment = Augment(**AUGMENT)
    encoder = MLPEncoder((1, 8, 8), hidden=s["hidden"], dim=s["dim"])
    simclr = SimCLR(encoder, projection_dim=s["projection_dim"], temperature=s["temperature"])
    views = torch.Generator().manual_seed(1)

    def two_views():
        x = x_train[torch.randint(len(x_train), (s["batch_size"],), generator=views)]
        return augment(x, views), augment(x, views)

    history = fit(simclr, two_views, lambda model, batch: model.loss(*batch), steps=s["steps"], lr=s["lr"],
                  warmup_steps=s["warmup_steps"], device="cpu", plot=False)
    final_loss = round(history.smoothed_train_loss()[-1], 4)
    # One metadata entry: safetensors writes several in no fixed order, and the bytes should not vary.
    about = {"settings": s, "augment": AUGMENT, "final_loss": final_loss, "made_by": "python data/build_simclr.py"}
    tensors = {name: t.detach().contiguous() for name, t in encoder.state_dict().items()}
    with atomic_path(OUT) as tmp:
        save_file(tensors, tmp, metadata={"fmcourse": json.dumps(about, sort_keys=True)})
    print(f"NT-Xent {history.train_loss[0]:.2f} -> {final_loss} in {history.seconds:.1f} s")
    print(f"{OUT.name}  {OUT.stat().st_size} bytes  sha256 {sha256_file(OUT)}")
    return OUT


if __name__ == "__main__":
    main()
