"""Augmentations agree with references (scipy.ndimage, torch.rot90, slicing), keep shapes, dtypes and
devices, and are seeded."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from fmcourse.data.augment import Augment, affine, erase, gaussian_blur


def images(b=3, c=2, h=7, w=7, seed=0, dtype=torch.float64):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def scipy_affine(image: np.ndarray, angle: float, zoom: float, shift: tuple[float, float]) -> np.ndarray:
    """The same transform with scipy, in (row, column) pixel coordinates: output pixel o samples the
    input at c + R^-1 (o - c - shift) / zoom, c the image centre, R a counter-clockwise rotation on screen."""
    h, w = image.shape
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    a = math.radians(angle)
    # on screen (rows grow downwards) a counter-clockwise turn by a maps (row, col) offsets d to
    # (cos a * d_r - sin a * d_c, sin a * d_r + cos a * d_c); its inverse is the transpose
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    inverse = rotation.T / zoom
    move = np.array([shift[1], shift[0]])  # (down, right)
    offset = centre - inverse @ (centre + move)
    return ndimage.affine_transform(image, inverse, offset=offset, order=1, mode="grid-constant", cval=0.0)


def test_affine_matches_scipy_for_random_transforms():
    x = images(b=4, c=1, h=9, w=9)
    g = torch.Generator().manual_seed(1)
    angle = torch.rand(4, generator=g, dtype=torch.float64) * 90 - 45
    zoom = torch.rand(4, generator=g, dtype=torch.float64) + 0.6
    shift = torch.rand(4, 2, generator=g, dtype=torch.float64) * 4 - 2
    got = affine(x, angle, zoom, shift)
    for i in range(4):
        expected = scipy_affine(x[i, 0].numpy(), angle[i].item(), zoom[i].item(), tuple(shift[i].tolist()))
        np.testing.assert_allclose(got[i, 0].numpy(), expected, atol=1e-10)


def test_affine_special_cases():
    x = images()
    torch.testing.assert_close(affine(x), x)  # the identity
    torch.testing.assert_close(affine(x, 90.0), torch.rot90(x, 1, dims=(-2, -1)))  # counter-clockwise
    torch.testing.assert_close(affine(x, -90.0), torch.rot90(x, -1, dims=(-2, -1)))
    moved = affine(x, shift=(2, -1))  # two pixels right, one up
    torch.testing.assert_close(moved[..., :-1, 2:], x[..., 1:, :-2])
    assert moved[..., :, :2].abs().max() < 1e-12 and moved[..., -1, :].abs().max() < 1e-12, "uncovered pixels are 0"


def test_gaussian_blur_matches_scipy_per_image_sigma():
    x = images(b=3, c=2, h=8, w=9)
    sigma = torch.tensor([0.5, 1.0, 1.7], dtype=torch.float64)
    radius = 3
    got = gaussian_blur(x, sigma, radius=radius)
    for i in range(3):
        for c in range(2):
            expected = ndimage.gaussian_filter(x[i, c].numpy(), sigma[i].item(), mode="mirror",
                                               truncate=radius / sigma[i].item())
            np.testing.assert_allclose(got[i, c].numpy(), expected, atol=1e-10)
    torch.testing.assert_close(gaussian_blur(x, 0.0), x)
    torch.testing.assert_close(gaussian_blur(x, 1.0).mean(), x.mean(), atol=0.05, rtol=0)  # nearly keeps the mean


def test_erase_matches_slicing():
    x = images(b=3)
    boxes = torch.tensor([[0, 0, 2, 3], [4, 5, 3, 2], [1, 1, 0, 4]])
    expected = x.clone()
    for i, (top, left, height, width) in enumerate(boxes.tolist()):
        expected[i, :, top:top + height, left:left + width] = 0.5
    torch.testing.assert_close(erase(x, boxes, value=0.5), expected)


def test_augment_keeps_shape_dtype_and_range_and_is_seeded():
    augment = Augment()
    for dtype in (torch.float32, torch.float64):
        x = images(b=16, c=3, h=16, w=16, dtype=dtype)
        a = augment(x, torch.Generator().manual_seed(0))
        assert a.shape == x.shape and a.dtype == dtype and a.device == x.device
        assert a.min() >= 0 and a.max() <= 1
        assert torch.equal(a, augment(x, torch.Generator().manual_seed(0))), "same seed, same views"
        assert not torch.equal(a, augment(x, torch.Generator().manual_seed(1))), "another seed, other views"
        assert not torch.equal(a, x)
    torch.manual_seed(3)
    first = augment(x)
    torch.manual_seed(3)
    assert torch.equal(first, augment(x)), "without a generator, torch's global seed decides"


def test_augment_draws_differently_for_each_image_of_a_batch():
    x = images(b=1, c=1, h=12, w=12).expand(8, -1, -1, -1)
    views = Augment(noise_std=0.0, blur_p=0.0, erase_p=0.0)(x, torch.Generator().manual_seed(0))
    distinct = {tuple(v.flatten().tolist()) for v in views}
    assert len(distinct) == 8


def test_augment_with_nothing_to_do_is_the_identity():
    x = images(b=4, c=1, h=8, w=8)
    neutral = Augment(crop_scale=(1.0, 1.0), max_rotation=0, blur_p=0, noise_std=0, erase_p=0)
    torch.testing.assert_close(neutral(x, torch.Generator().manual_seed(0)), x)


def test_augment_noise_has_the_asked_spread():
    x = torch.full((64, 1, 16, 16), 0.5)
    only_noise = Augment(crop_scale=(1.0, 1.0), max_rotation=0, blur_p=0, noise_std=0.1, erase_p=0)
    noisy = only_noise(x, torch.Generator().manual_seed(0))
    assert abs((noisy - x).std().item() - 0.1) < 0.005 and abs((noisy - x).mean().item()) < 0.005


def test_bad_input_is_refused_clearly():
    with pytest.raises(TypeError, match=r"\(B, C, H, W\)"):
        Augment()(torch.rand(8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        affine(torch.zeros(2, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        affine(images(), angle=torch.zeros(2))
    with pytest.raises(ValueError, match="zoom must be > 0"):
        affine(images(), zoom=0.0)
    with pytest.raises(ValueError, match="radius"):
        gaussian_blur(images(h=4, w=4), 1.0, radius=4)
    with pytest.raises(ValueError, match="boxes"):
        erase(images(), torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="crop_scale"):
        Augment(crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="probability"):
        Augment(erase_p=1.5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cpu_generator_gives_the_same_views_on_cuda():
    x = images(b=16, c=3, h=16, w=16, dtype=torch.float32)
    augment = Augment()
    on_cpu = augment(x, torch.Generator().manual_seed(0))
    on_cuda = augment(x.cuda(), torch.Generator().manual_seed(0))
    assert on_cuda.device.type == "cuda"
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, atol=1e-5, rtol=1e-5)
