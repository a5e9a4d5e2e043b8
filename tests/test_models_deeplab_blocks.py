"""DeepLab's blocks in course_utils.models: conv_bn_relu, DepthwiseSeparableConv, ASPP."""
import pytest
import torch
import torchvision
from torch import nn

from course_utils.models import ASPP, DepthwiseSeparableConv, conv_bn_relu


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def gradient_footprint(module: nn.Module, size: int = 33) -> int:
    """Side (px) of the input region whose gradient reaches the centre output pixel."""
    x = torch.rand(1, module[0].in_channels, size, size, requires_grad=True)
    module(x)[0, :, size // 2, size // 2].sum().backward()
    rows = torch.nonzero(x.grad[0].abs().sum(0).sum(1)).flatten()
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("k, d", [(1, 1), (3, 1), (3, 2), (3, 6), (5, 3)])
def test_conv_bn_relu_keeps_the_size_and_its_view_grows_with_the_dilation(k, d):
    torch.manual_seed(0)
    block = conv_bn_relu(4, 6, k, dilation=d).eval()
    with torch.no_grad():
        nn.init.uniform_(block[0].weight, 0.1, 1.0)  # positive weights: the ReLU keeps every path open
    assert block(torch.rand(2, 4, 17, 11)).shape == (2, 6, 17, 11)
    assert gradient_footprint(block) == k + (k - 1) * (d - 1)
    assert n_params(block) == k * k * 4 * 6 + 2 * 6  # no conv bias; BN adds weight and bias per channel


def test_conv_bn_relu_stride_and_groups():
    assert conv_bn_relu(8, 16, 3, stride=2)(torch.zeros(1, 8, 9, 10)).shape == (1, 16, 5, 5)
    depthwise = conv_bn_relu(8, 8, 3, groups=8)
    assert n_params(depthwise) == 3 * 3 * 8 + 2 * 8
    assert [type(m) for m in conv_bn_relu(3, 4)] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_channels=0, out_channels=4), "in_channels"),
    (dict(in_channels=4, out_channels=4, kernel_size=2), "odd"),
    (dict(in_channels=6, out_channels=4, groups=4), "groups"),
    (dict(in_channels=4, out_channels=4, dilation=0), "dilation"),
])
def test_conv_bn_relu_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv_bn_relu(**kwargs)


def test_depthwise_separable_parameters_and_shapes():
    block = DepthwiseSeparableConv(32, 64)
    assert n_params(block) == 3 * 3 * 32 + 32 * 64 + 2 * 32 + 2 * 64
    assert block.depthwise[0].groups == 32 and block.pointwise[0].kernel_size == (1, 1)
    assert block(torch.zeros(2, 32, 8, 8)).shape == (2, 64, 8, 8)
    assert DepthwiseSeparableConv(32, 16, stride=2, dilation=2)(torch.zeros(1, 32, 9, 9)).shape == (1, 16, 5, 5)
    plain = nn.Conv2d(32, 64, 3, bias=False)
    assert n_params(block) < n_params(plain) / 5


def test_depthwise_separable_is_a_factorised_full_convolution():
    """With batch norm at identity and ReLU inactive, depthwise then pointwise equals one full conv
    whose kernel is W[o, i] = P[o, i] * D[i]."""
    torch.manual_seed(0)
    block = DepthwiseSeparableConv(3, 5).eval()
    for bn in (block.depthwise[1], block.pointwise[1]):
        bn.eps = 0.0  # running mean 0, var 1, weight 1, bias 0: identity
    D = torch.rand(3, 1, 3, 3)
    P = torch.rand(5, 3, 1, 1)
    with torch.no_grad():
        block.depthwise[0].weight.copy_(D)
        block.pointwise[0].weight.copy_(P)
        x = torch.rand(2, 3, 7, 7)  # positive inputs and weights: the ReLUs pass everything
        full = nn.functional.conv2d(x, P * D.view(1, 3, 3, 3), padding=1)
        assert torch.allclose(block(x), full, atol=1e-5)


def test_aspp_shapes_and_parameters_match_torchvision():
    ours = ASPP(64, 16, rates=(2, 4, 6))
    theirs = torchvision.models.segmentation.deeplabv3.ASPP(64, [2, 4, 6], out_channels=16)
    assert n_params(ours) == n_params(theirs)
    assert ours(torch.randn(2, 64, 9, 7)).shape == (2, 16, 9, 7)
    assert ours.rates == (2, 4, 6) and [b[0].dilation for b in ours.branches] == [(1, 1), (2, 2), (4, 4), (6, 6)]


def test_aspp_computes_what_torchvision_computes():
    """Same structure, same order of parameters: copy torchvision's weights over, get its output."""
    torch.manual_seed(0)
    theirs = torchvision.models.segmentation.deeplabv3.ASPP(8, [1, 2, 3], out_channels=4).eval()
    ours = ASPP(8, 4, rates=(1, 2, 3)).eval()
    src, dst = theirs.state_dict(), ours.state_dict()
    assert [v.shape for v in src.values()] == [v.shape for v in dst.values()]
    ours.load_state_dict(dict(zip(dst.keys(), src.values())))
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-6)


def test_aspp_image_pooling_gives_every_pixel_a_global_view():
    torch.manual_seed(0)
    aspp = ASPP(4, 4, rates=(1,), dropout=0.0).eval()
    with torch.no_grad():
        for m in aspp.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.uniform_(m.weight, 0.1, 1.0)  # positive: no ReLU closes a path
    x = torch.rand(1, 4, 15, 15, requires_grad=True)
    aspp(x)[0, :, 0, 0].sum().backward()  # a corner pixel, rate 1: its convs see 2x2 pixels
    assert (x.grad[0].abs().sum(0) > 0).all()  # yet every input pixel reaches it (through the average)
    without_pool = x.grad.clone().zero_()
    x.grad = None
    for branch in aspp.branches:  # the convolution branches alone reach only the 2x2 corner
        branch(x)[0, :, 0, 0].sum().backward()
    assert torch.nonzero(x.grad[0].abs().sum(0)).max().item() == 1 and not torch.equal(x.grad, without_pool)


@pytest.mark.parametrize("kwargs, match", [
    (dict(rates=()), "at least one"),
    (dict(rates=(6, 0)), "rates"),
    (dict(dropout=1.0), "dropout"),
    (dict(out_channels=0), "out_channels"),
])
def test_aspp_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ASPP(8, **{"out_channels": 4, **kwargs})
