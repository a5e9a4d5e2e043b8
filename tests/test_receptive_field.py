import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.receptive_field import empirical_receptive_field, receptive_field, rf_after_layer


class LectureNet(nn.Module):
    """The lecture's example: conv3 -> ReLU -> maxpool2 -> conv3 -> ReLU, called in forward()."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(32, 64, 3)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.pool(x)
        return F.relu(self.conv2(x))


def brute_force_rf(layers, axis_len=64):
    """Receptive field along one axis by set propagation: which input indices reach output 0?"""
    idx = {0}
    for k, s, p, d in reversed(layers):
        idx = {o * s - p + d * t for o in idx for t in range(k)}
    return max(idx) - min(idx) + 1


def test_lecture_net_is_8():
    rf = receptive_field(LectureNet(), (3, 32, 32))
    assert rf.size == 8 and rf.jump == 2
    assert [r.size for r in rf.layers] == [(3, 3), (4, 4), (8, 8)]
    assert [r.name for r in rf.layers] == ["conv1", "pool", "conv2"]


def test_two_3x3_convs_see_5x5_like_the_lecture_says():
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3))
    assert receptive_field(net, (1, 16, 16)).size == 5


@pytest.mark.parametrize("layers", [
    [(3, 1, 1, 1)] * 4,                                  # plain 3x3 stack: 9
    [(3, 1, 0, 2), (3, 1, 0, 4), (3, 1, 0, 8)],          # dilated (WaveNet-like): 29
    [(3, 2, 1, 1), (3, 2, 1, 1), (3, 1, 1, 1)],          # strided
    [(7, 2, 3, 1), (3, 2, 1, 1), (3, 1, 1, 1), (3, 1, 1, 1)],  # ResNet stem + one conv path
    [(1, 1, 0, 1), (1, 1, 0, 1)],                        # 1x1 convs: 1
    [(5, 1, 2, 1), (2, 2, 0, 1), (5, 1, 2, 1), (2, 2, 0, 1)],
])
def test_recurrence_matches_brute_force(layers):
    size, jump, start = 1, 1, 0.5
    for k, s, p, d in layers:
        size, jump, start = rf_after_layer(size, jump, start, k, s, p, d)
    assert size == brute_force_rf(layers)
    net = nn.Sequential(*[nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d) for k, s, p, d in layers])
    assert receptive_field(net, (1, 96, 96)).size == brute_force_rf(layers)


def test_known_values_dilation_stride_pool_1x1():
    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2)), (1, 20, 20)).size == 5
    assert receptive_field(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)), (1, 8, 8)).size == 1
    rf = receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3, stride=2)), (1, 33, 33))
    assert (rf.size, rf.jump) == (7, 4)
    vgg_block = [nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2)]
    rf = receptive_field(nn.Sequential(*vgg_block * 2), (1, 32, 32))
    assert (rf.size, rf.jump) == (16, 4)
    rf = receptive_field(nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1), nn.BatchNorm2d(1), nn.Dropout()),
                         (1, 10, 10))
    assert (rf.size, rf.jump) == (3, 2)


def test_start_is_centre_of_first_field():
    # unpadded 3x3: the first unit sees pixels 0..2, centre 1.5; with padding 1 it sees -1..1, centre 0.5
    assert receptive_field(nn.Conv2d(1, 1, 3), (1, 8, 8)).start == 1.5
    assert receptive_field(nn.Conv2d(1, 1, 3, padding=1), (1, 8, 8)).start == 0.5


def test_rectangular_kernels_give_pairs():
    rf = receptive_field(nn.Sequential(nn.Conv2d(1, 1, (3, 5)), nn.Conv2d(1, 1, (1, 3))), (1, 12, 12))
    assert rf.size == (3, 7)


def test_vgg16_features_from_torchvision():
    import torchvision

    with torch.device("meta"):
        features = torchvision.models.vgg16().features
    features = features.to_empty(device="cpu")
    rf = receptive_field(features, (3, 64, 64))
    assert (rf.size, rf.jump) == (212, 32)  # the known VGG-16 conv5_3/pool5 receptive field


def test_table_renders():
    rf = receptive_field(LectureNet(), (3, 32, 32))
    text = str(rf)
    assert "conv1" in text and "pool" in text and "8" in text.splitlines()[-1]
    assert "<table>" in rf._repr_html_()
    assert rf.rows()[-1]["receptive field"] == 8


def test_unsupported_layer_is_named():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(ValueError, match=r"'1' \(Flatten\) is not supported"):
        receptive_field(net, (1, 8, 8))
    with pytest.raises(ValueError, match="Upsample"):
        receptive_field(nn.Sequential(nn.Upsample(scale_factor=2)), (1, 8, 8))


def test_branching_network_is_refused():
    import torchvision

    with pytest.raises(ValueError, match="one chain"):
        receptive_field(torchvision.models.resnet18(num_classes=2).layer2, (64, 16, 16))


def test_bad_input_size():
    with pytest.raises(ValueError, match="input_size"):
        receptive_field(LectureNet(), (32, 32))
    with pytest.raises(TypeError):
        receptive_field(lambda x: x, (1, 3, 8, 8))


def test_training_mode_is_restored():
    net = LectureNet().train()
    receptive_field(net, (3, 16, 16))
    assert net.training


@pytest.mark.parametrize("measure", [
    lambda net: receptive_field(net, (3, 16, 16)),
    lambda net: empirical_receptive_field(net, (3, 16, 16), positive_weights=False),
])
def test_each_submodule_keeps_its_own_mode(measure):
    # A wrapper built around layers borrowed from an eval-mode network is itself in training mode;
    # restoring with wrapper.train(True) would switch the borrowed BatchNorm to batch statistics.
    encoder = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3)).eval()
    wrapper = nn.Sequential(*encoder)
    assert wrapper.training
    measure(wrapper)
    assert wrapper.training
    assert not any(m.training for m in encoder.modules())


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3)),
    lambda: nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.ReLU(), nn.Conv2d(2, 2, 3, dilation=3)),
    lambda: nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2), nn.Conv2d(2, 1, 1)),
    lambda: nn.Sequential(nn.Conv2d(1, 2, 5, padding=2), nn.BatchNorm2d(2), nn.AvgPool2d(3, 2), nn.Conv2d(2, 2, 3)),
])
def test_analytic_equals_empirical_without_max_pooling(make):
    torch.manual_seed(0)
    net = make()
    analytic = receptive_field(net, (1, 48, 48))
    measured = empirical_receptive_field(net, (1, 48, 48))
    assert measured.size == analytic.size


def test_max_pooling_footprint_is_smaller_than_the_field():
    torch.manual_seed(0)
    net = LectureNet()
    analytic = receptive_field(net, (3, 32, 32)).size
    measured = empirical_receptive_field(net, (3, 32, 32))
    h, w = measured.size if isinstance(measured.size, tuple) else (measured.size,) * 2
    assert h <= analytic and w <= analytic
    # with max pooling only one pixel per 2x2 window gets gradient: fewer than 8*8 pixels light up
    assert np.count_nonzero(measured.grad) < analytic * analytic
    avg = LectureNet()
    avg.pool = nn.AvgPool2d(2, 2)
    assert empirical_receptive_field(avg, (3, 32, 32)).size == analytic
    assert np.count_nonzero(empirical_receptive_field(avg, (3, 32, 32)).grad) == analytic * analytic


def test_empirical_bad_unit():
    with pytest.raises(ValueError, match="outside"):
        empirical_receptive_field(LectureNet(), (3, 16, 16), unit=(100, 0))


# --- effective receptive field (notebooks 12 and 13) -------------------------------------------------

from course_utils.receptive_field import effective_receptive_field, half_mass_radius  # noqa: E402


def test_erf_of_a_3x3_conv_is_its_3x3_window_and_sums_to_one():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    images = torch.rand(4, 1, 9, 9) + 0.1
    m = effective_receptive_field(conv, images)
    assert m.shape == (9, 9)
    assert torch.isclose(m.sum(), torch.tensor(1.0))
    nonzero = (m > 0).nonzero()
    assert nonzero.min(0).values.tolist() == [3, 3] and nonzero.max(0).values.tolist() == [5, 5]
    assert torch.allclose(m[3:6, 3:6], torch.full((3, 3), 1 / 9))
    assert conv.weight.grad is None          # the model's weights are left alone


def test_erf_weights_follow_the_kernel_and_ignore_closed_channels():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 3.0          # channel 0 sees the centre pixel only, 3x
        conv.weight[0, 0, 1, 2] = 1.0          # ... and its right neighbour, 1x
        conv.weight[1, 0] = -1.0               # channel 1 is negative on positive images: its ReLU is closed
    m = effective_receptive_field(conv, torch.rand(2, 1, 5, 5) + 0.1)
    assert torch.isclose(m[2, 2], torch.tensor(0.75)) and torch.isclose(m[2, 3], torch.tensor(0.25))
    assert torch.isclose(m.sum(), torch.tensor(1.0))


def test_erf_speaks_to_the_student_about_bad_inputs():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        effective_receptive_field(conv, torch.rand(1, 5, 5))
    with pytest.raises(ValueError, match="map"):
        effective_receptive_field(nn.Sequential(conv, nn.Flatten()), torch.rand(1, 1, 5, 5))
    dead = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        dead.weight.fill_(-1.0)
    with pytest.raises(ValueError, match="does not depend"):
        effective_receptive_field(dead, torch.rand(1, 1, 5, 5) + 0.1)


def test_half_mass_radius_of_a_point_a_ring_and_a_flat_map():
    point = torch.zeros(9, 9)
    point[4, 4] = 1.0
    assert half_mass_radius(point) == 0.0
    plus = torch.zeros(9, 9)
    plus[4, 4] = 0.2
    plus[4, 5] = plus[4, 3] = plus[3, 4] = plus[5, 4] = 0.2   # 0.2 at the centre, 0.8 at distance 1
    assert half_mass_radius(plus) == 1.0
    flat = torch.full((65, 65), 1 / 65 ** 2)
    # half of the 4225 pixels lie within r of the centre when pi r^2 = 4225 / 2, r ~ 25.9
    assert 25 <= half_mass_radius(flat) <= 27
    assert half_mass_radius(flat * 7) == half_mass_radius(flat)     # the scale does not matter


def test_half_mass_radius_rejects_bad_maps():
    with pytest.raises(ValueError, match="2-D"):
        half_mass_radius(torch.ones(1, 5, 5))
    with pytest.raises(ValueError, match="non-negative"):
        half_mass_radius(-torch.ones(5, 5))
    with pytest.raises(ValueError, match="non-negative"):
        half_mass_radius(torch.zeros(5, 5))
