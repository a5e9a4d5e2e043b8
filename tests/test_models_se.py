import pytest
import torch

from course_utils.models import SEBlock


def test_se_block_keeps_shape_and_counts_parameters():
    block = SEBlock(64, reduction=16)
    x = torch.randn(2, 64, 5, 7)
    assert block(x).shape == x.shape
    assert sum(p.numel() for p in block.parameters()) == 2 * 64 * 4 + 4 + 64


def test_se_block_only_rescales_channels():
    block = SEBlock(8, reduction=2)
    x = torch.rand(1, 8, 4, 4) + 0.1
    ratio = block(x) / x
    # one weight per channel, the same at every pixel, strictly between 0 and 1
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), atol=1e-6)
    assert ((ratio > 0) & (ratio < 1)).all()


def test_se_block_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        SEBlock(0)
