"""course_utils.voc: class names, palette, void label, on-disk layout and reading one sample."""
import numpy as np
import pytest
from PIL import Image

from course_utils import voc


def test_voc_classes():
    assert len(voc.VOC_CLASSES) == voc.NUM_CLASSES == 21
    assert voc.VOC_CLASSES[0] == "background" and voc.VOC_CLASSES[15] == "person" and voc.VOC_CLASSES[20] == "tvmonitor"


def test_voc_colormap_known_entries():
    cmap = voc.VOC_COLORMAP
    assert cmap.shape == (256, 3) and cmap.dtype == np.uint8
    assert tuple(cmap[1]) == (128, 0, 0)
    assert tuple(cmap[2]) == (0, 128, 0)
    assert tuple(cmap[20]) == (0, 64, 128)
    assert tuple(cmap[voc.IGNORE_INDEX]) == (224, 224, 192)
    assert len({tuple(c) for c in cmap}) == 256


def test_layout_complete_and_trainval_ids(toy_root, tmp_path):
    assert voc.voc_folder(toy_root) == toy_root / "VOCdevkit" / "VOC2012"
    assert voc.voc_is_complete(toy_root) and voc.is_generated(toy_root)
    ids = voc.trainval_ids(toy_root)
    assert len(ids) == 24 and ids[0] == "toy_000000"
    assert not voc.voc_is_complete(tmp_path)


def test_trainval_ids_explains_which_root_is_meant(toy_root):
    with pytest.raises(FileNotFoundError, match="CONTAINS VOCdevkit"):
        voc.trainval_ids(voc.voc_folder(toy_root))  # the VOC2012 folder itself is the wrong root


def test_load_voc_sample_gives_indices_and_rgb(toy_root):
    image, mask = voc.load_voc_sample(voc.voc_folder(toy_root), "toy_000007")  # a grayscale JPEG
    assert image.dtype == np.uint8 and image.shape[2] == 3 and np.array_equal(image[..., 0], image[..., 2])
    assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
    assert set(np.unique(mask).tolist()) <= set(range(21)) | {255}


def test_read_mask_refuses_an_rgb_png(tmp_path):
    path = tmp_path / "mask.png"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match="palette"):
        voc.read_mask(path)
