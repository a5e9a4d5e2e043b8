import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils import viz
from course_utils.voc import VOC_COLORMAP


def test_show_images_grid_and_titles():
    imgs = [np.zeros((4, 5)), np.ones((4, 5, 3)), torch.rand(3, 6, 6)]
    fig = viz.show_images(imgs, titles=["a", "b", "c"], ncols=2)
    axes = fig.get_axes()
    assert len(axes) == 4  # 2x2 grid, the last panel hidden
    assert [ax.get_title() for ax in axes[:3]] == ["a", "b", "c"]
    assert not axes[3].axison
    plt.close(fig)


def test_show_images_bad_inputs():
    with pytest.raises(ValueError, match="no images"):
        viz.show_images([])
    with pytest.raises(ValueError, match="one title per image"):
        viz.show_images([np.zeros((2, 2))], titles=["a", "b"])
    with pytest.raises(ValueError, match="expected an image"):
        viz.show_images([np.zeros((2, 2, 5))])


def test_to_numpy_image_channel_first_and_single_channel():
    assert viz.to_numpy_image(torch.zeros(3, 7, 9)).shape == (7, 9, 3)
    assert viz.to_numpy_image(np.zeros((1, 7, 9))).shape == (7, 9)
    assert viz.to_numpy_image(np.zeros((7, 9, 1))).shape == (7, 9)


def test_plot_history_groups_train_and_val():
    hist = {"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "val_miou": [0.1, 0.3]}
    fig = viz.plot_history(hist)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["loss", "miou"]
    assert len(axes[0].get_lines()) == 2 and len(axes[1].get_lines()) == 1
    np.testing.assert_allclose(axes[0].get_lines()[1].get_ydata(), [1.1, 0.7])
    plt.close(fig)
    with pytest.raises(ValueError, match="empty history"):
        viz.plot_history({})


def test_colorize_mask_uses_the_voc_palette():
    mask = np.array([[0, 1], [15, 255]])
    rgb = viz.colorize_mask(mask)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (0, 0, 0) and tuple(rgb[0, 1]) == (128, 0, 0)
    assert tuple(rgb[1, 0]) == (192, 128, 128) and tuple(rgb[1, 1]) == (224, 224, 192)
    with pytest.raises(ValueError, match="2-D"):
        viz.colorize_mask(np.zeros((2, 2, 2), dtype=int))
    with pytest.raises(ValueError, match="label values"):
        viz.colorize_mask(np.array([[256]]))


def test_overlay_mask_keeps_background_and_void():
    image = np.full((2, 2, 3), 255, dtype=np.uint8)
    mask = np.array([[0, 1], [255, 0]])
    out = viz.overlay_mask(image, mask, alpha=0.5)
    assert out.shape == (2, 2, 3) and out.max() <= 1.0
    np.testing.assert_allclose(out[0, 0], 1.0)
    np.testing.assert_allclose(out[1, 0], 1.0)
    np.testing.assert_allclose(out[0, 1], 0.5 + 0.5 * VOC_COLORMAP[1] / 255)
    with pytest.raises(ValueError, match="must match"):
        viz.overlay_mask(np.zeros((3, 3, 3)), mask)


def test_mask_legend_names_each_value_of_the_masks_once_in_order():
    fig, ax = plt.subplots(figsize=(4, 3))
    masks = [np.array([[0, 15], [255, 15]]), torch.tensor([[0, 1]])]
    legend = viz.mask_legend(fig, masks)
    assert [t.get_text() for t in legend.get_texts()] == ["background", "aeroplane", "person", "void (not scored)"]
    colours = [tuple(np.round(np.array(h.get_facecolor()[:3]) * 255).astype(int)) for h in legend.legend_handles]
    assert colours[2] == tuple(VOC_COLORMAP[15]) and colours[3] == tuple(VOC_COLORMAP[255])
    assert fig.subplotpars.bottom > 0.1        # room was made under the axes
    plt.close(fig)


def test_mask_legend_takes_values_a_mapping_of_names_and_extra_handles():
    from matplotlib.patches import Patch

    fig, _ = plt.subplots()
    legend = viz.mask_legend(fig, [2, 0], names={0: "background", 2: "bar"},
                             extra=[Patch(color="white", label="invented")])
    assert [t.get_text() for t in legend.get_texts()] == ["background", "bar", "invented"]
    legend = viz.mask_legend(fig, {15: "someone", 0: "nothing"})      # a mapping: its labels, its names
    assert [t.get_text() for t in legend.get_texts()] == ["nothing", "someone"]
    plt.close(fig)


def test_mask_legend_says_which_label_has_no_name_or_no_colour():
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match=r"\[3\] have no name"):
        viz.mask_legend(fig, np.array([[0, 3]]), names=("background", "disc", "bar"))
    with pytest.raises(ValueError, match="outside the palette"):
        viz.mask_legend(fig, [300], names={300: "odd"})
    with pytest.raises(ValueError, match="nothing to name"):
        viz.mask_legend(fig, [])
    plt.close(fig)
