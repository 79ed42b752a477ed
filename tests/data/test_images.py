"""Image folders and zips, CelebA: decoding, the cache, skipped files, and a run end to end.

No real CelebA is available here: the CelebA tests use a zip in the official layout
(``img_align_celeba/000001.jpg``, ...) of generated pictures (``conftest.face_images``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CORRUPT_NAME, face_images, jpeg_bytes
from PIL import Image

from nsvae.cli import main
from nsvae.data import get_dataset
from nsvae.data import images as im
from nsvae.errors import ConfigError, DataError, DataWarning


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_collection(folder, zip_path):
    """The same files as a folder and as a zip: 3 JPEGs, 1 PNG, a text file and a cut JPEG."""
    pictures = face_images(4, seed=1)
    files = {
        "a/1.jpg": jpeg_bytes(pictures[0]),
        "a/2.jpg": jpeg_bytes(pictures[1]),
        "b/3.png": png_bytes(pictures[2]),
        "c.jpeg": jpeg_bytes(pictures[3]),
        "notes.txt": b"not an image",
        "cut.jpg": jpeg_bytes(pictures[0])[:500],
    }
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
            archive.writestr(name, data)
    return pictures


def load_quietly(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = im.load_images(*args, **kwargs)
    return data, [str(w.message) for w in caught if issubclass(w.category, DataWarning)]


def test_folder_and_zip_decode_alike_and_skipped_files_are_reported(tmp_path):
    pictures = write_collection(tmp_path / "folder", tmp_path / "pictures.zip")
    from_folder, folder_warnings = load_quietly(tmp_path / "folder", tmp_path / "root")
    from_zip, zip_warnings = load_quietly(tmp_path / "pictures.zip", tmp_path / "root")

    assert from_folder.names == from_zip.names == ["a/1.jpg", "a/2.jpg", "b/3.png", "c.jpeg"]
    np.testing.assert_array_equal(from_folder.images, from_zip.images)
    assert from_zip.images.shape == (4, 3, 64, 64) and from_zip.images.dtype == np.uint8
    assert not from_zip.has_factors and len(from_zip) == 4
    # the PNG is lossless: its pixels are the crop-and-resize of the picture exactly
    np.testing.assert_array_equal(from_zip.images[2], im.preprocess(png_bytes(pictures[2])))
    for message in (folder_warnings, zip_warnings):
        assert len(message) == 1 and "skipped 2 of 6 files" in message[0]
        assert "first: cut.jpg (" in message[0] and "notes.txt (not an image)" in message[0]
    observations = from_zip.sample_observations(5, np.random.RandomState(0))
    assert observations.shape == (5, 3, 64, 64) and observations.dtype == np.float32
    assert observations.min() >= 0 and observations.max() <= 1


def test_the_cache_is_reused_keyed_by_the_source_and_still_reports(tmp_path, monkeypatch):
    write_collection(tmp_path / "folder", tmp_path / "pictures.zip")
    first, _ = load_quietly(tmp_path / "pictures.zip", tmp_path / "root")
    caches = list((tmp_path / "root" / "images").glob("*/images.npy"))
    assert len(caches) == 1 and isinstance(first.images, np.memmap)

    def no_decoding(data):
        raise AssertionError("decoded again")

    monkeypatch.setattr(im, "preprocess", no_decoding)
    again, messages = load_quietly(tmp_path / "pictures.zip", tmp_path / "root")
    np.testing.assert_array_equal(first.images, again.images)
    assert "skipped 2 of 6 files" in messages[0]  # never silent, even from the cache

    monkeypatch.undo()
    stat = os.stat(tmp_path / "pictures.zip")
    os.utime(tmp_path / "pictures.zip", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_quietly(tmp_path / "pictures.zip", tmp_path / "root")
    assert len(list((tmp_path / "root" / "images").glob("*/images.npy"))) == 2


def test_a_tampered_cache_index_is_a_one_line_error(tmp_path):
    write_collection(tmp_path / "folder", tmp_path / "pictures.zip")
    load_quietly(tmp_path / "pictures.zip", tmp_path / "root")
    (index,) = (tmp_path / "root" / "images").glob("*/index.json")
    good = json.loads(index.read_text())
    tampered = [
        good | {"skipped": ["cut.jpg", "notes.txt"]},  # names, not (name, reason)
        good | {"names": good["names"][:-1]},  # one name fewer than images
        good | {"names": [1, 2, 3, 4]},
        {"names": good["names"]},
    ]
    index.write_text(json.dumps(good | {"skipped": []}))  # valid: nothing skipped
    assert im.load_images(tmp_path / "pictures.zip", tmp_path / "root").names == good["names"]
    for record in tampered:
        index.write_text(json.dumps(record))
        with pytest.raises(DataError, match="corrupt cache index .*; delete its folder") as error:
            im.load_images(tmp_path / "pictures.zip", tmp_path / "root")
        assert "\n" not in str(error.value)


def test_files_over_the_size_limit_are_skipped_unread(tmp_path, monkeypatch):
    write_collection(tmp_path / "folder", tmp_path / "pictures.zip")
    pictures = ["a/1.jpg", "a/2.jpg", "b/3.png", "c.jpeg"]
    largest = max(pictures, key=lambda name: (tmp_path / "folder" / name).stat().st_size)
    monkeypatch.setattr(im, "MAX_FILE_BYTES", (tmp_path / "folder" / largest).stat().st_size - 1)

    def read(name, reader):
        assert name != largest, "a file over the limit was read"
        return reader()

    for source in ("folder", "pictures.zip"):
        with monkeypatch.context() as patched:
            patched.setattr(
                Path,
                "read_bytes",
                lambda path: read(
                    path.relative_to(tmp_path / "folder").as_posix(), lambda: path.open("rb").read()
                ),
            )
            patched.setattr(
                zipfile.ZipFile,
                "read",
                lambda archive, name: read(name, lambda: archive.open(name).read()),
            )
            data, messages = load_quietly(tmp_path / source, tmp_path / "root")
        assert data.names == [name for name in pictures if name != largest]
        assert "skipped 3 of 6 files" in messages[0] and f"{largest} (" in messages[0]
        assert " bytes, over " in messages[0] and ": not read)" in messages[0]


def test_preprocessing_crops_the_centre_square_and_resizes_to_64():
    picture = np.zeros((60, 100, 3), np.uint8)
    picture[:, :20] = [255, 0, 0]  # outside the centred 60 x 60 square
    picture[:, 20:80] = [0, 200, 0]
    picture[:, 80:] = [0, 0, 255]
    image = im.preprocess(png_bytes(picture))
    assert image.shape == (3, 64, 64)
    np.testing.assert_array_equal(
        image[:, 5:-5, 5:-5],
        np.broadcast_to(np.array([0, 200, 0], np.uint8)[:, None, None], (3, 54, 54)),
    )


def test_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "not.zip").write_bytes(b"PK\x03\x04 truncated")
    with zipfile.ZipFile(tmp_path / "texts.zip", "w") as archive:
        archive.writestr("a.txt", b"text")
    cases = [
        (tmp_path / "nowhere", "no image folder or zip file at"),
        (tmp_path / "empty", "no files"),
        (tmp_path / "not.zip", "not a readable zip file"),
        (tmp_path / "texts.zip", "none of its 1 files is a readable image"),
    ]
    for path, message in cases:
        with pytest.raises(DataError, match=message) as error:
            im.load_images(path, tmp_path / "root")
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="needs a folder or zip"):
        get_dataset("images")
    with pytest.raises(DataError, match="no CelebA at .*00d2c5bc6d35e252742224ab0c1e8fcb"):
        get_dataset("celeba", data_root=tmp_path)


def official_celeba(monkeypatch, path):
    """Let ``path`` pass as the official CelebA zip (its MD5 as the published one)."""
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setattr(im, "CELEBA", dataclasses.replace(im.CELEBA, checksums=(md5,)))


def test_celeba_zip_is_checked_against_the_published_checksum(tmp_path, celeba_zip, monkeypatch):
    official = im.CELEBA.path(tmp_path)
    official.parent.mkdir(parents=True)
    official.write_bytes(celeba_zip.read_bytes())
    with pytest.raises(
        DataError, match="checksum mismatch .*expected 00d2c5bc6d35e252742224ab0c1e8fcb"
    ):
        get_dataset("celeba", data_root=tmp_path)
    official_celeba(monkeypatch, official)
    with pytest.warns(DataWarning, match=f"skipped 1 of 24 .*{CORRUPT_NAME}"):
        data = get_dataset("celeba", data_root=tmp_path)
    assert len(data) == 23 and CORRUPT_NAME not in data.names


@pytest.fixture(scope="module")
def celeba_run(tmp_path_factory, celeba_zip):
    """A 3-step CelebA run on the generated zip (through ``nsvae train``), and its stderr."""
    run = tmp_path_factory.mktemp("celeba-run") / "run"
    with pytest.MonkeyPatch.context() as monkeypatch:
        official_celeba(monkeypatch, celeba_zip)
        with contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(
                [
                    "train",
                    "--data",
                    "celeba",
                    "--data-path",
                    str(celeba_zip),
                    "--data-root",
                    str(run.parent / "root"),
                    "--steps",
                    "3",
                    "--batch-size",
                    "8",
                    "--z-dim",
                    "4",
                    "--threads",
                    "1",
                    "--device",
                    "cpu",
                    "--log-every",
                    "1",
                    "--no-figures",
                    "--no-progress",
                    "--run-dir",
                    str(run),
                ]
            )
        yield run, code, err.getvalue()


def test_celeba_trains_and_scores_the_metrics_without_factors(celeba_run, capsys):
    run, code, err = celeba_run
    assert code == 0
    lines = err.splitlines()  # the skipped file; after 3 steps also the collapsed latents
    assert all(line.startswith("nsvae: warning: ") for line in lines)
    assert "skipped 1 of 24" in lines[0] and CORRUPT_NAME in lines[0]
    assert json.loads((run / "config.json").read_text())["observation_shape"] == [3, 64, 64]

    assert main(["evaluate", str(run), "--fast"]) == 0
    evaluation = json.loads((run / "eval.json").read_text())
    assert set(evaluation["metrics"]) == {"unsupervised", "latent_synergy"}
    capsys.readouterr()
    assert main(["evaluate", str(run), "--metrics", "mig,unsupervised"]) == 6
    *notes, error = capsys.readouterr().err.splitlines()  # the skipped file, then the error
    assert all(line.startswith("nsvae: warning: ") for line in notes)
    assert error.startswith("nsvae: error: mig need")
    assert "ground-truth factors and this dataset has none" in error


def test_celeba_report_has_rgb_figures_and_no_factor_figures(celeba_run):
    run = celeba_run[0]
    assert main(["report", str(run), "--num-samples", "64"]) == 0
    figures = {path.name for path in (run / "figures").iterdir()}
    assert {"traversals.png", "reconstructions.png", "prior_traversals.png"} <= figures
    assert not {"factors.png", "mutual_information.png"} & figures
    page = (run / "report.html").read_text()
    assert 'id="traversals"' in page and 'id="factors"' not in page
    grid = np.asarray(Image.open(run / "figures" / "reconstructions.png").convert("RGB"))
    tiles = grid[40:-10, 160:-10].astype(int)  # the mosaic, past the title and labels
    assert np.abs(tiles[..., 0] - tiles[..., 1]).max() > 60  # colour, not grey


def with_member_flags(zip_bytes: bytes, method: int | None = None, encrypted: bool = False):
    """A zip's bytes with every member marked encrypted and/or given another compression method
    (in the local and the central headers), as another archiver would write them."""
    data = bytearray(zip_bytes)
    for signature, flags_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = data.find(signature)
        while start >= 0:
            if encrypted:
                data[start + flags_at] |= 1
            if method is not None:
                data[start + method_at : start + method_at + 2] = method.to_bytes(2, "little")
            start = data.find(signature, start + 4)
    return bytes(data)


@pytest.mark.parametrize(
    ("flags", "reason"),
    [({"encrypted": True}, "encrypted"), ({"method": 9}, "compression method is not supported")],
)
def test_encrypted_or_unsupported_zip_members_are_skipped_or_refused_in_one_line(
    flags, reason, tmp_path
):
    """Issue 15's rule for what other archivers write: a skipped image, a refused npz."""
    from nsvae.data.npz import read_npz

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.png", png_bytes(face_images(1, seed=2)[0]))
    (tmp_path / "odd.zip").write_bytes(with_member_flags(buffer.getvalue(), **flags))
    with pytest.raises(DataError, match=f"none of its 1 files.*{reason}"):
        im.load_images(tmp_path / "odd.zip", tmp_path / "root")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=np.zeros((2, 1, 64, 64), np.uint8))
    (tmp_path / "odd.npz").write_bytes(with_member_flags(buffer.getvalue(), **flags))
    with pytest.raises(DataError, match=f"unreadable npz file .*{reason}"):
        read_npz(tmp_path / "odd.npz", ["images"])


def test_16_bit_images_keep_their_brightness_and_float_tiffs_are_not_decoded():
    """PIL alone clips them (a 16-bit picture turned white); they are scaled to 0-255. Float
    images come only in formats nsvae does not decode (TIFF here): skipped as "not an image"."""
    rng = np.random.default_rng(0)
    deep = (rng.random((80, 80)) * 65535).astype(np.uint16)
    decoded = im.preprocess(png_bytes(deep))
    assert decoded.mean() == pytest.approx((deep / 65535 * 255).mean(), abs=1)
    unit = rng.random((80, 80)).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(unit, "F").save(buffer, format="TIFF")
    with pytest.raises(DataError, match="not an image"):
        im.preprocess(buffer.getvalue())


def test_a_decompression_bomb_warning_skips_the_image_instead_of_printing(monkeypatch):
    picture = face_images(1, seed=3)[0]
    pixels = picture.shape[0] * picture.shape[1]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels - 1)  # over it, under twice: a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # PIL's printing path
        with pytest.raises(DataError, match="exceeds limit"):
            im.preprocess(png_bytes(picture))
