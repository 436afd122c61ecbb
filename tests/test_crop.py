"""The crop rule (union → square → pad → clip → resize) against hand-computed boxes."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from mvd.crop import crop_for_frames, crop_resize, square_crop_box, track_crop_boxes, union_box, window_crops

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


def _walking_boxes(n: int, vx: float, vy: float, w: float = 20.0, h: float = 10.0) -> np.ndarray:
    """A w × h box whose centre moves (vx, vy) px a frame from (100, 80)."""
    t = np.arange(n, dtype=np.float64)
    cx, cy = 100 + vx * t, 80 + vy * t
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, np.ones(n)], axis=1)


def test_track_crops_follow_a_walking_animal_with_one_square_size():
    boxes = _walking_boxes(8, 3.0, -1.0)
    crops = track_crop_boxes(boxes, range(8), 320, 240, 0.1)
    # side: the boxes' union is 41 x 17 px (x 90..131), padded 10% each side = 49.2 -> 50 px; each
    # square centred on its frame's box centre (the centres lie on a line)
    for t, (x1, y1, x2, y2) in enumerate(crops):
        assert (x2 - x1, y2 - y1) == (50, 50)
        cx, cy = 100 + 3 * t, 80 - t
        assert (x1, y1) == (math.floor(cx - 25 + 0.5), math.floor(cy - 25 + 0.5))
    # the union rule's one crop, of about that size, has the animal sweep 21 px across it
    x1, y1, x2, y2 = crop_for_frames(boxes, range(8), 320, 240, 0.1)
    assert abs((x2 - x1) - 50) <= 1
    assert {boxes[t, 0] - crops[t][0] for t in range(8)} == {boxes[0, 0] - crops[0][0]}


def test_track_crops_keep_quick_movements_in_the_crop():
    """The centre line takes out steady walking, not a one-frame jerk: the jerk stays visible."""
    boxes = _walking_boxes(24, 2.0, 0.0)
    boxes[12, [0, 2]] += 6.0  # the animal's box jumps 6 px sideways for one frame (a twitch)
    clip = range(8, 16)
    crops = track_crop_boxes(boxes, clip, 320, 240, 0.0)
    # the line, independently: least squares over the clip's 8 frames and 8 more on each side (0..23)
    slope, icpt = np.polyfit(np.arange(24), (boxes[:, 0] + boxes[:, 2]) / 2, 1)
    side = crops[0][2] - crops[0][0]
    for t, c in zip(clip, crops):
        assert c[0] == pytest.approx(slope * t + icpt - side / 2, abs=1e-5)
    box_in_crop = [boxes[t, 0] - c[0] for t, c in zip(clip, crops)]
    assert max(box_in_crop) - min(box_in_crop) > 5.5  # the twitch frame stands out by nearly its 6 px
    steady = [x for t, x in zip(clip, box_in_crop) if t != 12]
    assert max(steady) - min(steady) <= 0.5  # the walk itself hardly moves in the crop


def test_track_line_sees_one_clip_span_on_each_side_and_no_further():
    boxes = _walking_boxes(40, 1.5, 0.5)
    clip = [10, 12, 14, 16]  # every other frame: span 7, so frames 3..23 fit the line
    ref = track_crop_boxes(boxes, clip, 320, 240, 0.1)
    far = boxes.copy()
    far[:3, :4] += 50.0
    far[24:, :4] -= 50.0
    assert track_crop_boxes(far, clip, 320, 240, 0.1) == ref
    near = boxes.copy()
    near[23, :4] += 50.0
    assert track_crop_boxes(near, clip, 320, 240, 0.1) != ref
    # an animal at rest that twitches inside the clip: the crop hardly moves with the twitch
    rest = _walking_boxes(30, 0.0, 0.0)
    rest[12:14, [0, 2]] += 8.0
    xs = [c[0] for c in track_crop_boxes(rest, range(10, 18), 320, 240, 0.1)]
    assert max(xs) - min(xs) < 8.0 * 2 / 24 * 1.01  # the line tilts by no more than the twitch's share of 24 frames


def test_track_crops_stay_inside_the_image_and_handle_missing_boxes():
    boxes = _walking_boxes(6, -30.0, 0.0)  # walks out through the left edge
    boxes[2] = np.nan
    crops = track_crop_boxes(boxes, range(6), 160, 120, 0.1)
    assert len(crops) == 6 and len({(c[2] - c[0], c[3] - c[1]) for c in crops}) == 1
    assert all(0 <= c[0] and c[2] <= 160 and 0 <= c[1] and c[3] <= 120 for c in crops)
    assert crops[-1][0] == 0  # pushed back inside
    # a frame without a box takes the line's value, between its neighbours
    assert crops[3][0] <= crops[2][0] <= crops[1][0]
    # no box at all: full frames; a box larger than the frame: clipped to the short side
    assert track_crop_boxes(np.full((4, 5), np.nan), range(4), 160, 120, 0.1) == [(0, 0, 160, 120)] * 4
    big = track_crop_boxes(np.array([[0, 0, 150, 140, 1.0]] * 3), range(3), 160, 120, 0.1)
    assert all(c[3] - c[1] == 120 and c[2] - c[0] == 120 for c in big)
    with pytest.raises(IndexError, match="frame 6"):
        track_crop_boxes(boxes, [5, 6], 160, 120, 0.1)
    with pytest.raises(ValueError, match="crop mode"):
        window_crops("follow", boxes, range(6), 160, 120, 0.1)


def test_crop_resize_takes_one_crop_per_frame():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(3, 60, 80, 3), dtype=np.uint8)
    crops = [(0, 0, 20, 20), (10, 5, 30, 25), (50, 30, 70, 50)]
    out = crop_resize(frames, crops, 20)
    for t, (x1, y1, x2, y2) in enumerate(crops):
        np.testing.assert_array_equal(out[t], frames[t, y1:y2, x1:x2])
    with pytest.raises(ValueError, match="one per frame"):
        crop_resize(frames, crops[:2], 20)


def test_crop_resize_samples_between_pixels_for_fractional_corners():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, size=(2, 40, 50, 3), dtype=np.uint8)
    whole = crop_resize(frames, (10.0, 5.0, 30.0, 25.0), 20)
    np.testing.assert_array_equal(whole, frames[:, 5:25, 10:30])
    half = crop_resize(frames, (10.5, 5.0, 30.5, 25.0), 20).astype(np.float64)
    between = (frames[:, 5:25, 10:30].astype(np.float64) + frames[:, 5:25, 11:31]) / 2  # bilinear, independently
    assert np.abs(half - between).max() <= 1.0
    with pytest.raises(ValueError, match="whole pixels"):
        crop_resize(frames, (10.5, 5.0, 30.0, 25.0), 20)
