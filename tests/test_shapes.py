"""The shapes world: seeded, well-formed, and every caption describes what is drawn, as read back from
the pixels by simple geometry (colour, centroid, extent, fill), independently of how they were drawn."""

import pytest
import torch

from fmcourse.data.shapes import ATTRIBUTES, COLOURS, PAD, VOCAB, Scenes, caption, encode_captions, make_scenes

BACKGROUND = 0.1


def read_scene(image: torch.Tensor) -> dict:
    """What one image (3, H, W) shows, from its pixels: colour, position, extent and shape."""
    foreground = (image - BACKGROUND).abs().amax(0) > 0.25  # (H, W): far from the dark background
    rows, cols = torch.nonzero(foreground, as_tuple=True)
    H, W = foreground.shape
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    extent = max(height, width).item()
    fill = len(rows) / (height * width).item()  # share of the bounding box that is covered
    # how far the mass sits below the box's middle: a triangle with its apex up is bottom-heavy
    lower = (rows.float().mean() - (rows.max() + rows.min()) / 2).item() / extent
    if fill == 1.0:
        shape = "square"
    elif lower > 0.08:
        shape = "triangle"
    elif fill < 0.72:
        shape = "cross"
    else:
        shape = "circle"
    mean_colour = image[:, foreground].mean(1)  # (3,)
    palette = torch.tensor(list(COLOURS.values()))
    colour = list(COLOURS)[(palette - mean_colour).norm(dim=1).argmin()]
    vertical = "bottom" if rows.float().mean() >= H / 2 else "top"
    horizontal = "right" if cols.float().mean() >= W / 2 else "left"
    return {"shape": shape, "colour": colour, "position": f"{vertical} {horizontal}", "extent": extent}


@pytest.mark.parametrize("image_size", [16, 20, 24, 32])
def test_every_caption_describes_the_drawn_scene(image_size):
    scenes = make_scenes(600, seed=3, image_size=image_size)
    extents = {(shape, size): [] for shape in ATTRIBUTES["shape"] for size in ATTRIBUTES["size"]}
    for image, text in zip(scenes.images, scenes.captions):
        seen = read_scene(image)
        _, size, colour, shape, _, _, vertical, horizontal = text.split()
        assert (seen["shape"], seen["colour"], seen["position"]) == (shape, colour, f"{vertical} {horizontal}"), text
        extents[shape, size].append(seen["extent"])
    for shape in ATTRIBUTES["shape"]:
        assert max(extents[shape, "small"]) < min(extents[shape, "large"]), f"a small {shape} is drawn smaller"


def test_scenes_are_seeded_well_formed_and_cover_every_attribute():
    scenes = make_scenes(2000, seed=0)
    assert scenes.images.shape == (2000, 3, 16, 16) and scenes.images.dtype == torch.float32
    assert scenes.images.min() >= 0 and scenes.images.max() <= 1
    again = make_scenes(2000, seed=0)
    assert torch.equal(scenes.images, again.images) and scenes.captions == again.captions
    assert not torch.equal(scenes.images, make_scenes(2000, seed=1).images)
    for name, values in ATTRIBUTES.items():
        counts = torch.bincount(scenes.attribute(name), minlength=len(values))
        assert len(counts) == len(values) and counts.min() > 0.7 * 2000 / len(values), f"{name} uneven: {counts}"
    assert len({tuple(image.flatten().tolist()) for image in scenes.images[:200]}) == 200, "no two scenes alike"


def test_indexing_keeps_images_and_captions_together():
    scenes = make_scenes(50, seed=2)
    chosen = scenes.shape == ATTRIBUTES["shape"].index("triangle")
    subset = scenes[chosen]
    assert isinstance(subset, Scenes) and len(subset) == int(chosen.sum())
    assert all(" triangle " in text for text in subset.captions)
    assert torch.equal(subset.images, scenes.images[chosen])
    assert scenes[3:5].captions == scenes.captions[3:5]


def test_captions_encode_to_word_ids_and_back():
    texts = ["a small red circle at the top left", "a blue square"]
    ids, is_token = encode_captions(texts)
    assert ids.shape == is_token.shape == (2, 8) and ids.dtype == torch.int64
    assert is_token[0].all() and is_token[1].sum() == 3
    for text, row, real in zip(texts, ids, is_token):
        assert " ".join(VOCAB[i] for i in row[real]) == text
        assert all(VOCAB[i] == PAD for i in row[~real])


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="vocabulary.*'hexagon'"):
        encode_captions(["a small red hexagon"])
    with pytest.raises(TypeError, match="list of strings"):
        encode_captions("a small red circle")
    with pytest.raises(ValueError, match="unknown colour 'pink'"):
        caption("circle", "pink", "small", "top left")
    with pytest.raises(ValueError, match="image_size"):
        make_scenes(10, image_size=12)
    with pytest.raises(ValueError, match="positive int"):
        make_scenes(0)
    with pytest.raises(ValueError, match="unknown attribute"):
        make_scenes(3).attribute("texture")


def test_detection_scenes_boxes_and_labels_agree_with_the_pixels():
    from fmcourse.data.shapes import SHAPES, make_detection_scenes

    scenes = make_detection_scenes(300, seed=5)
    assert scenes.images.shape == (300, 3, 32, 32) and len(scenes.boxes) == len(scenes.labels) == 300
    counts = torch.tensor([len(b) for b in scenes.boxes])
    assert counts.min() == 1 and counts.max() == 3
    for image, boxes, labels, colours in zip(scenes.images, scenes.boxes, scenes.labels, scenes.colours):
        foreground = (image - BACKGROUND).abs().amax(0) > 0.25
        covered = torch.zeros_like(foreground)
        for box, label, colour in zip(boxes.long().tolist(), labels.tolist(), colours.tolist()):
            x1, y1, x2, y2 = box
            covered[y1:y2, x1:x2] = True
            # the box with a one-pixel margin holds this shape alone: read it like a single scene
            crop = torch.full((3, y2 - y1 + 2, x2 - x1 + 2), BACKGROUND)
            ys, xs = slice(max(y1 - 1, 0), y2 + 1), slice(max(x1 - 1, 0), x2 + 1)
            part = image[:, ys, xs]
            crop[:, ys.start - (y1 - 1):ys.start - (y1 - 1) + part.shape[1], xs.start - (x1 - 1):xs.start - (x1 - 1) + part.shape[2]] = part
            seen = read_scene(crop)
            assert (seen["shape"], seen["colour"]) == (SHAPES[label], list(COLOURS)[colour])
            rows, cols = torch.nonzero((crop - BACKGROUND).abs().amax(0) > 0.25, as_tuple=True)
            assert (rows.min(), cols.min(), rows.max(), cols.max()) == (1, 1, y2 - y1, x2 - x1), "box is the tight box"
        assert not (foreground & ~covered).any(), "every drawn pixel lies in a box"
    again = make_detection_scenes(300, seed=5)
    assert torch.equal(again.images, scenes.images) and all(torch.equal(a, b) for a, b in zip(again.boxes, scenes.boxes))
