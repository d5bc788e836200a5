"""The ``diffcodec`` command: encode / decode / rates round trips, and bad input exits 2 with one clear line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffcodec import Codec
from diffcodec.cli import main
from diffcore.data import load_pool

METHODS = ("oscar", "rdeic", "hyperprior")


def _weights(codec_path) -> list[str]:
    return [] if codec_path is None else ["--weights", str(codec_path)]


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 61×83 crop of a holdout photo (odd sides: the codecs pad and crop back)."""
    coffee = next(p.pixels for p in load_pool("holdout") if p.source == "coffee")
    path = tmp_path_factory.mktemp("in") / "coffee.png"
    Image.fromarray(coffee[150:211, 250:333]).save(path)
    return path


@pytest.fixture(scope="module")
def oscar_blob(photo, codec_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("blob") / "coffee.dfc"
    assert main(["encode", str(photo), str(out), "--method", "oscar", "--rate", "0", *_weights(codec_path)]) == 0
    return out


def _error(capsys) -> str:
    """The one line a failed command printed on stderr."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffcodec: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("method", METHODS)
def test_encode_decode_round_trip(method, photo, codec_path, tmp_path, capsys):
    """encode prints the real bpp of the file it wrote; decode gives the API's image, at the original size."""
    blob_path, out_path = tmp_path / "x.dfc", tmp_path / "x.png"
    assert main(["encode", str(photo), str(blob_path), "--method", method, "--rate", "1", *_weights(codec_path)]) == 0
    blob = blob_path.read_bytes()
    printed = capsys.readouterr().out
    assert f"{len(blob)} bytes, {8 * len(blob) / (61 * 83):.4f} bpp ({method} rate 1, 83×61 px" in printed
    assert main(["decode", str(blob_path), str(out_path), *_weights(codec_path)]) == 0
    assert f"83×61 px from {method} rate 1" in capsys.readouterr().out
    decoded = Image.open(out_path)
    assert decoded.format == "PNG" and decoded.mode == "RGB" and decoded.size == (83, 61)
    codec = Codec.load(method, path=codec_path)
    assert blob == codec.compress(Image.open(photo), rate=1)
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(codec.decompress(blob)))


def test_decode_writes_the_format_its_extension_names(oscar_blob, codec_path, tmp_path, capsys):
    reference = np.asarray(Codec.load("oscar", path=codec_path).decompress(oscar_blob.read_bytes()))
    for name, fmt in (("plain", "PNG"), ("x.webp", "WEBP"), ("x.tif", "TIFF"), ("x.jpg", "JPEG")):
        assert main(["decode", str(oscar_blob), str(tmp_path / name), *_weights(codec_path)]) == 0
        with Image.open(tmp_path / name) as im:
            assert im.format == fmt
            if fmt != "JPEG":  # the others are written losslessly
                np.testing.assert_array_equal(np.asarray(im.convert("RGB")), reference)
    capsys.readouterr()
    assert main(["decode", str(oscar_blob), str(tmp_path / "x.nope"), *_weights(codec_path)]) == 2
    assert "cannot write '.nope' files" in _error(capsys)


def test_decode_steps(oscar_blob, codec_path, tmp_path, capsys):
    """--steps runs the same OSCAR model as DDIM from the same start: a valid, different image."""
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    assert main(["decode", str(oscar_blob), str(one), *_weights(codec_path)]) == 0
    assert main(["decode", str(oscar_blob), str(two), "--steps", "2", *_weights(codec_path)]) == 0
    assert "2 UNet passes" in capsys.readouterr().out
    assert Image.open(two).size == Image.open(one).size == (83, 61)
    assert main(["decode", str(oscar_blob), str(two), "--steps", "0", *_weights(codec_path)]) == 0  # the ablation
    assert "no diffusion" in capsys.readouterr().out and Image.open(two).size == (83, 61)


def test_rates_lists_every_method_with_nominal_bpp(codec_path, capsys):
    assert main(["rates", *_weights(codec_path)]) == 0
    out = capsys.readouterr().out
    for method in METHODS:
        assert re.search(rf"^{method}$", out, re.M)
    assert len(re.findall(r"^  --rate \d+ .* bpp \(nominal\)$", out, re.M)) >= 4 + 3 + 1
    assert main(["rates", "--method", "oscar", *_weights(codec_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("oscar\n") and "rdeic" not in out
    for r in Codec.load("oscar", path=codec_path).rates:
        assert f"--rate {r.index}  {r.label}" in out and f"{r.bpp:.4f} bpp (nominal)" in out


def test_missing_files_exit_2(tmp_path, capsys):
    missing = tmp_path / "missing.png"
    assert main(["encode", str(missing), str(tmp_path / "x.dfc")]) == 2
    assert _error(capsys) == f"diffcodec: error: {missing}: no such file"
    assert main(["decode", str(tmp_path / "missing.dfc"), str(tmp_path / "x.png")]) == 2
    assert "missing.dfc: no such file" in _error(capsys)


def test_unreadable_and_transparent_images_exit_2(codec_path, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert main(["encode", str(text), str(tmp_path / "x.dfc"), *_weights(codec_path)]) == 2
    assert "notes.png: not an image Pillow can read" in _error(capsys)
    rgba = np.full((32, 32, 4), 200, dtype=np.uint8)
    rgba[..., 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "glass.png")
    assert main(["encode", str(tmp_path / "glass.png"), str(tmp_path / "x.dfc"), *_weights(codec_path)]) == 2
    assert "transparent pixels" in _error(capsys)
    assert not (tmp_path / "x.dfc").exists()


def test_bad_blobs_exit_2(oscar_blob, photo, codec_path, tmp_path, capsys):
    blob = bytearray(oscar_blob.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    cases = {
        "corrupt.dfc": (bytes(blob), "CRC-32 mismatch"),
        "truncated.dfc": (bytes(blob[:-7]), "announces"),
        "photo.dfc": (photo.read_bytes(), "not a diffcodec bitstream"),
        "empty.dfc": (b"", "blob of 0 bytes is shorter than a diffcodec header"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert main(["decode", str(tmp_path / name), str(tmp_path / "x.png"), *_weights(codec_path)]) == 2, name
        assert message in _error(capsys), name
    assert not (tmp_path / "x.png").exists()


def test_bad_arguments_exit_2(photo, codec_path, tmp_path, capsys):
    assert main(["encode", str(photo), str(tmp_path / "x.dfc"), "--rate", "99", *_weights(codec_path)]) == 2
    assert re.search(r"rate must be an int in 0…\d+ for oscar, got 99", _error(capsys))
    assert main(["encode", str(photo), str(tmp_path / "x.dfc"), "--weights", str(tmp_path / "nowhere")]) == 2
    assert "no oscar weights under" in _error(capsys)
    with pytest.raises(SystemExit) as e:  # argparse's own usage errors exit 2 as well
        main(["encode", str(photo), str(tmp_path / "x.dfc"), "--method", "jpeg"])
    assert e.value.code == 2


def test_console_script_reports_without_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "diffcodec.cli", "decode", str(tmp_path / "missing.dfc"), str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == f"diffcodec: error: {tmp_path / 'missing.dfc'}: no such file"


def test_eval_prints_and_writes_the_rd_table(photo, codec_path, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.open(photo).save(folder / "a.png")
    (folder / "readme.txt").write_text("not an image: skipped")
    out = tmp_path / "rd.md"
    assert main(["eval", str(folder), "--methods", "hyperprior", "jpeg", "--out", str(out), *_weights(codec_path)]) == 0
    captured = capsys.readouterr()
    table = captured.out.strip()
    assert out.read_text().strip() == table and f"wrote {out}" in captured.err
    lines = table.splitlines()
    assert lines[0].startswith("| image | method | point |") and "bpp" in lines[0] and "PSNR dB" in lines[0]
    hyper = [line for line in lines if "| hyperprior |" in line]
    assert len(hyper) == len(Codec.load("hyperprior", path=codec_path).rates)
    assert any("| JPEG |" in line for line in lines) and not any("OSCAR" in line for line in lines)


def test_eval_bad_folder_or_method_exit_2(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in _error(capsys)
    assert main(["eval", str(tmp_path), "--methods", "png"]) == 2
    assert "unknown method(s) ['png']" in _error(capsys)


def test_train_forwards_its_arguments_and_reports_errors(monkeypatch, capsys):
    """``diffcodec train ARGS`` is ``diffcore train codec ARGS``: the arguments reach diffcodec.train.main as given."""
    import diffcodec.train
    from diffcore.errors import DataError

    seen = []
    monkeypatch.setattr(diffcodec.train, "main", seen.append)
    assert main(["train", "--stage", "oscar-hyper", "--smoke", "--weights", "w"]) == 0
    assert seen == [["--stage", "oscar-hyper", "--smoke", "--weights", "w"]]

    def fail(argv):
        raise DataError("no readable images in ~/photos")

    monkeypatch.setattr(diffcodec.train, "main", fail)
    assert main(["train", "--data", "~/photos"]) == 2
    assert _error(capsys) == "diffcodec: error: no readable images in ~/photos"
