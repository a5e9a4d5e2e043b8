"""course_utils.imaging against SciPy (and PyTorch) on random inputs, plus edge cases and bad inputs."""
import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from course_utils import imaging as im

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- correlate / convolve

@pytest.mark.parametrize("seed", range(5))
def test_correlate_and_convolve_match_scipy_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 30, size=2)
    kh, kw = rng.choice([1, 3, 5, 7], size=2)
    x = rng.normal(size=(h, w))
    k = rng.normal(size=(kh, kw))
    got_corr = im.correlate2d(x, k)
    got_conv = im.convolve2d(x, k)
    assert got_corr.shape == x.shape and got_conv.shape == x.shape
    np.testing.assert_allclose(got_corr, signal.correlate2d(x, k, mode="same"), atol=1e-12)
    np.testing.assert_allclose(got_corr, ndimage.correlate(x, k, mode="constant", cval=0.0), atol=1e-12)
    np.testing.assert_allclose(got_conv, signal.convolve2d(x, k, mode="same"), atol=1e-12)


def test_correlate_matches_torch_conv2d():
    x = RNG.normal(size=(12, 17))
    k = RNG.normal(size=(3, 5))
    ref = torch.nn.functional.conv2d(torch.from_numpy(x)[None, None], torch.from_numpy(k)[None, None],
                                     padding=(1, 2))[0, 0].numpy()
    np.testing.assert_allclose(im.correlate2d(x, k), ref, atol=1e-12)


def test_correlation_and_convolution_differ_for_an_asymmetric_kernel():
    impulse = np.zeros((5, 5))
    impulse[2, 2] = 1.0
    k = np.arange(9.0).reshape(3, 3)
    # convolving an impulse copies the kernel; correlating copies it flipped
    np.testing.assert_array_equal(im.convolve2d(impulse, k)[1:4, 1:4], k)
    np.testing.assert_array_equal(im.correlate2d(impulse, k)[1:4, 1:4], k[::-1, ::-1])


def test_correlate_accepts_uint8_and_ints_without_overflow():
    x = np.full((4, 4), 250, dtype=np.uint8)
    out = im.correlate2d(x, np.ones((3, 3), dtype=np.int64))
    assert out.dtype == np.float64 and out[1, 1] == 9 * 250


def test_correlate_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        im.correlate2d(np.zeros((4, 4, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="each channel"):
        im.correlate2d(np.zeros((4, 4, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="2-D"):
        im.correlate2d(np.zeros(4), np.ones((3, 3)))
    with pytest.raises(ValueError, match="kernel"):
        im.correlate2d(np.zeros((4, 4)), np.ones(3))
    with pytest.raises(ValueError, match="odd"):
        im.correlate2d(np.zeros((4, 4)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="odd"):
        im.convolve2d(np.zeros((4, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="empty"):
        im.correlate2d(np.zeros((0, 4)), np.ones((3, 3)))
    with pytest.raises(TypeError, match="real numbers"):
        im.correlate2d(np.array([["a", "b"]]), np.ones((1, 1)))


# ----------------------------------------------------------------------------- kernels

@pytest.mark.parametrize("size,sigma", [(3, 0.8), (5, 1.0), (7, 2.5), (1, 1.0)])
def test_gaussian_kernel_is_normalised_symmetric_and_matches_scipy(size, sigma):
    k = im.gaussian_kernel(size, sigma)
    assert k.shape == (size, size)
    assert k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, k.T)
    np.testing.assert_allclose(k, k[::-1, ::-1])
    assert k.argmax() == (size * size) // 2  # peak in the centre
    # SciPy's sampled Gaussian filter applied to an impulse gives the same (normalised) kernel
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    ref = ndimage.gaussian_filter(impulse, sigma, mode="constant", truncate=(size // 2) / sigma)
    np.testing.assert_allclose(k, ref / ref.sum(), atol=1e-12)


def test_gaussian_filtering_matches_scipy_in_the_interior():
    x = RNG.random((40, 40))
    sigma, size = 1.5, 9
    ours = im.correlate2d(x, im.gaussian_kernel(size, sigma))
    ref = ndimage.gaussian_filter(x, sigma, truncate=4 / sigma)
    np.testing.assert_allclose(ours[4:-4, 4:-4], ref[4:-4, 4:-4], atol=1e-12)


@pytest.mark.parametrize("size", [2, 4, 0, -3])
def test_gaussian_kernel_rejects_even_or_non_positive_size(size):
    with pytest.raises(ValueError, match="odd"):
        im.gaussian_kernel(size, 1.0)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf")])
def test_gaussian_kernel_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        im.gaussian_kernel(5, sigma)


def test_gaussian_kernel_rejects_non_int_size():
    with pytest.raises(TypeError, match="int"):
        im.gaussian_kernel(5.0, 1.0)


def test_difference_kernels_compute_the_finite_difference_formulas():
    x = RNG.normal(size=(8, 9))
    fx = im.correlate2d(x, im.difference_kernel("forward", "x"))
    bx = im.correlate2d(x, im.difference_kernel("backward", "x"))
    cx = im.correlate2d(x, im.difference_kernel("central", "x"))
    cy = im.correlate2d(x, im.difference_kernel("central", "y"))
    np.testing.assert_allclose(fx[:, :-1], x[:, 1:] - x[:, :-1])
    np.testing.assert_allclose(bx[:, 1:], x[:, 1:] - x[:, :-1])
    np.testing.assert_allclose(cx[:, 1:-1], (x[:, 2:] - x[:, :-2]) / 2)
    np.testing.assert_allclose(cy[1:-1, :], (x[2:, :] - x[:-2, :]) / 2)
    # central difference equals np.gradient inside the image
    np.testing.assert_allclose(cx[:, 1:-1], np.gradient(x, axis=1)[:, 1:-1])
    assert im.difference_kernel("forward", "y").shape == (3, 1)
    with pytest.raises(ValueError, match="kind"):
        im.difference_kernel("sideways")
    with pytest.raises(ValueError, match="axis"):
        im.difference_kernel("central", "z")


def test_laplacian_kernel_matches_scipy_laplace_and_sums_to_zero():
    k = im.laplacian_kernel()
    assert k.sum() == 0 and k[1, 1] == -4
    np.testing.assert_array_equal(k, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    x = RNG.normal(size=(10, 11))
    np.testing.assert_allclose(im.correlate2d(x, k), ndimage.laplace(x, mode="constant"), atol=1e-12)
    assert im.laplacian_kernel(diagonals=True).sum() == 0


def test_sobel_kernel_matches_scipy_sobel():
    x = RNG.normal(size=(10, 11))
    np.testing.assert_allclose(im.correlate2d(x, im.sobel_kernel("x")),
                               ndimage.sobel(x, axis=1, mode="constant"), atol=1e-12)
    np.testing.assert_allclose(im.correlate2d(x, im.sobel_kernel("y")),
                               ndimage.sobel(x, axis=0, mode="constant"), atol=1e-12)
    with pytest.raises(ValueError, match="axis"):
        im.sobel_kernel("z")


# ----------------------------------------------------------------------------- Bayer

def test_bayer_masks_layouts():
    letters = np.array(list("RGB"))
    for pattern in im.BAYER_PATTERNS:
        m = im.bayer_masks((4, 6), pattern)
        assert m.shape == (4, 6, 3) and m.dtype == bool
        assert (m.sum(axis=2) == 1).all()  # one colour per pixel
        tile = "".join(letters[m[:2, :2].argmax(axis=2)].ravel())
        assert tile == pattern
        assert m[..., 1].mean() == 0.5 and m[..., 0].mean() == 0.25 and m[..., 2].mean() == 0.25
    # BGGR is RGGB shifted by one pixel in both directions
    np.testing.assert_array_equal(im.bayer_masks((6, 6), "BGGR")[1:, 1:], im.bayer_masks((5, 5), "RGGB"))
    assert im.bayer_masks((3, 3), "rggb").shape == (3, 3, 3)  # case-insensitive


def test_bayer_mosaic_picks_one_channel_per_pixel_and_keeps_dtype():
    rgb = RNG.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    mos = im.bayer_mosaic(rgb, "RGGB")
    assert mos.shape == (6, 8) and mos.dtype == np.uint8
    np.testing.assert_array_equal(mos[0::2, 0::2], rgb[0::2, 0::2, 0])
    np.testing.assert_array_equal(mos[0::2, 1::2], rgb[0::2, 1::2, 1])
    np.testing.assert_array_equal(mos[1::2, 0::2], rgb[1::2, 0::2, 1])
    np.testing.assert_array_equal(mos[1::2, 1::2], rgb[1::2, 1::2, 2])
    grbg = im.bayer_mosaic(rgb, "GRBG")
    np.testing.assert_array_equal(grbg[0::2, 1::2], rgb[0::2, 1::2, 0])


def test_bayer_bad_inputs():
    with pytest.raises(ValueError, match="H, W, 3"):
        im.bayer_mosaic(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="H, W, 3"):
        im.bayer_mosaic(np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="pattern"):
        im.bayer_mosaic(np.zeros((4, 4, 3)), "RGBG")
    with pytest.raises(ValueError, match="2-D"):
        im.demosaic_bilinear(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="2x2"):
        im.demosaic_bilinear(np.zeros((1, 4)))


@pytest.mark.parametrize("pattern", im.BAYER_PATTERNS)
def test_demosaic_keeps_measured_pixels_and_matches_kernels_in_the_interior(pattern):
    rgb = RNG.random((12, 14, 3))
    mos = im.bayer_mosaic(rgb, pattern)
    out = im.demosaic_bilinear(mos, pattern)
    masks = im.bayer_masks(mos.shape, pattern)
    assert out.shape == rgb.shape and out.dtype == np.float64
    np.testing.assert_allclose(out[masks], rgb[masks])  # measured values are kept
    for c, k in enumerate([im.DEMOSAIC_KERNEL_RB, im.DEMOSAIC_KERNEL_G, im.DEMOSAIC_KERNEL_RB]):
        ref = ndimage.convolve(mos * masks[..., c], k, mode="constant")
        np.testing.assert_allclose(out[1:-1, 1:-1, c], ref[1:-1, 1:-1], atol=1e-12)


def test_demosaic_is_exact_for_constant_and_linear_images():
    h, w = 10, 12
    const = np.ones((h, w, 3)) * np.array([0.2, 0.5, 0.9])
    np.testing.assert_allclose(im.demosaic_bilinear(im.bayer_mosaic(const)), const, atol=1e-12)
    ii, jj = np.mgrid[0:h, 0:w].astype(float)
    ramp = np.stack([ii + 2 * jj, 3 * ii - jj, 0.5 * ii + jj], axis=2)
    out = im.demosaic_bilinear(im.bayer_mosaic(ramp))
    np.testing.assert_allclose(out[1:-1, 1:-1], ramp[1:-1, 1:-1], atol=1e-12)  # bilinear is exact on planes


# ----------------------------------------------------------------------------- noise and PSNR

def test_psnr_formula_and_edge_cases():
    a = np.zeros((4, 4))
    assert im.psnr(a, a) == float("inf")
    b = a + 0.1  # MSE 0.01 -> 20 dB with range 1
    assert im.psnr(a, b) == pytest.approx(20.0)
    u = np.zeros((4, 4), dtype=np.uint8)
    assert im.psnr(u, u + 1) == pytest.approx(10 * np.log10(255 ** 2))  # MSE 1, range 255: 48.13 dB
    x, y = RNG.random((8, 8)), RNG.random((8, 8))
    assert im.psnr(x, y, 2.0) == pytest.approx(10 * np.log10(4 / np.mean((x - y) ** 2)))
    with pytest.raises(ValueError, match="same shape"):
        im.psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="data_range"):
        im.psnr(a, b, data_range=0)


def test_psnr_matches_opencv_when_available():
    cv2 = pytest.importorskip("cv2")
    x = RNG.integers(0, 256, size=(16, 16), dtype=np.uint8)
    y = RNG.integers(0, 256, size=(16, 16), dtype=np.uint8)
    assert im.psnr(x, y) == pytest.approx(cv2.PSNR(x, y), rel=1e-9)


def test_gaussian_noise_statistics_seed_and_clip():
    x = np.full((200, 200), 0.5)
    n1 = im.add_gaussian_noise(x, 0.1, rng=1, clip=None)
    n2 = im.add_gaussian_noise(x, 0.1, rng=1, clip=None)
    np.testing.assert_array_equal(n1, n2)  # same seed, same noise
    assert abs((n1 - x).std() - 0.1) < 0.005 and abs((n1 - x).mean()) < 0.005
    clipped = im.add_gaussian_noise(x, 1.0, rng=2)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0
    np.testing.assert_array_equal(im.add_gaussian_noise(x, 0.0, rng=0), x)
    assert im.add_gaussian_noise(np.zeros((5, 6, 3)), 0.1, rng=0).shape == (5, 6, 3)
    with pytest.raises(ValueError, match="sigma"):
        im.add_gaussian_noise(x, -0.1)
    with pytest.raises(ValueError, match="image"):
        im.add_gaussian_noise(np.zeros(5), 0.1)


def test_salt_pepper_changes_the_requested_fraction():
    x = np.full((50, 40), 0.5)
    y = im.add_salt_pepper(x, 0.1, rng=0)
    assert (y != x).sum() == 200
    assert (y == 0.0).sum() == 100 and (y == 1.0).sum() == 100
    rgb = np.full((10, 10, 3), 0.5)
    z = im.add_salt_pepper(rgb, 0.2, rng=0)
    changed = (z != rgb).any(axis=2)
    assert changed.sum() == 20 and ((z != rgb).all(axis=2) == changed).all()  # whole pixels
    np.testing.assert_array_equal(im.add_salt_pepper(x, 0.0, rng=0), x)
    assert (im.add_salt_pepper(x, 1.0, rng=0) != 0.5).all()
    with pytest.raises(ValueError, match="amount"):
        im.add_salt_pepper(x, 1.5)
    with pytest.raises(ValueError, match="image"):
        im.add_salt_pepper(np.zeros((2, 2, 2, 2)), 0.1)


def test_median_filter_beats_mean_on_spikes():
    """The classic claim the notebooks rely on, checked with our noise and SciPy's filters."""
    ii, jj = np.mgrid[0:64, 0:64]
    clean = 0.5 + 0.3 * np.sin(ii / 6.0) * np.cos(jj / 9.0)
    noisy = im.add_salt_pepper(clean, 0.05, rng=0)
    mean3 = im.correlate2d(noisy, np.ones((3, 3)) / 9)
    med3 = ndimage.median_filter(noisy, size=3)
    s = slice(2, -2)
    assert im.psnr(clean[s, s], med3[s, s]) > im.psnr(clean[s, s], mean3[s, s]) > im.psnr(clean[s, s], noisy[s, s])
