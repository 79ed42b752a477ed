"""The offline dSprites renderer, its cache, the official-file loaders and the data CLI.

Ground truth (real dSprites pixels and the official GIF) is read from ``../shared`` and never
copied into the project; those tests skip when it is absent.
"""

import hashlib
import json
import re
import shutil
import urllib.error

import h5py
import numpy as np
import pytest
import torch
from helpers import REPOSITORY
from matplotlib.path import Path as Polygon

from nsvae import cli
from nsvae.data import BatchSampler, DSprites, get_dataset
from nsvae.data import dsprites as ds
from nsvae.data import files as data_files
from nsvae.errors import ConfigError, DataError

REAL = REPOSITORY.parent / "shared" / "data" / "dsprites-real"
NEEDS_REAL = pytest.mark.skipif(
    not (REAL / "dsprites_real_46080.npz").is_file(),
    reason=f"real dSprites images not found at {REAL} (the team's shared ground truth)",
)

# spec 2.5: mean object area (px) per shape and scale over all orientations and positions
MEAN_AREAS = {
    0: [92.2, 132.7, 180.6, 236.0, 298.7, 368.7],
    1: [72.3, 104.1, 141.8, 185.2, 234.3, 289.3],
    2: [56.1, 80.8, 110.0, 143.7, 181.8, 224.5],
}
# spec 2.5: (width, height) ranges in px at orientation 0 over all positions, per scale
SIZES = {
    0: [
        ((9, 10), (9, 10)),
        ((11, 12), (11, 12)),
        ((13, 14), (13, 14)),
        ((15, 16), (15, 16)),
        ((17, 18), (17, 18)),
        ((19, 20), (19, 20)),
    ],
    1: [
        ((12, 13), (7, 8)),
        ((15, 16), (8, 9)),
        ((17, 18), (10, 11)),
        ((20, 21), (11, 12)),
        ((22, 23), (12, 13)),
        ((25, 26), (14, 15)),
    ],
    2: [
        ((9, 10), (8, 10)),
        ((11, 12), (10, 12)),
        ((13, 14), (12, 14)),
        ((15, 16), (14, 16)),
        ((17, 18), (15, 18)),
        ((19, 20), (17, 19)),
    ],
}


def classes_of(shape, scale, orientation, pos_x, pos_y):
    """Official classes [n, 6] of the broadcast factor arrays."""
    columns = np.broadcast_arrays(0, shape, scale, orientation, pos_x, pos_y)
    return np.stack([np.ravel(c) for c in columns], axis=1).astype(np.int64)


def random_classes(n, seed):
    space = ds.FactorSpace(ds.LATENT_SIZES)
    return space.sample_factors(n, np.random.RandomState(seed))


def centroids(images):
    """(row, column) centroids [n, 2] of pixel centres."""
    r = np.arange(64) + 0.5
    area = images.sum(axis=(1, 2))
    return np.stack([images.sum(2) @ r / area, images.sum(1) @ r / area], axis=1)


def brute_force(classes, exact=True):
    """Per-image, per-pixel reference rasteriser (no lattice, no strides).

    Squares and ellipses in exact mode: vertices snapped to 1/256 px, integer edge functions over
    every edge, ties inside on left and horizontal bottom edges. Otherwise: matplotlib's
    point-in-polygon test of the unsnapped outline.
    """
    values = ds.latents_values(classes)
    r, c = np.mgrid[0:64, 0:64].reshape(2, -1)
    images = np.zeros((len(classes), 64, 64), np.uint8)
    for n, (_, shape, scale, theta, pos_x, pos_y) in enumerate(values):
        shape = int(shape) - 1
        x0, y0 = 16 + 32 * pos_x, 16 + 32 * pos_y
        points = ds.placed_outline(shape, scale, theta) + [x0, y0]
        if exact and shape != 2:
            v = np.floor(points * 256 + 0.5).astype(np.int64)
            e = np.roll(v, -1, axis=0) - v
            p = np.stack([256 * c + 128, 256 * r + 128], axis=1)
            inside = np.ones(len(p), bool)
            for k in range(len(v)):
                cross = e[k, 0] * (p[:, 1] - v[k, 1]) - e[k, 1] * (p[:, 0] - v[k, 0])
                inclusive = e[k, 1] < 0 or (e[k, 1] == 0 and e[k, 0] <= 0)
                inside &= cross + inclusive > 0
        else:
            inside = Polygon(points).contains_points(np.stack([c + 0.5, r + 0.5], axis=1))
        images[n] = inside.reshape(64, 64)
    return images


# ------------------------------------------------------------------------------ layout, values


def test_factor_values_and_order_are_the_official_ones():
    values = ds.latents_possible_values()
    assert list(values) == list(ds.LATENT_NAMES)
    assert values["scale"].tolist() == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert np.array_equal(values["orientation"], 2 * np.pi * np.arange(40) / 39)
    assert values["orientation"][39] == 2 * np.pi
    assert np.array_equal(values["posX"], np.arange(32) / 31)
    assert values["shape"].tolist() == [1, 2, 3] and values["color"].tolist() == [1]
    classes = ds.latents_classes()
    assert classes.dtype == np.int64 and classes.shape == (737_280, 6)
    assert classes[[0, 1, 32]].tolist() == [[0] * 6, [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0]]
    bases = [737280, 245760, 40960, 1024, 32, 1]
    assert np.array_equal(classes @ bases, np.arange(737_280))
    latents = ds.latents_values(classes[::997])
    assert latents.dtype == np.float64
    for j, name in enumerate(ds.LATENT_NAMES):
        assert np.array_equal(latents[:, j], values[name][classes[::997, j]])


@NEEDS_REAL
def test_factor_values_are_bit_identical_to_the_official_file():
    real = np.load(REAL / "dsprites_real_46080.npz")
    assert np.array_equal(ds.latents_classes()[real["indices"]], real["latents_classes"])
    assert np.array_equal(ds.latents_values(real["latents_classes"]), real["latents_values"])


def test_npz_layout_of_a_partial_grid(tmp_path):
    classes = classes_of(np.array([0, 2])[:, None], 5, 7, np.arange(32)[None, :], 3)
    path = ds.save_npz(tmp_path / "part.npz", ds.render(classes), classes)
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["imgs", "latents_classes", "latents_values", "metadata"]
        imgs, saved_classes = archive["imgs"], archive["latents_classes"]
        assert imgs.dtype == np.uint8 and imgs.shape == (64, 64, 64)
        assert set(np.unique(imgs)) == {0, 1}
        assert saved_classes.dtype == np.int64 and np.array_equal(saved_classes, classes)
        assert archive["latents_values"].dtype == np.float64
        assert np.array_equal(archive["latents_values"], ds.latents_values(classes))
        meta = json.loads(archive["metadata"][()])
    assert meta["latents_names"] == list(ds.LATENT_NAMES)
    assert meta["latents_sizes"] == [1, 3, 6, 40, 32, 32]
    assert meta["latents_possible_values"]["scale"] == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    with pytest.raises(DataError, match="63 images for 64 rows"):
        ds.save_npz(tmp_path / "bad.npz", imgs[:63], classes)


# ----------------------------------------------------------------------------- the renderer


def test_render_matches_the_brute_force_rasteriser():
    # random images, plus squares at scale 0.6 and orientation 0 whose edges pass 0.002 px from
    # a row of pixel centres (the smooth model's worst case) and some 45-degree squares
    classes = np.concatenate(
        [
            random_classes(80, seed=0),
            classes_of(0, 1, 0, np.arange(0, 32, 5), np.arange(0, 32, 5)),
            classes_of(0, 3, 5, np.arange(1, 32, 9), 30),
        ]
    )
    for exact in (True, False):
        assert np.array_equal(ds.render(classes, exact=exact), brute_force(classes, exact))


@NEEDS_REAL
def test_fidelity_against_real_dsprites():
    real = np.load(REAL / "dsprites_real_46080.npz")
    errors = (ds.render(real["latents_classes"]) != real["imgs"]).sum(axis=(1, 2))
    shape = real["latents_classes"][:, 1]
    exact = {name: np.mean(errors[shape == s] == 0) for s, name in enumerate(ds.SHAPE_NAMES)}
    assert exact["square"] >= 0.999 and exact["ellipse"] >= 0.999 and exact["heart"] >= 0.94
    assert np.mean(errors == 0) >= 0.98
    assert errors.max() <= 3


@NEEDS_REAL
def test_fidelity_against_the_official_gif():
    import imageio.v3 as iio

    frames = iio.imread(REAL / "dsprites.gif", index=None)
    assert frames.shape == (320, 64, 64) and set(np.unique(frames)) == {0, 255}
    classes = ds.gif_frame_classes()
    errors = (ds.render(classes) != frames // 255).sum(axis=(1, 2))
    assert np.sum(errors == 0) >= 306
    assert np.all(classes[errors > 0, 1] == 2)  # only hearts differ...
    assert errors.max() <= 2  # ...by at most 2 pixels


def test_orientation_0_and_39_render_identically():
    for shape in range(3):
        for scale in range(6):
            first, last = ds.render_block(shape, scale, 0), ds.render_block(shape, scale, 39)
            assert np.array_equal(first, last)


def test_sizes_and_centroids_per_scale_and_position():
    k = np.arange(1024)
    reference = np.stack([16 + 32 * (k % 32) / 31, 16 + 32 * (k // 32) / 31], axis=1)  # row, col
    for shape, per_scale in SIZES.items():
        for scale, (width, height) in enumerate(per_scale):
            images = ds.render_block(shape, scale, 0).reshape(1024, 64, 64)
            widths, heights = images.any(axis=1).sum(1), images.any(axis=2).sum(1)
            assert (widths.min(), widths.max()) == width
            assert (heights.min(), heights.max()) == height
            offset = centroids(images) - reference
            assert np.abs(offset[:, 1]).max() < 0.4  # all shapes are symmetric left-right
            # squares and ellipses are centred; the heart's centroid is 1.99 * scale px above
            above = 1.99 * ds.latents_possible_values()["scale"][scale] if shape == 2 else 0
            assert abs(offset[:, 0].mean() + above) < 0.02
            assert np.abs(offset[:, 0] + above).max() < 0.4


def test_pos_y_zero_is_at_the_top_and_pos_x_zero_at_the_left():
    images = ds.render(classes_of(0, 5, 0, [0, 31, 0], [0, 0, 31]))
    rows, cols = centroids(images).T
    assert rows[0] == pytest.approx(16, abs=0.5) and cols[0] == pytest.approx(16, abs=0.5)
    assert cols[1] == pytest.approx(48, abs=0.5) and rows[1] == pytest.approx(16, abs=0.5)
    assert rows[2] == pytest.approx(48, abs=0.5) and cols[2] == pytest.approx(16, abs=0.5)


def test_rotation_is_counter_clockwise_on_screen():
    # orientation 5 is 46 degrees: the ellipse's long axis goes from lower left to upper right
    image = ds.render(classes_of(1, 5, 5, 16, 16))[0]
    r, c = np.nonzero(image)
    assert np.mean((c - c.mean()) * (r - r.mean())) < -10  # rows grow downwards
    # the heart's tip (down at orientation 0) turns towards the right at a quarter turn
    heart = ds.render(classes_of(2, 5, [0, 10], 16, 16))
    assert centroids(heart)[1, 1] < centroids(heart)[0, 1] - 1  # the lobes went left


def test_render_rejects_bad_classes():
    with pytest.raises(DataError, match=r"shape \[n, 6\]"):
        ds.render(np.zeros((3, 5), np.int64))
    with pytest.raises(DataError, match="out of range"):
        ds.render(classes_of(3, 0, 0, 0, 0))
    with pytest.raises(DataError, match="integer"):
        ds.render(np.zeros((1, 6)))


def test_contact_sheet_holds_every_shape_scale_and_ten_orientations():
    grid = ds.contact_sheet_classes()
    shown = grid[grid[..., 0] >= 0]
    assert {(s, c) for s, c in shown[:, 1:3]} >= {(s, c) for s in range(3) for c in range(6)}
    for shape in range(3):
        assert len(set(shown[(shown[:, 1] == shape) & (shown[:, 2] == 5), 3])) >= 10
    assert len(set(map(tuple, shown[:, 4:]))) >= 10
    sheet = ds.contact_sheet(ds.render)
    assert sheet.dtype == np.uint8 and sheet.shape == (7 * 66 + 2, 10 * 66 + 2)


# ------------------------------------------------------------------------- cache and full grid


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """A temporary data root in $NSVAE_DATA, deleted afterwards (the cache holds 2.8 GB)."""
    root = tmp_path / "root"
    monkeypatch.setenv("NSVAE_DATA", str(root))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_full_grid_cache_and_cli_render(tmp_path, data_root, capsys):
    """The one test that renders all 737,280 images (through the CLI, into a temporary cache)."""
    sheet = tmp_path / "sheet.png"
    assert cli.main(["data", "render", "dsprites", "--sheet", str(sheet)]) == 0
    out = capsys.readouterr().out
    assert str(ds.cache_path()) in out and str(sheet) in out
    assert ds.cache_path().is_file() and ds.cache_path().parent.name.endswith(ds.renderer_hash())
    assert sheet.stat().st_size > 1000

    data = get_dataset("dsprites")  # reuses the cache: a memory map, nothing rendered
    images = data.images
    assert isinstance(images, np.memmap) and images.shape == (737_280, 64, 64)
    assert data.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert data.factor_sizes == [3, 6, 40, 32, 32] and data.observation_shape == (1, 64, 64)
    assert images.mean() == pytest.approx(0.04250, abs=5e-5)  # spec 2.5
    blocks = images.reshape(3, 6, 40, 1024, 64, 64)
    areas = blocks.sum(axis=(-1, -2), dtype=np.int64).mean(axis=(2, 3))
    assert np.abs(areas - np.array([MEAN_AREAS[s] for s in range(3)])).max() < 0.15

    classes = random_classes(300, seed=5)
    observations = data.sample_observations_from_factors(classes[:, 1:], np.random.RandomState(0))
    assert observations.dtype == np.float32 and observations.shape == (300, 1, 64, 64)
    assert np.array_equal(observations[:, 0], ds.render(classes))
    array, scale = data.observations_array()
    assert array.shape == (737_280, 1, 64, 64) and array.dtype == np.uint8 and scale == 1.0
    sampler = BatchSampler(array, batch_size=16, seed=0, scale=scale)
    index = BatchSampler(array, batch_size=16, seed=0).indices()
    assert torch.equal(sampler.next(), torch.from_numpy(images[index.numpy()][:, None]).float())


def test_corrupt_cache_is_one_line_error(tmp_path):
    path = ds.cache_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x93NUMPY not really")
    with pytest.raises(DataError, match="corrupt dSprites cache") as error:
        DSprites.load(tmp_path)
    assert "\n" not in str(error.value)


def test_a_data_root_blocked_by_a_file_is_a_cache_write_error(tmp_path):
    root = tmp_path / "root"
    root.write_text("a file where the data root belongs")
    with pytest.raises(DataError) as error:
        DSprites.load(root)
    assert str(error.value) == (
        f"cannot write the dSprites cache {ds.cache_path(root)}: Not a directory"
    )


# ------------------------------------------------------------------------------------ loaders


def official_arrays(rows=8):
    classes = ds.latents_classes()[:rows]
    return {
        "imgs": np.zeros((rows, 64, 64), np.uint8),
        "latents_classes": classes,
        "latents_values": ds.latents_values(classes),
    }


def write_hdf5(path, arrays):
    with h5py.File(path, "w") as file:
        file["imgs"] = arrays["imgs"]
        file["latents/classes"] = arrays["latents_classes"]
        file["latents/values"] = arrays["latents_values"]
    return path


def bad_files(tmp_path):
    """(path, expected message) of every kind of bad file, npz and hdf5."""
    good = official_arrays()
    npz = tmp_path / "ok.npz"
    np.savez_compressed(npz, **good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    hdf5 = write_hdf5(tmp_path / "ok.hdf5", good)
    truncated_hdf5 = tmp_path / "truncated.hdf5"
    truncated_hdf5.write_bytes(hdf5.read_bytes()[: hdf5.stat().st_size // 2])
    files = [
        (npz, "imgs has shape"),
        (hdf5, "imgs has shape"),
        (truncated, "unreadable npz"),
        (truncated_hdf5, "unreadable hdf5"),
        (tmp_path / "absent.npz", "no dSprites file"),
    ]
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not a zip at all" * 10)
    files.append((garbage, "unreadable npz"))
    missing = tmp_path / "missing.npz"
    np.savez(missing, imgs=good["imgs"], latents_classes=good["latents_classes"])
    files.append((missing, r"missing keys \['latents_values'\]"))
    missing_hdf5 = tmp_path / "missing.h5"
    with h5py.File(missing_hdf5, "w") as file:
        file["imgs"] = good["imgs"]
    files.append((missing_hdf5, "missing datasets"))
    for key, dtype in [
        ("imgs", np.float32),
        ("latents_classes", np.int32),
        ("latents_values", np.float32),
    ]:
        arrays = dict(good, **{key: good[key].astype(dtype)})
        np.savez(tmp_path / f"dtype-{key}.npz", **arrays)
        files.append((tmp_path / f"dtype-{key}.npz", f"{key} has dtype"))
        files.append((write_hdf5(tmp_path / f"dtype-{key}.hdf5", arrays), f"{key} has dtype"))
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        imgs=np.array([{"x": 1}], dtype=object),
        latents_classes=good["imgs"],
        latents_values=good["imgs"],
    )
    files.append((pickled, "unreadable npz"))  # never unpickled
    return files


def test_every_loader_error_is_one_line(tmp_path):
    for path, message in bad_files(tmp_path):
        with pytest.raises(DataError, match=message) as error:
            DSprites.from_file(path, checksum=None)
        assert "\n" not in str(error.value), path


def test_checksums(tmp_path):
    path = tmp_path / "small.npz"
    np.savez(path, **official_arrays())
    with pytest.raises(DataError, match="checksum mismatch.*d98996d3f8ee1550e06b9d4ed78d0"):
        DSprites.from_file(path)  # the official checksums by default
    with pytest.raises(DataError, match="checksum mismatch"):
        DSprites.from_file(path, checksum="0" * 32)
    content = path.read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    for good in (blob, hashlib.md5(content).hexdigest(), hashlib.sha256(content).hexdigest()):
        with pytest.raises(DataError, match="imgs has shape"):  # past the checksum
            DSprites.from_file(path, checksum=good.upper())
    digests = data_files.file_digests(path)
    assert digests["git blob SHA-1"] == blob and digests["MD5"] == hashlib.md5(content).hexdigest()


@pytest.fixture
def eight_image_grid(monkeypatch):
    """Shrink the official grid to its first 8 images, so that small files pass the layout."""
    arrays = official_arrays()
    monkeypatch.setattr(ds, "NUM_IMAGES", 8)
    monkeypatch.setattr(ds, "latents_classes", lambda: arrays["latents_classes"])
    return arrays


def test_loaders_accept_the_official_layout(tmp_path, eight_image_grid):
    good = dict(eight_image_grid, imgs=ds.render(eight_image_grid["latents_classes"]))
    np.savez_compressed(tmp_path / "ok.npz", metadata=np.array({"pickled": True}), **good)
    for path in (tmp_path / "ok.npz", write_hdf5(tmp_path / "ok.hdf5", good)):
        loaded = DSprites.from_file(path, checksum=data_files.file_digests(path)["MD5"])
        assert np.array_equal(loaded.images, good["imgs"]) and loaded.source == str(path)


def test_wrong_latents_are_rejected(tmp_path, eight_image_grid):
    good = eight_image_grid
    shuffled = dict(good, latents_classes=good["latents_classes"][::-1].copy())
    values = dict(good, latents_values=good["latents_values"] + 1e-9)
    twos = dict(good, imgs=good["imgs"] + 2)
    for arrays, message in [
        (shuffled, "not the official grid"),
        (values, "not the official factor values"),
        (twos, "0/1 values"),
    ]:
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(DataError, match=message):
            DSprites.from_file(tmp_path / "bad.npz", checksum=None)


def test_registry(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'"):
        get_dataset("mnist")
    with pytest.raises(ConfigError, match="unknown dataset options"):
        get_dataset("dsprites", colour=True)
    with pytest.raises(DataError, match=f"no dSprites file at {tmp_path}"):
        get_dataset("dsprites-file", data_root=tmp_path)
    with pytest.raises(DataError, match="no dSprites file at /nowhere.npz"):
        get_dataset("dsprites", path="/nowhere.npz")


# -------------------------------------------------------------------------------------- fetch


def test_fetch_without_network_says_where_to_put_the_file(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data_files.urllib.request, "urlopen", offline)
    monkeypatch.setenv("NSVAE_DATA", str(tmp_path))
    with pytest.raises(DataError, match=re.escape(f"put it at {ds.official_path(tmp_path)}")):
        ds.fetch_dsprites()
    assert cli.main(["data", "fetch", "dsprites"]) == DataError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("nsvae: error: cannot download https://") and err.count("\n") == 1
    assert str(ds.official_path(tmp_path)) in err
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]  # no partial download


def test_fetch_rejects_a_wrong_download_and_keeps_nothing(tmp_path, monkeypatch):
    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        body = [b"<html>not the dataset</html>"]

        def read(self, size=-1):
            return self.body.pop() if self.body else b""

    monkeypatch.setattr(data_files.urllib.request, "urlopen", lambda *a, **k: Response())
    with pytest.raises(DataError, match="checksum mismatch"):
        ds.fetch_dsprites(tmp_path)
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]  # nothing kept
    ds.official_path(tmp_path).write_bytes(b"a file put there by hand, but the wrong one")
    with pytest.raises(DataError, match="checksum mismatch"):
        ds.fetch_dsprites(tmp_path)


def test_cli_rejects_other_datasets(capsys):
    assert cli.main(["data", "render", "shapes3d"]) == ConfigError.exit_code
    assert capsys.readouterr().err.count("\n") == 1
