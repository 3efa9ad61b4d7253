"""Image loading: every odd file gets defined behaviour and a clear message."""

import cv2
import numpy as np
import pytest

from edge.imageio import ImageError, decode_image, load_image


def picture(h=64, w=80):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 3 % 256, y * 4 % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def write(path, array, ext):
    ok, data = cv2.imencode(ext, array)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def test_reads_color_jpeg_as_bgr(tmp_path):
    image = load_image(write(tmp_path / "a.jpg", picture(), ".jpg"))
    assert image.shape == (64, 80, 3) and image.dtype == np.uint8


@pytest.mark.parametrize(
    "array",
    [
        picture()[:, :, 0],  # grayscale
        np.dstack([picture(), np.full((64, 80), 128, np.uint8)]),  # BGRA
        (picture().astype(np.uint16) * 257),  # 16-bit
    ],
    ids=["gray", "rgba", "16bit"],
)
def test_converts_odd_pixel_formats(tmp_path, array):
    image = load_image(write(tmp_path / "odd.png", array, ".png"))
    assert image.shape == (64, 80, 3) and image.dtype == np.uint8
    assert image.max() > 200  # 16-bit scaled down, not clipped or zeroed


def test_palette_png(tmp_path):
    # A minimal 2x2 palette PNG written by hand (OpenCV cannot write one).
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 3, 0, 0, 0)
    palette = bytes([255, 0, 0, 0, 0, 255])
    raw = b"\x00\x00\x01" + b"\x00\x01\x00"
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", palette) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    image = decode_image(data)
    assert image.shape == (2, 2, 3)
    assert tuple(image[0, 0]) == (0, 0, 255)  # red, in BGR
    assert tuple(image[0, 1]) == (255, 0, 0)  # blue


def test_format_comes_from_content_not_extension(tmp_path):
    image = load_image(write(tmp_path / "really_webp.jpg", picture(), ".webp"))
    assert image.shape == (64, 80, 3)


def test_truncated_jpeg_is_refused(tmp_path):
    data = write(tmp_path / "a.jpg", picture(200, 200), ".jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "cut.jpg")


def test_truncated_png_is_refused(tmp_path):
    data = write(tmp_path / "a.png", picture(), ".png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-40])
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "cut.png")


@pytest.mark.parametrize(
    "content,message",
    [(b"", "empty file"), (b"hello, I am text", "not a readable image"), (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50 + b"IEND\xaeB`\x82", "not a readable image")],
)
def test_non_images_are_refused(tmp_path, content, message):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)
