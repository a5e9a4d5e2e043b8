import numpy as np

from course_utils.data import IGNORE_INDEX, NUM_CLASSES, VOC_CLASSES, VOC_COLORMAP


def test_voc_classes():
    assert len(VOC_CLASSES) == NUM_CLASSES == 21
    assert VOC_CLASSES[0] == "background" and VOC_CLASSES[15] == "person" and VOC_CLASSES[20] == "tvmonitor"


def test_voc_colormap_known_entries():
    assert VOC_COLORMAP.shape == (256, 3) and VOC_COLORMAP.dtype == np.uint8
    assert tuple(VOC_COLORMAP[1]) == (128, 0, 0)
    assert tuple(VOC_COLORMAP[2]) == (0, 128, 0)
    assert tuple(VOC_COLORMAP[20]) == (0, 64, 128)
    assert tuple(VOC_COLORMAP[IGNORE_INDEX]) == (224, 224, 192)
    assert len({tuple(c) for c in VOC_COLORMAP}) == 256
