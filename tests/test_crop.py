"""The crop rule (union → square → pad → clip → resize) against hand-computed boxes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from mvd.crop import crop_for_frames, crop_resize, square_crop_box, union_box

NAN = float("nan")

# (box, frame_w, frame_h, pad_frac, expected (x1, y1, x2, y2)), worked out by hand.
SQUARE_CASES = [
    pytest.param((100, 100, 200, 150), 640, 480, 0.1, (90, 65, 210, 185), id="wide-centre"),
    pytest.param((300, 200, 320, 280), 640, 480, 0.1, (262, 192, 358, 288), id="tall-centre"),
    pytest.param((0, 200, 40, 260), 640, 480, 0.1, (0, 194, 56, 266), id="left-border"),
    pytest.param((300, 0, 360, 20), 640, 480, 0.1, (294, 0, 366, 46), id="top-border"),
    pytest.param((610, 100, 640, 130), 640, 480, 0.1, (607, 97, 640, 133), id="right-border"),
    pytest.param((100, 450, 180, 480), 640, 480, 0.1, (92, 417, 188, 480), id="bottom-border"),
    pytest.param((600, 440, 640, 480), 640, 480, 0.1, (596, 436, 640, 480), id="corner"),
    pytest.param((-50, -30, 700, 520), 640, 480, 0.1, (0, 0, 640, 480), id="larger-than-frame"),
    pytest.param((200, 100, 300, 300), 640, 480, 0.05, (140, 90, 360, 310), id="inference-pad"),
    pytest.param((10.3, 20.7, 30.1, 25.2), 640, 480, 0.0, (10, 13, 31, 33), id="fractional-rounds-out"),
    pytest.param((50, 50, 50, 50), 640, 480, 0.1, (50, 50, 51, 51), id="point-box-one-pixel"),
    pytest.param(None, 640, 480, 0.1, (0, 0, 640, 480), id="no-box"),
    pytest.param((NAN, NAN, NAN, NAN), 320, 240, 0.1, (0, 0, 320, 240), id="nan-box"),
]


@pytest.mark.parametrize("box, w, h, pad, expected", SQUARE_CASES)
def test_square_crop_box_table(box, w, h, pad, expected):
    assert square_crop_box(box, w, h, pad) == expected


@pytest.mark.parametrize("box, w, h, pad, expected", SQUARE_CASES)
def test_square_crop_box_is_square_unless_clipped(box, w, h, pad, expected):
    x1, y1, x2, y2 = square_crop_box(box, w, h, pad)
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    clipped = x1 == 0 or y1 == 0 or x2 == w or y2 == h
    if box is not None and not any(math.isnan(v) for v in box) and not clipped:
        assert abs((x2 - x1) - (y2 - y1)) <= 1
        # the padded square holds the whole input box
        assert x1 <= box[0] and y1 <= box[1] and x2 >= box[2] and y2 >= box[3]


def test_square_crop_box_rejects_bad_input():
    with pytest.raises(ValueError, match="x2 < x1"):
        square_crop_box((10, 10, 5, 20), 100, 100, 0.1)
    with pytest.raises(ValueError, match="pad_frac"):
        square_crop_box((0, 0, 5, 5), 100, 100, -0.1)
    with pytest.raises(ValueError, match="frame size"):
        square_crop_box((0, 0, 5, 5), 0, 100, 0.1)


@pytest.mark.parametrize(
    "rows, expected",
    [
        pytest.param([[10, 20, 30, 40, 0.9]], (10, 20, 30, 40), id="one"),
        pytest.param([[10, 20, 30, 40, 0.9], [5, 25, 20, 60, 0.5]], (5, 20, 30, 60), id="two"),
        pytest.param([[NAN] * 5, [10, 20, 30, 40, 0.9], [NAN] * 5], (10, 20, 30, 40), id="nan-rows-skipped"),
        pytest.param([[10, 20, 30, 40, NAN]], (10, 20, 30, 40), id="nan-score-still-a-box"),
        pytest.param([[NAN] * 5, [NAN] * 5], None, id="all-nan"),
        pytest.param(np.zeros((0, 5)), None, id="empty"),
    ],
)
def test_union_box(rows, expected):
    got = union_box(np.asarray(rows, dtype=np.float32).reshape(-1, 5))
    if expected is None:
        assert got is None
    else:
        assert got is not None and tuple(got.tolist()) == expected


def test_crop_for_frames_uses_exactly_those_frames():
    boxes = np.full((6, 5), np.nan, np.float32)
    boxes[0] = (0, 0, 20, 20, 1.0)  # far away, outside the window
    boxes[2] = (100, 100, 140, 120, 1.0)
    boxes[3] = (110, 90, 150, 130, 1.0)
    boxes[5] = (300, 200, 310, 210, 1.0)  # outside the window too
    # union over frames 1..4 = (100, 90, 150, 130): side 50, centre (125, 110), half 30
    assert crop_for_frames(boxes, [1, 2, 3, 4], 640, 480, 0.1) == (95, 80, 155, 140)
    # no detection in the window -> full frame
    assert crop_for_frames(boxes, [1, 4], 640, 480, 0.1) == (0, 0, 640, 480)
    with pytest.raises(IndexError, match="frame 6"):
        crop_for_frames(boxes, [5, 6], 640, 480, 0.1)
    with pytest.raises(ValueError):
        crop_for_frames(boxes, [], 640, 480, 0.1)


def test_crop_resize_content_and_interpolation():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 120, 160, 3), dtype=np.uint8)
    frames[:, 30:90, 40:100] = (10, 200, 30)  # a uniform 60x60 patch
    out = crop_resize(frames, (40, 30, 100, 90), 32)
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8
    assert (out == np.array([10, 200, 30], np.uint8)).all()
    # shrinking uses INTER_AREA, growing INTER_LINEAR
    small = crop_resize(frames, (0, 0, 100, 80), 40)
    np.testing.assert_array_equal(small[1], cv2.resize(frames[1, 0:80, 0:100], (40, 40), interpolation=cv2.INTER_AREA))
    big = crop_resize(frames, (5, 5, 25, 35), 64)
    np.testing.assert_array_equal(big[2], cv2.resize(frames[2, 5:35, 5:25], (64, 64), interpolation=cv2.INTER_LINEAR))


def test_crop_resize_rejects_bad_crop():
    frames = np.zeros((2, 50, 60, 3), np.uint8)
    with pytest.raises(ValueError, match="outside"):
        crop_resize(frames, (0, 0, 61, 50), 16)
    with pytest.raises(ValueError, match="empty"):
        crop_resize(frames, (10, 10, 10, 20), 16)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        crop_resize(np.zeros((50, 60, 3), np.uint8), (0, 0, 10, 10), 16)
