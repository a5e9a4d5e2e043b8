import pytest
import torch
from torch import nn

from course_utils.models import SEBlock, UNet


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_params(in_ch, classes, base, depth, se=False, reduction=16):
    """The UNet's parameter count written out level by level."""
    def double(ci, co):  # two bias-free 3x3 convs + two batch norms
        return 9 * ci * co + 9 * co * co + 4 * co

    ch = [base * 2 ** i for i in range(depth + 1)]
    total = double(in_ch, ch[0]) + sum(double(ch[i - 1], ch[i]) for i in range(1, depth + 1))
    total += sum(4 * ch[i] * ch[i - 1] + ch[i - 1] + double(2 * ch[i - 1], ch[i - 1]) for i in range(1, depth + 1))
    total += ch[0] * classes + classes
    if se:
        h = ch[-1] // reduction
        total += 2 * ch[-1] * h + h + ch[-1]
    return total


@pytest.mark.parametrize("size", [(64, 64), (32, 48), (16, 80)])
def test_output_has_one_channel_per_class_at_input_size(size):
    torch.manual_seed(0)
    model = UNet(in_channels=3, num_classes=21, base=4, depth=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 21, *size)


def test_trace_lists_every_level():
    model = UNet(in_channels=1, num_classes=5, base=8, depth=3).eval()
    trace = []
    with torch.no_grad():
        model(torch.zeros(1, 1, 32, 32), trace=trace)
    shapes = dict(trace)
    assert shapes["enc0"] == (1, 8, 32, 32)
    assert shapes["bottleneck (enc3)"] == (1, 64, 4, 4)
    assert shapes["dec0"] == (1, 8, 32, 32) and shapes["head"] == (1, 5, 32, 32)
    assert [name for name, _ in trace][-4:] == ["dec2", "dec1", "dec0", "head"]


def test_parameter_count_matches_formula_and_the_original_paper_size():
    for kwargs in [dict(in_ch=3, classes=21, base=8, depth=2), dict(in_ch=1, classes=2, base=16, depth=4)]:
        model = UNet(kwargs["in_ch"], kwargs["classes"], base=kwargs["base"], depth=kwargs["depth"])
        assert n_params(model) == expected_params(**kwargs)
    # base 64, depth 4 (Ronneberger et al. with padding and batch norm): about 31.0 M parameters
    assert n_params(UNet(3, 2, base=64, depth=4)) == expected_params(3, 2, 64, 4) == 31_037_698


def test_se_option_puts_an_se_block_after_the_bottleneck():
    plain = UNet(base=8, depth=2)
    with_se = UNet(base=8, depth=2, se=True, se_reduction=4)
    assert isinstance(with_se.se, SEBlock) and not any(isinstance(m, SEBlock) for m in plain.modules())
    assert n_params(with_se) - n_params(plain) == n_params(SEBlock(32, 4))
    assert n_params(with_se) == expected_params(3, 21, 8, 2, se=True, reduction=4)
    calls = []
    with_se.se.register_forward_hook(lambda m, i, o: calls.append(tuple(o.shape)))
    with torch.no_grad():
        assert with_se.eval()(torch.zeros(1, 3, 16, 16)).shape == (1, 21, 16, 16)
    assert calls == [(1, 32, 4, 4)]


def test_bilinear_upsampling_option():
    model = UNet(base=4, depth=2, upsample="bilinear").eval()
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 12, 20)).shape == (1, 21, 12, 20)
    with pytest.raises(ValueError, match="transpose"):
        UNet(upsample="nearest-ish")


def test_gradients_reach_the_first_layer():
    model = UNet(base=4, depth=2)
    loss = nn.CrossEntropyLoss(ignore_index=255)(model(torch.randn(2, 3, 16, 16)),
                                                 torch.randint(0, 21, (2, 16, 16)))
    loss.backward()
    assert model.inc[0].weight.grad.abs().sum() > 0


def test_clear_errors_for_bad_inputs():
    model = UNet(base=4, depth=3)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*3 = 8; got 60x64"):
        model(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match="3 input channels; got 1"):
        model(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)
    with pytest.raises(ValueError, match="base"):
        UNet(base=2.5)
