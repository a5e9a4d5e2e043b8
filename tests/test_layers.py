"""Hand-written backward passes (course_utils.layers) against finite differences and torch.autograd."""
import pytest
import torch
import torch.nn.functional as F

from course_utils import layers as L

TOL_NUMERIC = 1e-8  # norm-based relative error; a correct backward gives about 1e-10 here
TOL_AUTOGRAD = 1e-12  # the same sums in another order: rounding only


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


CONV_CASES = [(1, 0), (1, 1), (2, 1), (2, 0), (3, 2)]


@pytest.mark.parametrize("forward,backward", [(L.conv_forward_loops, L.conv_backward_loops),
                                              (L.conv_forward_im2col, L.conv_backward_im2col)])
@pytest.mark.parametrize("stride,pad", CONV_CASES)
def test_conv_matches_torch_and_finite_differences(forward, backward, stride, pad):
    x, w, b = _rand(2, 3, 7, 6, seed=1), _rand(4, 3, 3, 2, seed=2), _rand(4, seed=3)
    out, cache = forward(x, w, b, stride=stride, pad=pad)
    ref = F.conv2d(x, w, b, stride=stride, padding=pad)
    torch.testing.assert_close(out, ref)
    dout = _rand(*out.shape, seed=4)
    dx, dw, db = backward(dout, cache)
    for name, t, g in (("x", x, dx), ("w", w, dw), ("b", b, db)):
        num = L.numeric_gradient(lambda: forward(x, w, b, stride=stride, pad=pad)[0], t, dout)
        assert L.relative_error(g, num) < TOL_NUMERIC, name
    xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
    F.conv2d(xs, ws, bs, stride=stride, padding=pad).backward(dout)
    for g, t in ((dx, xs), (dw, ws), (db, bs)):
        assert L.relative_error(g, t.grad) < TOL_AUTOGRAD


def test_loop_and_im2col_versions_agree():
    x, w, b = _rand(3, 2, 9, 9, seed=5), _rand(5, 2, 3, 3, seed=6), _rand(5, seed=7)
    out1, c1 = L.conv_forward_loops(x, w, b, stride=2, pad=1)
    out2, c2 = L.conv_forward_im2col(x, w, b, stride=2, pad=1)
    torch.testing.assert_close(out1, out2)
    dout = _rand(*out1.shape, seed=8)
    for g1, g2 in zip(L.conv_backward_loops(dout, c1), L.conv_backward_im2col(dout, c2)):
        torch.testing.assert_close(g1, g2)


def test_a_wrong_conv_backward_is_caught():
    x, w, b = _rand(1, 2, 5, 5, seed=9), _rand(3, 2, 3, 3, seed=10), _rand(3, seed=11)
    out, cache = L.conv_forward_im2col(x, w, b, pad=1)
    dout = _rand(*out.shape, seed=12)
    _, dw, _ = L.conv_backward_im2col(dout, cache)
    num = L.numeric_gradient(lambda: L.conv_forward_im2col(x, w, b, pad=1)[0], w, dout)
    assert L.relative_error(dw.flip(-1), num) > 1e-2  # a flipped kernel gradient is far off


@pytest.mark.parametrize("size,stride", [(2, None), (3, 1), (2, 1), (3, 2)])
def test_maxpool_matches_torch_and_finite_differences(size, stride):
    x = _rand(2, 3, 7, 8, seed=13)  # continuous random values: no ties
    out, cache = L.maxpool_forward(x, size, stride)
    torch.testing.assert_close(out, F.max_pool2d(x, size, stride))
    dout = _rand(*out.shape, seed=14)
    dx = L.maxpool_backward(dout, cache)
    num = L.numeric_gradient(lambda: L.maxpool_forward(x, size, stride)[0], x, dout)
    assert L.relative_error(dx, num) < TOL_NUMERIC
    xs = x.clone().requires_grad_()
    F.max_pool2d(xs, size, stride).backward(dout)
    assert L.relative_error(dx, xs.grad) < TOL_AUTOGRAD


def test_maxpool_tie_sends_the_whole_gradient_to_the_first_maximum():
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    out, cache = L.maxpool_forward(x, 2)
    dx = L.maxpool_backward(torch.full_like(out, 3.0), cache)
    assert dx.flatten().tolist() == [3.0, 0.0, 0.0, 0.0]
    # a finite difference splits it instead (documented): one-sided slopes differ at a tie
    num = L.numeric_gradient(lambda: L.maxpool_forward(x, 2)[0], x, torch.full_like(out, 3.0))
    assert num.sum().item() == pytest.approx(3.0 * 4 / 2, rel=1e-6)


def test_relu_matches_torch_and_finite_differences():
    x = _rand(2, 3, 4, 5, seed=15)
    out, cache = L.relu_forward(x)
    torch.testing.assert_close(out, torch.relu(x))
    dout = _rand(*out.shape, seed=16)
    dx = L.relu_backward(dout, cache)
    assert L.relative_error(dx, L.numeric_gradient(lambda: L.relu_forward(x)[0], x, dout)) < TOL_NUMERIC
    xs = x.clone().requires_grad_()
    torch.relu(xs).backward(dout)
    assert L.relative_error(dx, xs.grad) < TOL_AUTOGRAD


def test_batchnorm_matches_torch_and_finite_differences():
    x, gamma, beta = 3 + 2 * _rand(4, 3, 5, 5, seed=17), _rand(3, seed=18), _rand(3, seed=19)
    out, cache = L.batchnorm_forward(x, gamma, beta)
    ref = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)
    torch.testing.assert_close(out, ref)
    dout = _rand(*out.shape, seed=20)
    dx, dgamma, dbeta = L.batchnorm_backward(dout, cache)
    for t, g in ((x, dx), (gamma, dgamma), (beta, dbeta)):
        num = L.numeric_gradient(lambda: L.batchnorm_forward(x, gamma, beta)[0], t, dout)
        assert L.relative_error(g, num) < TOL_NUMERIC
    xs, gs, bs = (t.clone().requires_grad_() for t in (x, gamma, beta))
    F.batch_norm(xs, None, None, gs, bs, training=True, eps=1e-5).backward(dout)
    for g, t in ((dx, xs), (dgamma, gs), (dbeta, bs)):
        assert L.relative_error(g, t.grad) < TOL_AUTOGRAD


def test_batchnorm_backward_without_the_mean_terms_is_caught():
    x, gamma, beta = _rand(4, 2, 3, 3, seed=21), _rand(2, seed=22), _rand(2, seed=23)
    out, (x_hat, inv_std, g) = L.batchnorm_forward(x, gamma, beta)
    dout = _rand(*out.shape, seed=24)
    naive = dout * gamma[None, :, None, None] * inv_std  # forgets that mean and var depend on x
    num = L.numeric_gradient(lambda: L.batchnorm_forward(x, gamma, beta)[0], x, dout)
    assert L.relative_error(naive, num) > 1e-2


def test_numeric_gradient_of_a_known_function_and_restores_x():
    x = _rand(3, 4, seed=25)
    before = x.clone()
    num = L.numeric_gradient(lambda: x ** 3, x, torch.ones_like(x))
    torch.testing.assert_close(num, 3 * before ** 2)
    assert torch.equal(x, before)


def test_relative_error():
    a = torch.tensor([1.0, 0.0])
    assert L.relative_error(a, a) == 0.0
    assert L.relative_error(a, torch.tensor([3.0, 0.0])) == pytest.approx(0.5)
    assert L.relative_error(torch.zeros(2), torch.zeros(2)) == 0.0
    assert L.relative_error(a, -a) == pytest.approx(1.0)  # opposite gradients: the largest possible error
    # a tiny absolute difference at a near-zero entry (a finite difference's rounding) stays tiny
    assert L.relative_error(torch.tensor([1.0, 1e-12]), torch.tensor([1.0, 3e-12])) < 1e-11
    with pytest.raises(ValueError, match="different shapes"):
        L.relative_error(a, torch.zeros(3))


def test_bad_inputs_give_clear_errors():
    x, w, b = _rand(1, 3, 5, 5), _rand(2, 3, 3, 3), _rand(2)
    with pytest.raises(ValueError, match=r"4-D tensor of shape \(N, C, H, W\).*x\[None\]"):
        L.conv_forward_im2col(x[0], w, b)
    with pytest.raises(ValueError, match="x has 2 channels but w expects 3"):
        L.conv_forward_loops(x[:, :2], w, b)
    with pytest.raises(ValueError, match="larger than the padded input"):
        L.conv_forward_im2col(x, _rand(2, 3, 7, 7), b)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        L.conv_forward_im2col(x, w, b, stride=0)
    with pytest.raises(ValueError, match="pooling window"):
        L.maxpool_forward(x, 6)
    with pytest.raises(ValueError, match=r"gamma and beta must have shape \(3,\)"):
        L.batchnorm_forward(x, torch.ones(2, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="float64"):
        L.numeric_gradient(lambda: x.float(), x.float(), torch.ones(1))


def test_maxpool_tie_goes_where_pytorch_sends_it_even_with_overlapping_windows():
    x = torch.ones(1, 1, 3, 3, dtype=torch.float64)  # every window of 2x2, stride 1, is a four-way tie
    out, cache = L.maxpool_forward(x, 2, 1)
    dx = L.maxpool_backward(torch.ones_like(out), cache)
    xs = x.clone().requires_grad_()
    F.max_pool2d(xs, 2, 1).backward(torch.ones_like(out))
    assert torch.equal(dx, xs.grad)
    assert dx[0, 0].tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]  # each window's first pixel


def test_backward_rejects_a_dout_of_the_wrong_shape():
    """A dout that would broadcast (e.g. one value per channel) must not give a silently wrong gradient."""
    x, w, b = _rand(2, 3, 6, 6), _rand(4, 3, 3, 3), _rand(4)
    cases = [(L.conv_forward_loops(x, w, b, pad=1), L.conv_backward_loops, "convolution", r"\(2, 4, 6, 6\)"),
             (L.conv_forward_im2col(x, w, b, stride=2), L.conv_backward_im2col, "convolution", r"\(2, 4, 2, 2\)"),
             (L.relu_forward(x), L.relu_backward, "ReLU", r"\(2, 3, 6, 6\)"),
             (L.maxpool_forward(x, 3, 2), L.maxpool_backward, "max-pooling", r"\(2, 3, 2, 2\)"),
             (L.batchnorm_forward(x, _rand(3), _rand(3)), L.batchnorm_backward, "batch-norm", r"\(2, 3, 6, 6\)")]
    for (out, cache), backward, layer, shape in cases:
        backward(torch.ones_like(out), cache)  # the right shape passes
        for bad in (torch.ones(out.shape[1], 1, 1, dtype=out.dtype), torch.ones(*out.shape[:-1], out.shape[-1] + 1)):
            with pytest.raises(ValueError, match=rf"{layer} backward must have the shape .*{shape}; found"):
                backward(bad, cache)


def test_conv_rejects_a_bias_or_dtype_that_does_not_fit():
    x, w = _rand(1, 3, 5, 5), _rand(2, 3, 3, 3)
    for forward in (L.conv_forward_loops, L.conv_forward_im2col):
        with pytest.raises(ValueError, match=r"b must have shape \(2,\).*found \(1,\)"):
            forward(x, w, torch.zeros(1, dtype=torch.float64))  # would broadcast silently over the filters
        with pytest.raises(ValueError, match="x is torch.float32 but w is torch.float64"):
            forward(x.float(), w, torch.zeros(2, dtype=torch.float64))


def test_numeric_gradient_rejects_a_mismatched_dout_and_a_non_contiguous_x():
    x = _rand(3, 4)
    with pytest.raises(ValueError, match=r"f\(\) returns shape \(3, 4\) but dout has shape \(4,\)"):
        L.numeric_gradient(lambda: 2 * x, x, torch.ones(4, dtype=torch.float64))
    xt = x.T
    with pytest.raises(ValueError, match="must be contiguous"):
        L.numeric_gradient(lambda: 2 * xt, xt, torch.ones(4, 3, dtype=torch.float64))
    assert torch.equal(x, _rand(3, 4))  # nothing was changed


@pytest.mark.parametrize("x_shape,w_shape,stride,pad", [
    ((1, 2, 3, 3), (2, 2, 3, 3), 1, 0),  # the kernel covers the whole input: a 1x1 output
    ((2, 3, 4, 5), (3, 3, 1, 1), 1, 0),  # 1x1 kernel: a per-pixel linear map across channels
    ((1, 1, 2, 2), (1, 1, 3, 3), 2, 1),  # the kernel is larger than the image, not than the padded image
])
def test_conv_edge_geometries(x_shape, w_shape, stride, pad):
    x, w, b = _rand(*x_shape, seed=30), _rand(*w_shape, seed=31), _rand(w_shape[0], seed=32)
    for forward, backward in ((L.conv_forward_loops, L.conv_backward_loops),
                              (L.conv_forward_im2col, L.conv_backward_im2col)):
        out, cache = forward(x, w, b, stride=stride, pad=pad)
        torch.testing.assert_close(out, F.conv2d(x, w, b, stride=stride, padding=pad))
        dout = _rand(*out.shape, seed=33)
        xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
        F.conv2d(xs, ws, bs, stride=stride, padding=pad).backward(dout)
        for g, t in zip(backward(dout, cache), (xs, ws, bs)):
            assert L.relative_error(g, t.grad) < TOL_AUTOGRAD


def test_maxpool_window_as_large_as_the_input_and_bad_sizes():
    x = _rand(2, 3, 4, 4, seed=34)
    out, cache = L.maxpool_forward(x, 4)
    assert out.shape == (2, 3, 1, 1)
    dx = L.maxpool_backward(torch.ones_like(out), cache)
    assert torch.equal(dx.sum(dim=(2, 3)), torch.ones(2, 3, dtype=dx.dtype))  # one pixel per window gets it
    assert torch.equal(dx != 0, x == x.amax(dim=(2, 3), keepdim=True))
    for size, stride in ((0, None), (2, 0)):
        with pytest.raises(ValueError, match="size and stride must be >= 1"):
            L.maxpool_forward(x, size, stride)
    with pytest.raises(ValueError, match="pad >= 0"):
        L.conv_forward_loops(x, _rand(2, 3, 3, 3), _rand(2), pad=-1)
