import cv2
import numpy as np
import pytest

from siamfc.geometry import from_center, to_center
from siamfc.geometry import crop_region, fill_color, resize_scales, warp_region


def padded_crop(img, center, size, out_size, fill):
    """Oracle: pad the whole frame, then slice (what SiamFC implementations do)."""
    side = round(size)
    y0, x0 = np.round(center - (side - 1) / 2).astype(int)
    pad = max(0, -y0, -x0, y0 + side - img.shape[0], x0 + side - img.shape[1])
    big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill.tolist())
    patch = big[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side]
    return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)


@pytest.fixture
def coord_image():
    # Each pixel encodes its own coordinates, so a crop's content reveals where it came from.
    h, w = 120, 160
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy * 2 % 256, xx % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)


def test_inside_crop_is_the_exact_window(coord_image):
    fill = np.array([7, 7, 7], np.uint8)
    # side 21 at centre (40, 60): rows 30..50, cols 50..70; no resize when out_size == side.
    out = crop_region(coord_image, np.array([40.0, 60.0]), 21, 21, fill)
    np.testing.assert_array_equal(out, coord_image[30:51, 50:71])


@pytest.mark.parametrize("center,size", [
    ((5.0, 5.0), 41.0),        # crosses the top-left corner
    ((115.0, 150.0), 63.4),    # crosses the bottom-right corner
    ((60.0, -30.0), 50.0),     # entirely left of the frame
    ((60.0, 80.0), 400.0),     # far larger than the frame
    ((60.5, 80.5), 127.5),     # half-pixel centre and size
])
def test_border_crops_match_padded_frame(coord_image, center, size):
    fill = fill_color(coord_image)
    got = crop_region(coord_image, np.array(center), size, 127, fill)
    want = padded_crop(coord_image, np.array(center), size, 127, fill)
    np.testing.assert_array_equal(got, want)


def test_outside_pixels_take_the_fill_colour(coord_image):
    fill = np.array([200, 10, 99], np.uint8)
    out = crop_region(coord_image, np.array([0.0, 0.0]), 41, 41, fill)
    # Rows/cols 0..19 of the crop lie before the frame's first row/col.
    assert (out[:20, :20] == fill).all()
    np.testing.assert_array_equal(out[20:, 20:], coord_image[:21, :21])


def test_fill_colour_is_the_rounded_frame_mean(coord_image):
    np.testing.assert_array_equal(fill_color(coord_image),
                                  np.round(coord_image.reshape(-1, 3).mean(0)).astype(np.uint8))


def test_box_centre_round_trip():
    box = np.array([10.5, 20.0, 31.0, 17.0])
    center, size = to_center(box)
    np.testing.assert_allclose(center, [20.0 - 1 + 8.0, 10.5 - 1 + 15.0])
    np.testing.assert_allclose(from_center(center, size), box)


# ---------------------------------------------------------------- OTB-layout training footage

from conftest import moving_patch_clip, write_otb_sequence  # noqa: E402
from siamfc.data.crop import crop_dataset  # noqa: E402
from siamfc.data.sequences import OTBFolder  # noqa: E402
from siamfc.errors import InputError  # noqa: E402


def otb_training_root(tmp_path, n=3):
    for i in range(n):
        frames, boxes = moving_patch_clip(seed=i, n=8)
        if i == 1:
            boxes[4] = np.nan   # an absent target later in the clip is allowed
        write_otb_sequence(tmp_path / "footage", f"clip{i}", frames, boxes)
    return tmp_path / "footage"


def test_otb_layout_training_reader(tmp_path):
    root = otb_training_root(tmp_path)
    ds = OTBFolder(str(root))
    assert ds.seq_names == ["clip0", "clip1", "clip2"] and len(ds) == 3
    frames, boxes = ds[1]
    assert len(frames) == 8 and boxes.shape == (8, 4) and np.isnan(boxes[4]).all()
    index = crop_dataset("otb", str(root), str(tmp_path / "crops"))
    valid = {s["name"]: s["valid"] for s in index["sequences"]}
    assert valid["clip1"][4] == "0" and valid["clip0"].count("1") == 8


@pytest.mark.parametrize("defect,needle", [
    ("missing frame", "0003.jpg: frame is missing"),
    ("NaN first box", "groundtruth_rect.txt:1: NaN"),
    ("length mismatch", "9 boxes but 8 frames"),
])
def test_otb_layout_training_reader_rejects_bad_sequences(tmp_path, defect, needle):
    root = otb_training_root(tmp_path)
    seq = root / "clip2"
    gt = seq / "groundtruth_rect.txt"
    if defect == "missing frame":
        (seq / "img" / "0003.jpg").unlink()
    elif defect == "NaN first box":
        lines = gt.read_text().splitlines()
        gt.write_text("\n".join(["nan,nan,nan,nan"] + lines[1:]) + "\n")
    else:
        gt.write_text(gt.read_text() + "1,1,5,5\n")
    ds = OTBFolder(str(root))
    with pytest.raises(InputError) as err:
        ds[2]
    assert needle in str(err.value) and "\n" not in str(err.value)
    ds[0]   # the others still read
    index = crop_dataset("otb", str(root), str(tmp_path / "crops"))   # and the crop job skips it, naming why
    assert [s["name"] for s in index["sequences"]] == ["clip0", "clip1"]


@pytest.mark.parametrize("center,size", [((60.0, 80.0), 90.0), ((5.0, 5.0), 41.0), ((60.0, 80.0), 400.0),
                                         ((60.5, 80.5), 127.5)])
def test_the_warp_crop_samples_the_same_square_as_the_resize(coord_image, center, size):
    fill = fill_color(coord_image)
    warp = warp_region(coord_image, np.array(center), size, 127, fill).astype(int)
    exact = crop_region(coord_image, np.array(center), size, 127, fill).astype(int)
    # the same geometry: inside, a grey level of rounding at most (the coordinate image
    # wraps at 256, so only pixels away from a wrap compare); the square's edge may differ
    inner = np.abs(warp - exact)[2:-2, 2:-2]
    assert np.median(inner) == 0 and np.percentile(inner, 95) <= 1


def test_the_warp_crop_paints_the_outside_with_the_fill_colour(coord_image):
    fill = np.array([200, 10, 99], np.uint8)
    out = np.zeros((41, 41, 3), np.uint8)
    got = warp_region(coord_image, np.array([0.0, 0.0]), 41, 41, fill, out=out)
    assert got is out
    assert (out[:19, :19] == fill).all()
    np.testing.assert_array_equal(out[21:, 21:], coord_image[1:21, 1:21])


@pytest.mark.parametrize("center", [(60.0, 80.0), (5.0, 150.0), (60.0, -80.0), (-500.0, -500.0)])
def test_all_scales_at_once_equal_one_crop_per_scale(coord_image, center):
    fill = fill_color(coord_image)
    sizes = [70.0 * f for f in (1 / 1.0375, 1.0, 1.0375)]
    out = np.zeros((3, 63, 63, 3), np.uint8)
    resize_scales(coord_image, np.array(center), sizes, 63, fill, out)
    for got, size in zip(out, sizes):
        np.testing.assert_array_equal(got, crop_region(coord_image, np.array(center), size, 63, fill))
