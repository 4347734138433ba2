"""Chapter 08's models: residual blocks, the ResNet and its class activation maps, the grid detector's
targets, loss and decoding, the VQ-VAE tokenizer and the text-to-image generator."""

import pytest
import torch

from fmcourse.boxes import mean_average_precision
from fmcourse.data.shapes import make_detection_scenes, make_scenes
from fmcourse.models import (VQVAE, AttributeJudge, GridDetector, ResNet, TextToImage, caption_ids, detect,
                             detection_loss, detection_targets, is_held_out)
from fmcourse.nn import ResidualBlock


def test_residual_block_shapes_and_the_identity_path():
    x = torch.randn(2, 8, 16, 16)
    assert ResidualBlock(8, 16, stride=2)(x).shape == (2, 16, 8, 8)
    block = ResidualBlock(8, 8, norm=False)
    with torch.no_grad():
        for p in block.conv2.parameters():
            p.zero_()
    assert torch.equal(block(x), torch.relu(x)), "with F = 0 the block passes its input through"
    plain = ResidualBlock(8, 8, skip=False, norm=False)
    plain.load_state_dict(block.state_dict())
    assert torch.equal(plain(x), torch.zeros_like(x)), "without the shortcut nothing passes"


def test_class_activation_map_averages_to_the_logit():
    torch.manual_seed(0)
    model = ResNet(4, widths=(8,), blocks_per_stage=1).eval()  # no halving: the map has the image's size
    images = torch.rand(3, 3, 16, 16)
    logits = model(images)
    classes = torch.tensor([0, 2, 3])
    maps = model.class_activation_map(images, classes)
    assert maps.shape == (3, 16, 16)
    expected = logits[torch.arange(3), classes] - model.head.bias[classes]
    assert torch.allclose(maps.mean((1, 2)), expected, atol=1e-5)


def perfect_outputs(targets, num_classes=4):
    """Detector outputs that say exactly what the targets say, with confident logits."""
    obj = targets.has_object.float() * 20 - 10
    classes = torch.nn.functional.one_hot(targets.classes, num_classes).float() * 20
    return torch.cat([obj[..., None], targets.codes, classes], -1)


def test_detector_pipeline_recovers_the_true_boxes_from_perfect_outputs():
    scenes = make_detection_scenes(40, seed=7)
    targets = detection_targets(scenes.boxes, scenes.labels, 32, 4)
    assert targets.has_object.sum() == sum(len(b) for b in scenes.boxes)
    outputs = perfect_outputs(targets)
    loss, parts = detection_loss(outputs, targets)
    assert set(parts) == {"objectness", "no-object", "box", "class"} and float(loss) < 1e-3
    model = GridDetector()
    found = detect(model, scenes.images, confidence=0.5, outputs=outputs)
    for f, boxes, labels in zip(found, scenes.boxes, scenes.labels):
        order = f.scores.argsort()  # every score is equal: compare as sets of boxes
        assert len(f.boxes) == len(boxes)
        assert {tuple(b.round(decimals=3).tolist()) for b in f.boxes} == {tuple(b.tolist()) for b in boxes}
        assert sorted(f.labels[order].tolist()) == sorted(labels.tolist())
    assert mean_average_precision(found, list(zip(scenes.boxes, scenes.labels)), 4).mean == pytest.approx(1.0)
    assert model(scenes.images).shape == (40, 4, 4, 9)


def test_detection_targets_refuse_two_centres_in_one_cell():
    boxes = [torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 5.0]])]
    with pytest.raises(ValueError, match="one cell"):
        detection_targets(boxes, [torch.tensor([0, 1])], 32, 4)


def test_vqvae_codes_decoding_and_straight_through_gradient():
    torch.manual_seed(0)
    vq = VQVAE(num_codes=16)
    images = make_scenes(8, seed=0).images
    ids = vq.encode(images)
    assert ids.shape == (8, 16) and ids.min() >= 0 and ids.max() < 16
    assert vq.decode(ids).shape == (8, 3, 16, 16)
    recon, loss = vq(images)
    loss.backward()
    assert recon.shape == images.shape
    assert vq.encoder[0].weight.grad.abs().sum() > 0, "the decoder's gradient reaches the encoder"
    assert vq.codebook.weight.grad.abs().sum() > 0


def test_text_to_image_sequences_loss_and_generation():
    torch.manual_seed(0)
    model = TextToImage(VQVAE(num_codes=16), n_layer=1, d_model=32)
    scenes = make_scenes(6, seed=0)
    ids = model.sequences(scenes.captions, scenes.images)
    assert ids.shape == (6, 24) and torch.equal(ids[:, :8], caption_ids(scenes.captions))
    with torch.no_grad():
        loss = model.loss(ids)
    assert abs(loss.item() - torch.log(torch.tensor(16.0))) < 0.5, "an untrained prior is near uniform over codes"
    images = model.generate(scenes.captions[:2], generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 3, 16, 16) and images.min() >= 0 and images.max() <= 1
    assert not any(p.requires_grad for p in model.tokenizer.parameters()), "the tokenizer stays frozen"


def test_attribute_judge_and_held_out_pairs():
    judge = AttributeJudge()
    scenes = make_scenes(5, seed=0)
    predicted = judge.predict(scenes.images)
    assert set(predicted) == {"shape", "colour", "size", "position"} and predicted["colour"].shape == (5,)
    held = is_held_out(torch.tensor([2, 2, 0]), torch.tensor([0, 1, 2]))  # red triangle, green triangle, blue circle
    assert held.tolist() == [True, False, True]


@pytest.mark.parametrize("bad", [torch.rand(2, 1, 16, 16), torch.rand(2, 3, 8, 8), torch.rand(3, 16, 16)])
def test_images_of_the_wrong_size_or_channel_count_are_refused(bad):
    with pytest.raises(ValueError, match="expected images of shape"):
        ResNet(4)(bad)


def test_captions_with_unknown_words_are_refused():
    with pytest.raises(ValueError, match="outside the shapes world's vocabulary"):
        caption_ids(["a small pink circle at the top left"])
    with pytest.raises(ValueError, match="8 words"):
        caption_ids(["a red circle"])


def test_shipped_vision_models_load_and_do_their_jobs():
    from fmcourse.data.shapes import ATTRIBUTES
    from fmcourse.models import load_vision, vision_info

    info = vision_info()
    assert set(info) == {"detector", "judge", "generator"}
    scenes = make_detection_scenes(100, seed=2)
    found = detect(load_vision("detector"), scenes.images, confidence=0.01)
    assert mean_average_precision(found, list(zip(scenes.boxes, scenes.labels)), 4).mean > 0.9
    test = make_scenes(300, seed=3)
    read = load_vision("judge").predict(test.images)
    for name in ATTRIBUTES:
        assert (read[name] == test.attribute(name)).float().mean() > 0.95, name
    generator = load_vision("generator")
    recon = generator.tokenizer.decode(generator.tokenizer.encode(test.images))
    assert ((recon - test.images) ** 2).mean() < 0.2 * ((test.images - test.images.mean(0)) ** 2).mean()
    with pytest.raises(ValueError, match="unknown vision model"):
        load_vision("segmenter")
