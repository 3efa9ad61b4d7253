"""Deterministic generators of hostile inputs for edge, one family each.

Every case is a frozen ``Case``: the edge command line to run (argv after
``edge``), the files to write first, the damage to apply to a copy of the
base gallery, and what counts as correct. Paths in argv and in file
contents use placeholders that the runner resolves per case:

    @@CASE@@      the case's own empty folder
    @@GALLERY@@   the case's copy of the base gallery (obama, 2 samples), when ``gallery`` is set
    @@FACES@@     tests/fixtures/faces (the bundled photos)
    @@FRAMES@@    a short door scene (obama3, biden, an empty frame)
    @@BIDEN@@     door frames with only Biden (not enrolled) walking past
    @@OBAMA@@     door frames with only Obama (obama3.jpg) walking past

All randomness comes from ``random.Random(f"{seed}:{family}:...")``: the
same seed gives the same corpus.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"

FAMILIES = ("images", "pairs", "configs", "gallery", "imports", "mqtt")

ROW_BYTES = 128 * 4
"""One float32 row of the base gallery (128-d SFace embeddings)."""
HEADER = 4096
"""rows-0.bin header size (edge.gallery.fileformat)."""
COMMITTED_ROWS = 2
"""The base gallery: obama from obama.jpg and obama2.jpg."""


@dataclass(frozen=True)
class Case:
    """One hostile input and how to judge edge's answer to it.

    family, name   which generator, and a unique readable name
    argv           the edge command line (after ``edge``); str or bytes items, placeholders allowed
    files          ((relative path, content), ...) written under @@CASE@@ first; content is
                   bytes, ("symlink", target) or ("dir",); paths may be bytes (non-UTF-8 names)
    gallery        copy the base gallery to @@GALLERY@@ first
    damage         operations on that copy, in order: ("flip", file, offset, bit),
                   ("write", file, offset, bytes), ("truncate", file, size), ("delete", file),
                   ("add", file, bytes)
    check          "exit" (status, traceback, hang, memory), "identify" (also names in
                   --json output: the probes are biden.jpg then obama3.jpg), "door" (also
                   names in the door's JSON events)
    obama_ok       whether naming obama is right (False once his rows are damaged)
    stranger       door/identify: the probe is Biden only (any name is wrong)
    rows_kept      the damage touches no committed row: `gallery list` afterwards must still show 2
    timeout        seconds before the case counts as a hang
    bomb           a resource bomb (huge declared or inflated sizes, endless input): its peak RSS
                   must stay under 500 MiB (other cases report their peak, which includes the
                   models and the JIT, without a limit)
    mqtt           for the mqtt family: (topic suffix under edge/<id>/, payload, retain)
    note           what the case is about
    """

    family: str
    name: str
    argv: tuple = ()
    files: tuple = ()
    gallery: bool = False
    damage: tuple = ()
    check: str = "exit"
    obama_ok: bool = True
    stranger: bool = False
    rows_kept: bool = False
    timeout: float = 60.0
    mqtt: tuple | None = None
    note: str = ""
    bomb: bool = False


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(map(str, (seed, *parts))))


@lru_cache(maxsize=None)
def photo(name: str) -> bytes:
    return (FACES / name).read_bytes()


@lru_cache(maxsize=None)
def png_photo() -> bytes:
    """obama3.jpg re-encoded as PNG (a real PNG to cut and damage)."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(photo("obama3.jpg"), np.uint8), cv2.IMREAD_COLOR)
    image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2))
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_bomb(width: int, height: int, *, good_crc: bool = True, idat: bytes | None = None) -> bytes:
    """A PNG whose IHDR claims width x height, with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = _png_chunk(b"IHDR", ihdr)
    if not good_crc:
        chunk = chunk[:-4] + b"\0\0\0\0"
    data = idat if idat is not None else zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def png_deflate_bomb(width: int, height: int) -> bytes:
    """A PNG whose IDAT really inflates to width*height*3 (+filter bytes) of zeros."""
    raw_len = (width * 3 + 1) * height
    comp = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    parts, left = [], raw_len
    while left > 0:
        n = min(left, len(chunk))
        parts.append(comp.compress(chunk[:n]))
        left -= n
    parts.append(comp.flush())
    return png_header_bomb(width, height, idat=b"".join(parts))


def jpeg_sof_bomb(width: int, height: int) -> bytes:
    """obama.jpg with its SOF marker patched to claim width x height."""
    data = bytearray(photo("obama.jpg"))
    i = 2
    while i < len(data) - 9:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, i + 5, height, width)
            return bytes(data)
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack_from(">H", data, i + 2)[0]
        i += 2 + length
    raise ValueError("no SOF marker")


def bmp_header_bomb(width: int, height: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54 + 16, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 16, 2835, 2835, 0, 0)
    return header + info + b"\0" * 16


def gif_header_bomb(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b",\0\0\0\0" + struct.pack("<HH", width, height) + b"\0\x02\x02D\x01\0;"


def tiff_header_bomb(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", 8 + 16) + b"\0" * 16 + ifd


# ---------------------------------------------------------------- images

IDENTIFY = ("identify", "@@CASE@@/in/{file}", "--gallery", "@@GALLERY@@", "--json")
VERIFY = ("verify", "@@CASE@@/in/{file}", "@@FACES@@/obama.jpg", "--json")
BUILD = ("gallery", "build", "@@CASE@@/in", "--gallery", "@@CASE@@/out", "--workers", "1", "--json")


def _image_case(name: str, file: str | bytes, content, command: str, note: str, **extra) -> Case:
    """One bad file run through identify, verify or gallery build."""
    if command == "build":
        # Build takes DATASET/<person>/<photo>: the bad file is one photo of person "mallory".
        rel = (b"in/mallory/" + file) if isinstance(file, bytes) else f"in/mallory/{file}"
        argv = BUILD
    else:
        rel = (b"in/" + file) if isinstance(file, bytes) else f"in/{file}"
        template = IDENTIFY if command == "identify" else VERIFY
        argv = tuple(
            (b"@@CASE@@/" + rel if isinstance(rel, bytes) else f"@@CASE@@/{rel}") if "{file}" in a else a
            for a in template
        )
    return Case("images", f"{command}:{name}", argv, files=((rel, content),), gallery=command == "identify",
                note=note, timeout=60.0, **extra)


def images(seed: int) -> Iterator[Case]:
    jpeg, png = photo("obama3.jpg"), png_photo()
    rng = _rng(seed, "images")
    # Truncations at many offsets: JPEG through identify, PNG through identify, some of each through build/verify.
    jpeg_offsets = sorted({0, 1, 2, 3, 4, 10, 20, 100, 200, 600, 1000, 2000} | {rng.randrange(5, len(jpeg)) for _ in range(40)})
    for k, off in enumerate(jpeg_offsets):
        command = ("identify", "identify", "verify", "build")[k % 4]
        yield _image_case(f"jpeg-truncated-{off}", "photo.jpg", jpeg[:off], command, f"obama3.jpg cut to {off} bytes")
    png_offsets = sorted({0, 8, 16, 33, 40, 60, 100} | {rng.randrange(8, len(png)) for _ in range(30)})
    for k, off in enumerate(png_offsets):
        command = ("identify", "identify", "verify", "build")[k % 4]
        yield _image_case(f"png-truncated-{off}", "photo.png", png[:off], command, f"a PNG cut to {off} bytes")
    # Bit flips, mostly in the headers.
    for k in range(40):
        source, suffix = (jpeg, "jpg") if k % 2 == 0 else (png, "png")
        data = bytearray(source)
        limit = 700 if k < 30 else len(data)
        for _ in range(1 + k % 4):
            off = rng.randrange(0, min(limit, len(data)))
            data[off] ^= 1 << rng.randrange(8)
        command = ("identify", "verify", "build")[k % 3]
        yield _image_case(f"{suffix}-bitflip-{k}", f"photo.{suffix}", bytes(data), command, "random bit flips")
    # Random bytes with image suffixes.
    suffixes = ("jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "gif", "JPG", "pgm")
    for k in range(40):
        size = rng.choice((1, 7, 64, 512, 4096, 65536, 300_000))
        prefix = rng.choice((b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF\0\0\0\0WEBP", b"II*\0", b"GIF89a"))
        data = prefix + rng.randbytes(size)
        command = ("identify", "verify", "build")[k % 3]
        yield _image_case(f"random-{k}-{size}", f"junk{k}.{suffixes[k % len(suffixes)]}", data, command, "random bytes, image suffix")
    # Header bombs.
    bombs = {
        "jpeg-sof-30000x30000": ("bomb.jpg", jpeg_sof_bomb(30000, 30000)),
        "jpeg-sof-65535x65535": ("bomb.jpg", jpeg_sof_bomb(65535, 65535)),
        "jpeg-sof-65535x1": ("bomb.jpg", jpeg_sof_bomb(65535, 1)),
        "jpeg-sof-0x0": ("bomb.jpg", jpeg_sof_bomb(0, 0)),
        "png-ihdr-30000x30000": ("bomb.png", png_header_bomb(30000, 30000)),
        "png-ihdr-30000x30000-badcrc": ("bomb.png", png_header_bomb(30000, 30000, good_crc=False)),
        "png-ihdr-65535x1": ("bomb.png", png_header_bomb(65535, 1)),
        "png-ihdr-1x65535": ("bomb.png", png_header_bomb(1, 65535)),
        "png-ihdr-2^31x2^31": ("bomb.png", png_header_bomb(2**31 - 1, 2**31 - 1)),
        "png-ihdr-0x0": ("bomb.png", png_header_bomb(0, 0)),
        "png-deflate-12000x12000": ("bomb.png", png_deflate_bomb(12000, 12000)),
        "bmp-30000x30000": ("bomb.bmp", bmp_header_bomb(30000, 30000)),
        "bmp-30000x-30000": ("bomb.bmp", bmp_header_bomb(30000, -30000)),
        "gif-65535x65535": ("bomb.gif", gif_header_bomb(65535, 65535)),
        "tiff-30000x30000": ("bomb.tif", tiff_header_bomb(30000, 30000)),
    }
    for name, (file, data) in bombs.items():
        for command in ("identify", "verify", "build"):
            yield _image_case(name, file, data, command, "header bomb")
    # Zero-size files and non-images named as images.
    others = {
        "empty-jpg": ("empty.jpg", b""), "empty-png": ("empty.png", b""), "empty-noext": ("empty", b""),
        "text-as-jpg": ("text.jpg", b"hello, this is not a photo\n" * 10),
        "html-as-jpg": ("page.jpg", b"<!doctype html><html><body>hi</body></html>"),
        "pdf-as-jpg": ("doc.jpg", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
        "zip-as-jpg": ("arch.jpg", b"PK\x05\x06" + b"\0" * 18),
        "gzip-as-png": ("comp.png", zlib.compress(b"x" * 1000)),
        "svg-as-png": ("vec.png", b"<svg xmlns='http://www.w3.org/2000/svg' width='99999' height='99999'/>"),
        "json-as-jpg": ("data.jpg", b'{"a": [1, 2, 3]}'),
        "elf-as-jpg": ("prog.jpg", Path("/bin/true").read_bytes()[:8192] if Path("/bin/true").exists() else b"\x7fELF"),
        "nul-as-jpg": ("nul.jpg", b"\0" * 100_000),
        "ff-as-jpg": ("ff.jpg", b"\xff" * 100_000),
        "dir-named-jpg": ("folder.jpg", ("dir",)),
        "dangling-symlink-jpg": ("dangling.jpg", ("symlink", "/nonexistent/nowhere.jpg")),
        "symlink-dev-zero-jpg": ("zero.jpg", ("symlink", "/dev/zero")),
        "symlink-dev-null-jpg": ("null.jpg", ("symlink", "/dev/null")),
    }
    for name, (file, data) in others.items():
        for command in ("identify", "verify", "build"):
            yield _image_case(name, file, data, command, "not an image")
    # Hostile file names, with a real photo inside.
    names: dict[str, str | bytes] = {
        "latin1-name": b"caf\xe9.jpg", "invalid-utf8-name": b"\xff\xfe\xfd.jpg", "lone-surrogate-bytes": b"\xed\xa0\x80.jpg",
        "comma-name": "a,b,c.jpg", "newline-name": "line1\nline2.jpg", "cr-name": "x\ry.jpg", "quote-name": 'say "hi".jpg',
        "tab-name": "a\tb.jpg", "dash-name": "-rf.jpg", "space-name": " lead and trail .jpg", "dots-name": "...jpg",
        "long-name": "n" * 250 + ".jpg", "rtl-name": "\u202egpj.exe.jpg", "combining-name": "e\u0301\u0301\u0301.jpg",
        "emoji-name": "\U0001f600.jpg", "escape-name": "\x1b[31mred\x1b[0m.jpg", "backslash-name": "a\\b.jpg",
        "upper-suffix": "PHOTO.JPEG", "double-suffix": "photo.png.jpg", "percent-name": "%s%n%x.jpg",
    }
    for name, file in names.items():
        for command in ("identify", "verify", "build"):
            yield _image_case(name, file, jpeg, command, "hostile file name, real photo", check="identify" if command == "identify" else "exit")
    # Person folders with hostile names for gallery build (the folder name is the identity).
    people = {"person-comma": "ob,ama", "person-newline": "ob\nama", "person-nul-like": "ob\x01ama",
              "person-latin1": b"ob\xe9ma", "person-dotdot": "..", "person-space": " ", "person-long": "p" * 250,
              "person-escape": "\x1b]0;title\x07", "person-rtl": "\u202eamabo", "person-zero-width": "obama\u200b"}
    for name, person in people.items():
        rel = (b"in/" + person + b"/photo.jpg") if isinstance(person, bytes) else f"in/{person}/photo.jpg"
        yield Case("images", f"build:{name}", BUILD, files=((rel, jpeg),), note="hostile person folder name")
    # A door replaying a folder of hostile frames.
    frames = [("truncated", jpeg[:2000]), ("random", rng.randbytes(5000)), ("empty", b""),
              ("png-bomb", png_header_bomb(30000, 30000)), ("jpeg-bomb", jpeg_sof_bomb(30000, 30000)),
              ("deflate-bomb", png_deflate_bomb(12000, 12000))]
    for name, data in frames:
        suffix = "png" if "png" in name or "deflate" in name else "jpg"
        yield Case("images", f"door-frames:{name}",
                   ("run", "--source", "@@CASE@@/frames", "--gallery", "@@GALLERY@@", "--exit-at-end"),
                   files=((f"frames/00001.{suffix}", data), ("frames/00000.png", _blank_png())), gallery=True,
                   check="door", note="a folder source with a bad frame", timeout=90.0)


@lru_cache(maxsize=None)
def _blank_png() -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".png", np.full((48, 64, 3), 128, np.uint8))[1].tobytes()


# ---------------------------------------------------------------- pairs CSVs

def pairs(seed: int) -> Iterator[Case]:
    rng = _rng(seed, "pairs")
    good = "path_a,path_b,same\nobama.jpg,obama2.jpg,1\nobama.jpg,biden.jpg,0\n"
    texts: dict[str, bytes] = {
        "bom": b"\xef\xbb\xbf" + good.encode(),
        "bom-utf16": good.encode("utf-16"),
        "no-header": b"obama.jpg,obama2.jpg,1\n",
        "header-only": b"path_a,path_b,same\n",
        "empty": b"",
        "blank-lines": b"\n\n\n",
        "short-row": b"path_a,path_b,same\nobama.jpg\n",
        "short-row-comma": b"path_a,path_b,same\nobama.jpg,\n",
        "empty-fields": b"path_a,path_b,same\n,,\n",
        "long-row": b"path_a,path_b,same\nobama.jpg,obama2.jpg,1,extra,more,fields\n",
        "same-yes": b"path_a,path_b,same\nobama.jpg,obama2.jpg,yes\n",
        "same-2": b"path_a,path_b,same\nobama.jpg,obama2.jpg,2\n",
        "same-minus1": b"path_a,path_b,same\nobama.jpg,obama2.jpg,-1\n",
        "same-nan": b"path_a,path_b,same\nobama.jpg,obama2.jpg,nan\n",
        "same-empty": b"path_a,path_b,same\nobama.jpg,obama2.jpg,\n",
        "same-float": b"path_a,path_b,same\nobama.jpg,obama2.jpg,0.5\n",
        "same-huge": b"path_a,path_b,same\nobama.jpg,obama2.jpg," + b"9" * 5000 + b"\n",
        "same-true": b"path_a,path_b,same\nobama.jpg,obama2.jpg,True\n",
        "unclosed-quote": b'path_a,path_b,same\n"obama.jpg,obama2.jpg,1\n',
        "quoted-newline": b'path_a,path_b,same\n"oba\nma.jpg",obama2.jpg,1\n',
        "nul-bytes": b"path_a,path_b,same\nobama.jpg\0,obama2.jpg,1\n",
        "crlf": good.replace("\n", "\r\n").encode(),
        "cr-only": good.replace("\n", "\r").encode(),
        "tabs": good.replace(",", "\t").encode(),
        "semicolons": good.replace(",", ";").encode(),
        "latin1-path": b"path_a,path_b,same\ncaf\xe9.jpg,obama2.jpg,1\n",
        "invalid-utf8": b"path_a,path_b,same\n\xff\xfe,\xfd,1\n",
        "missing-files": b"path_a,path_b,same\nnope.jpg,nada.jpg,1\n",
        "absolute-paths": b"path_a,path_b,same\n/etc/passwd,/etc/hostname,0\n",
        "dotdot-paths": b"path_a,path_b,same\n../../../../../../etc/passwd,obama.jpg,0\n",
        "directory-paths": b"path_a,path_b,same\n.,..,0\n",
        "dev-zero": b"path_a,path_b,same\n/dev/zero,obama.jpg,0\n",
        "same-file-twice": b"path_a,path_b,same\nobama.jpg,obama.jpg,1\n",
        "pairs-file-itself": b"path_a,path_b,same\npairs.csv,obama.jpg,0\n",
        "huge-line-1MB": b"path_a,path_b,same\n" + b"a" * (1 << 20) + b",obama.jpg,0\n",
        "huge-line-16MB-no-newline": b"path_a,path_b,same\n" + b"b" * (16 << 20),
        "huge-field-quoted": b'path_a,path_b,same\n"' + b"c" * 300_000 + b'",obama.jpg,0\n',
        "many-columns": b"path_a,path_b,same\n" + b",".join([b"x"] * 100_000) + b"\n",
        "header-reordered": b"same,path_b,path_a\n1,obama2.jpg,obama.jpg\n",
        "header-unknown": b"foo,bar,baz\nobama.jpg,obama2.jpg,1\n",
        "header-duplicate": b"path_a,path_a,same\nobama.jpg,obama2.jpg,1\n",
        "only-commas": b",,,,,,,,,\n" * 100,
        "formula-injection": b"path_a,path_b,same\n=cmd|' /C calc'!A0,obama.jpg,0\n",
        "bom-in-middle": b"path_a,path_b,same\n\xef\xbb\xbfobama.jpg,obama2.jpg,1\n",
    }
    for name, content in texts.items():
        yield _pairs_case(name, content)
    for k in range(30):
        size = rng.choice((1, 16, 256, 4096, 100_000))
        prefix = rng.choice((b"", b"path_a,path_b,same\n", b"\xef\xbb\xbf"))
        yield _pairs_case(f"binary-{k}-{size}", prefix + rng.randbytes(size))
    lines = good.splitlines(keepends=True)
    for k in range(30):
        # A good file with random single-byte damage.
        data = bytearray("".join(lines).encode())
        for _ in range(1 + k % 3):
            data[rng.randrange(len(data))] = rng.choice(b',"\n\r\0\xff;\\')
        yield _pairs_case(f"mutated-{k}", bytes(data))
    # Not a CSV file at all.
    yield Case("pairs", "pairs:missing-file", ("verify", "--pairs", "@@CASE@@/nope.csv", "--root", "@@FACES@@", "--json"))
    yield Case("pairs", "pairs:directory", ("verify", "--pairs", "@@CASE@@", "--root", "@@FACES@@", "--json"))
    yield Case("pairs", "pairs:root-missing", ("verify", "--pairs", "@@FACES@@/pairs.csv", "--root", "@@CASE@@/none", "--json"))
    yield Case("pairs", "pairs:root-is-file", ("verify", "--pairs", "@@FACES@@/pairs.csv", "--root", "@@FACES@@/obama.jpg", "--json"))
    yield Case("pairs", "pairs:bad-workers-0", ("verify", "--pairs", "@@FACES@@/pairs.csv", "--root", "@@FACES@@", "--workers", "0"))
    yield Case("pairs", "pairs:bad-workers-neg", ("verify", "--pairs", "@@FACES@@/pairs.csv", "--root", "@@FACES@@", "--workers", "-3"))
    for t in ("nan", "inf", "-1", "2", "1e999", "abc"):
        yield Case("pairs", f"pairs:threshold-{t}", ("verify", "--pairs", "@@FACES@@/pairs.csv", "--root", "@@FACES@@", "--workers", "1", "--threshold", t))


def _pairs_case(name: str, content: bytes) -> Case:
    return Case("pairs", f"pairs:{name}",
                ("verify", "--pairs", "@@CASE@@/pairs.csv", "--root", "@@FACES@@", "--json", "--workers", "1"),
                files=(("pairs.csv", content),), note="a bad pairs CSV", timeout=90.0)


# ---------------------------------------------------------------- configs

CONFIG_KEYS = {
    # key: kind (int, float, str, bool, path, enum, tuple3)
    "recognition.models_dir": "path", "recognition.model_set": "enum", "recognition.max_image_pixels": "int",
    "recognition.runtime.num_threads": "int", "recognition.runtime.delegate": "enum",
    "recognition.runtime.delegate_required": "bool", "recognition.runtime.gpu_delegate_library": "str",
    "recognition.detector.min_face_size": "float", "recognition.detector.scale_factor": "float",
    "recognition.detector.thresholds": "tuple3", "recognition.detector.max_side": "int",
    "recognition.embedder.flip_average": "bool",
    "gallery.path": "path", "gallery.dtype": "enum", "search.match_threshold": "float", "search.vote": "int",
    "camera.source": "str", "camera.frame_width": "int", "camera.frame_height": "int", "camera.folder_fps": "float",
    "door.device_id": "str", "door.device_name": "str", "door.detect_every": "int", "door.attempts_per_second": "float",
    "door.unknown_recheck": "float", "door.tracker.iou": "float", "door.tracker.gap": "float",
    "door.decision.unknown_threshold": "float", "door.decision.window": "int", "door.decision.min_agreeing": "int",
    "door.decision.min_unknown": "int", "door.decision.cooldown": "float", "door.decision.min_face_size": "float",
    "door.decision.min_sharpness": "float",
    "enrollment.samples": "int", "enrollment.timeout": "float", "enrollment.min_face_size": "float",
    "enrollment.min_sharpness": "float", "enrollment.max_turn": "float", "enrollment.max_similarity": "float",
    "button.pin": "int", "button.hold": "float", "light.pin": "int", "light.saved_seconds": "float",
    "mqtt.host": "str", "mqtt.port": "int", "mqtt.username": "str", "mqtt.password": "str", "mqtt.tls": "bool",
    "mqtt.ca_file": "path", "mqtt.topic_prefix": "str", "mqtt.discovery_prefix": "str", "mqtt.client_id": "str",
    "mqtt.keepalive": "int", "mqtt.queue_limit": "int", "mqtt.publish_face_image": "bool",
    "mqtt.reconnect_min_delay": "int", "mqtt.reconnect_max_delay": "int",
}

BAD_VALUES = {
    # TOML value literals that are the wrong type or out of any sensible range, per kind.
    "int": ('"12"', "1.5", "-1", "0", "9223372036854775807", "true", "[1]", "{a = 1}", "nan"),
    "float": ('"0.5"', "-1.0", "0.0", "nan", "inf", "-inf", "1e308", "true", "[0.5]"),
    "str": ("12", "true", "[\"a\"]", '""', '"\\u0000"', '"' + "x" * 10000 + '"', '"a/b/#/+"', '"\\n"'),
    "bool": ('"yes"', "1", "0", '"true"', "[true]"),
    "path": ("12", '""', '"\\u0000"', '"/dev/zero"', "[\"/tmp\"]"),
    "enum": ('"FLOAT16"', '"nope"', "1", '""', "[\"cpu\"]"),
    "tuple3": ("[0.5, 0.5]", "[0.5, 0.5, 0.5, 0.5]", "[-1.0, 0.5, 2.0]", '["a", "b", "c"]', "0.5", "[nan, nan, nan]"),
}


def _toml_line(key: str, value: str) -> str:
    section, _, leaf = key.rpartition(".")
    return f"[{section}]\n{leaf} = {value}\n"


def configs(seed: int) -> Iterator[Case]:
    rng = _rng(seed, "configs")
    validate = ("validate-config", "@@CASE@@/c.toml")
    for key, kind in CONFIG_KEYS.items():
        for k, value in enumerate(BAD_VALUES[kind]):
            yield Case("configs", f"validate:{key}={value[:24]}", validate,
                       files=(("c.toml", _toml_line(key, value).encode()),), timeout=30.0, note="bad type or range")
    raw: dict[str, bytes] = {
        "bom": b"\xef\xbb\xbf[door]\ndevice_id = \"x\"\n",
        "utf16": "[door]\ndevice_id = \"x\"\n".encode("utf-16"),
        "latin1": b"[door]\ndevice_name = \"caf\xe9\"\n",
        "empty": b"", "nul": b"\0" * 100, "binary": rng.randbytes(4096),
        "unknown-section": b"[nope]\na = 1\n", "unknown-key": b"[door]\nnope = 1\n",
        "unknown-top-key": b"nope = 1\n", "unknown-nested": b"[door.decision.extra]\na = 1\n",
        "section-is-value": b"door = 1\n", "section-is-array": b"[[door]]\ndevice_id = \"a\"\n",
        "duplicate-key": b"[door]\ndevice_id = \"a\"\ndevice_id = \"b\"\n",
        "duplicate-section": b"[door]\n[door]\n",
        "invalid-toml": b"[door\ndevice_id = \n", "unterminated-string": b"[door]\ndevice_id = \"abc\n",
        "env-unset": b"[mqtt]\nhost = \"h\"\npassword = \"${EDGE_HOSTILE_UNSET_VARIABLE}\"\n",
        "env-unset-in-number-key": b"[mqtt]\nport = \"${EDGE_HOSTILE_UNSET_VARIABLE}\"\n",
        "env-empty-name": b"[mqtt]\npassword = \"${}\"\n",
        "env-nested": b"[mqtt]\npassword = \"${A${B}}\"\n",
        "env-unclosed": b"[mqtt]\npassword = \"${HOME\"\n",
        "env-in-key": b"[mqtt]\n\"${HOME}\" = 1\n",
        "env-many": ("[mqtt]\npassword = \"" + "${HOME}" * 100_000 + "\"\n").encode(),
        "env-bad-name": b"[mqtt]\npassword = \"${1-2 3}\"\n",
        "deep-array": b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        "deep-inline-table": b"a = " + b"{b = " * 50_000 + b"1" + b"}" * 50_000 + b"\n",
        "deep-dotted-key": b"[" + b".".join([b"a"] * 50_000) + b"]\n",
        "huge-string-20MB": b"[door]\ndevice_name = \"" + b"x" * (20 << 20) + b"\"\n",
        "many-keys": b"[door]\n" + b"".join(b"k%d = 1\n" % i for i in range(100_000)),
        "control-chars": b"[door]\ndevice_id = \"a\x07b\"\n",
        "device-id-wildcards": b"[door]\ndevice_id = \"a/#/+\"\n",
        "device-id-empty": b"[door]\ndevice_id = \"\"\n",
        "topic-prefix-wildcard": b"[mqtt]\ntopic_prefix = \"#\"\n",
        "thresholds-unsorted": b"[recognition.detector]\nthresholds = [0.9, 0.1, 0.5]\n",
        "min-agreeing-above-window": b"[door.decision]\nwindow = 3\nmin_agreeing = 5\n",
        "unknown-above-match": b"[search]\nmatch_threshold = 0.2\n[door.decision]\nunknown_threshold = 0.9\n",
        "reconnect-min-above-max": b"[mqtt]\nreconnect_min_delay = 100\nreconnect_max_delay = 1\n",
        "port-65536": b"[mqtt]\nport = 65536\n", "port-0": b"[mqtt]\nport = 0\n",
        "datetime-value": b"[door]\ndevice_id = 1979-05-27T07:32:00Z\n",
    }
    for name, content in raw.items():
        yield Case("configs", f"validate:{name}", validate, files=(("c.toml", content),), timeout=30.0, note="malformed config")
    yield Case("configs", "validate:missing-file", validate, timeout=30.0)
    yield Case("configs", "validate:directory", ("validate-config", "@@CASE@@"), timeout=30.0)
    yield Case("configs", "validate:dev-zero", ("validate-config", "/dev/zero"), timeout=30.0)
    yield Case("configs", "validate:dev-null", ("validate-config", "/dev/null"), timeout=30.0)
    for k in range(20):
        data = bytearray(b"[door]\ndevice_id = \"front\"\n[search]\nmatch_threshold = 0.4\n[camera]\nfolder_fps = 10.0\n")
        for _ in range(1 + k % 3):
            data[rng.randrange(len(data))] = rng.randrange(256)
        yield Case("configs", f"validate:mutated-{k}", validate, files=(("c.toml", bytes(data)),), timeout=30.0)
    # `edge run` with a folder source, where a bad value would bite (or hang).
    run = ("run", "--config", "@@CASE@@/c.toml", "--source", "@@FRAMES@@", "--gallery", "@@GALLERY@@", "--exit-at-end")
    door_values = {
        "num-threads-1000": "[recognition.runtime]\nnum_threads = 1000\n",
        "num-threads-0": "[recognition.runtime]\nnum_threads = 0\n",
        "delegate-gpu": "[recognition.runtime]\ndelegate = \"gpu\"\n",
        "delegate-edgetpu-required": "[recognition.runtime]\ndelegate = \"edgetpu\"\ndelegate_required = true\n",
        "gpu-library-missing": "[recognition.runtime]\ndelegate = \"gpu\"\ngpu_delegate_library = \"/nonexistent.so\"\n",
        "gpu-library-not-so": "[recognition.runtime]\ndelegate = \"gpu\"\ngpu_delegate_library = \"/etc/passwd\"\n",
        "models-dir-missing": "[recognition]\nmodels_dir = \"/nonexistent\"\n",
        "models-dir-empty": "[recognition]\nmodels_dir = \"@@CASE@@\"\n",
        "models-dir-junk": "[recognition]\nmodels_dir = \"@@CASE@@/models\"\n",
        "min-face-size-1": "[recognition.detector]\nmin_face_size = 1\n",
        "min-face-size-tiny": "[recognition.detector]\nmin_face_size = 0.01\n",
        "min-face-size-huge": "[recognition.detector]\nmin_face_size = 100000\n",
        "scale-factor-0.99": "[recognition.detector]\nscale_factor = 0.99\n",
        "scale-factor-0.01": "[recognition.detector]\nscale_factor = 0.01\n",
        "max-side-1": "[recognition.detector]\nmax_side = 1\n",
        "max-side-huge": "[recognition.detector]\nmax_side = 100000\n",
        "thresholds-zero": "[recognition.detector]\nthresholds = [0.0, 0.0, 0.0]\n",
        "thresholds-one": "[recognition.detector]\nthresholds = [1.0, 1.0, 1.0]\n",
        "max-image-pixels-1": "[recognition]\nmax_image_pixels = 1\n",
        "folder-fps-tiny": "[camera]\nfolder_fps = 0.0001\n",
        "folder-fps-huge": "[camera]\nfolder_fps = 1e9\n",
        "frame-size-huge": "[camera]\nframe_width = 100000\nframe_height = 100000\n",
        "detect-every-huge": "[door]\ndetect_every = 1000000\n",
        "attempts-tiny": "[door]\nattempts_per_second = 0.000001\n",
        "attempts-huge": "[door]\nattempts_per_second = 1e9\n",
        "match-threshold-0": "[search]\nmatch_threshold = 0.0\n",
        "match-threshold-1": "[search]\nmatch_threshold = 1.0\n",
        "window-huge": "[door.decision]\nwindow = 100000000\n",
        "queue-limit-huge": "[mqtt]\nqueue_limit = 1000000000\n",
        "gallery-dtype-int8": "[gallery]\ndtype = \"int8\"\n",
        "mqtt-unreachable": "[mqtt]\nhost = \"127.0.0.1\"\nport = 9\nreconnect_min_delay = 1\nreconnect_max_delay = 1\n",
        "mqtt-tls-bad-ca": "[mqtt]\nhost = \"127.0.0.1\"\nport = 9\ntls = true\nca_file = \"/etc/passwd\"\n",
        "mqtt-tls-missing-ca": "[mqtt]\nhost = \"127.0.0.1\"\nport = 9\ntls = true\nca_file = \"/nonexistent.pem\"\n",
        "button-pin-99": "[button]\npin = 99\n",
        "light-pin-minus": "[light]\npin = -1\n",
        "source-in-config-missing": "[camera]\nsource = \"/nonexistent/folder\"\n",
    }
    for name, text in door_values.items():
        files = [("c.toml", text.encode())]
        if name == "models-dir-junk":
            for model in ("pnet", "rnet", "onet", "sface"):
                files.append((f"models/{model}.tflite", rng.randbytes(2048)))
            files.append(("models/manifest.json", b"{not json"))
        yield Case("configs", f"run:{name}", run, files=tuple(files), gallery=True, check="door", timeout=90.0,
                   note="edge run with an extreme or broken setting")
    # Bad usage of run itself.
    for name, argv in {
        "source-missing": ("run", "--source", "@@CASE@@/none", "--gallery", "@@GALLERY@@", "--exit-at-end"),
        "source-empty-folder": ("run", "--source", "@@CASE@@", "--gallery", "@@GALLERY@@", "--exit-at-end"),
        "source-is-text-file": ("run", "--source", "@@FACES@@/PROVENANCE.md", "--gallery", "@@GALLERY@@", "--exit-at-end"),
        "gallery-missing": ("run", "--source", "@@FRAMES@@", "--gallery", "@@CASE@@/none", "--exit-at-end"),
        "mqtt-url-junk": ("run", "--source", "@@FRAMES@@", "--gallery", "@@GALLERY@@", "--mqtt", "not a url", "--exit-at-end"),
        "mqtt-url-bad-port": ("run", "--source", "@@FRAMES@@", "--gallery", "@@GALLERY@@", "--mqtt", "mqtt://h:99999", "--exit-at-end"),
        "mqtt-url-scheme": ("run", "--source", "@@FRAMES@@", "--gallery", "@@GALLERY@@", "--mqtt", "http://h", "--exit-at-end"),
        "device-id-wildcard": ("run", "--source", "@@FRAMES@@", "--gallery", "@@GALLERY@@", "--device-id", "a/#", "--exit-at-end"),
        "device-id-newline": ("run", "--source", "@@FRAMES@@", "--gallery", "@@GALLERY@@", "--device-id", "a\nb", "--exit-at-end"),
        "device-id-empty": ("run", "--source", "@@FRAMES@@", "--gallery", "@@GALLERY@@", "--device-id", "", "--exit-at-end"),
        "source-negative-index": ("run", "--source", "-5", "--gallery", "@@GALLERY@@", "--exit-at-end"),
        "source-index-99": ("run", "--source", "99", "--gallery", "@@GALLERY@@", "--exit-at-end"),
    }.items():
        yield Case("configs", f"run:{name}", argv, gallery=True, check="door", timeout=90.0, note="bad edge run usage")


# ---------------------------------------------------------------- gallery files

def _damages(seed: int) -> Iterator[tuple[str, tuple, bool, bool]]:
    """(name, damage ops, obama_ok, rows_kept) for the base gallery."""
    rng = _rng(seed, "gallery")
    rows_end = HEADER + COMMITTED_ROWS * ROW_BYTES
    header_offsets = sorted({0, 7, 8, 9, 10, 11, 12, 13, 16, 31, 32, 36, 37, 38, 60, 4092, 4095} | {rng.randrange(0, HEADER) for _ in range(13)})
    for off in header_offsets:
        # The header is not a row: naming obama is right if the store still reads his rows (the CRC should refuse).
        yield f"rows-header-flip-{off}", (("flip", "rows-0.bin", off, rng.randrange(8)),), True, False
    # One of obama's two rows damaged: the store must leave it out; naming obama from the other, intact row is right.
    for k in range(20):
        off = rng.randrange(HEADER, rows_end)
        yield f"rows-committed-flip-{off}", (("flip", "rows-0.bin", off, rng.randrange(8)),), True, False
    for off in (HEADER, HEADER + 3, HEADER + ROW_BYTES - 1, HEADER + ROW_BYTES):
        yield f"rows-committed-sign-flip-{off}", (("flip", "rows-0.bin", off + (3 - off % 4), 7),), True, False
    # Both of his rows damaged: naming obama at all is a wrong name from damaged data.
    for k in range(12):
        a, b = rng.randrange(HEADER, HEADER + ROW_BYTES), rng.randrange(HEADER + ROW_BYTES, rows_end)
        yield f"rows-both-flip-{a}-{b}", (("flip", "rows-0.bin", a, rng.randrange(8)), ("flip", "rows-0.bin", b, rng.randrange(8))), False, False
    yield "rows-committed-zeroed", (("write", "rows-0.bin", HEADER, b"\0" * (rows_end - HEADER)),), False, False
    yield "rows-committed-nan", (("write", "rows-0.bin", HEADER, struct.pack("<f", float("nan")) * 256),), False, False
    yield "rows-committed-1e30", (("write", "rows-0.bin", HEADER, struct.pack("<f", 1e30) * 256),), False, False
    for k in range(8):
        off = rng.randrange(rows_end, 65536)
        yield f"rows-reserved-flip-{off}", (("flip", "rows-0.bin", off, rng.randrange(8)),), True, True
    yield "rows-reserved-junk", (("write", "rows-0.bin", rows_end, rng.randbytes(4096)),), True, True
    for size in (0, 1, 100, 4095, 4096, 4097, HEADER + ROW_BYTES, rows_end - 1):
        yield f"rows-truncated-{size}", (("truncate", "rows-0.bin", size),), False, False
    yield f"rows-truncated-{rows_end}", (("truncate", "rows-0.bin", rows_end),), True, True
    yield "rows-extended-1GB-sparse", (("truncate", "rows-0.bin", 1 << 30),), True, True
    # SQLite pages (4096 bytes each): overwrite page 2..n with junk or zeros, flip bits, truncate, break the header.
    # Obama's vectors are untouched: naming obama is right when the metadata still says so; any other name is wrong.
    for page in range(2, 8):
        yield f"sqlite-page{page}-junk", (("write", "gallery.sqlite", (page - 1) * 4096, rng.randbytes(4096)),), True, False
        yield f"sqlite-page{page}-zeros", (("write", "gallery.sqlite", (page - 1) * 4096, b"\0" * 4096),), True, False
    for k in range(12):
        off = rng.randrange(0, 7 * 4096)
        yield f"sqlite-flip-{off}", (("flip", "gallery.sqlite", off, rng.randrange(8)),), True, False
    for off, data in ((0, b"NOT SQLITE FORMAT"), (16, b"\x00\x01"), (18, b"\x07\x07"), (28, b"\xff\xff\xff\xff"), (96, b"\0\0\0\0")):
        yield f"sqlite-header-{off}", (("write", "gallery.sqlite", off, data),), True, False
    for size in (0, 100, 4096, 8192, 20000):
        yield f"sqlite-truncated-{size}", (("truncate", "gallery.sqlite", size),), True, False
    yield "sqlite-hot-journal-junk", (("add", "gallery.sqlite-journal", rng.randbytes(8192)),), True, True
    yield "sqlite-wal-junk", (("add", "gallery.sqlite-wal", rng.randbytes(8192)),), True, True
    yield "sqlite-shm-junk", (("add", "gallery.sqlite-shm", rng.randbytes(32768)),), True, True
    # Missing and extra files.
    yield "missing-rows", (("delete", "rows-0.bin"),), False, False
    yield "missing-sqlite", (("delete", "gallery.sqlite"),), True, False
    yield "missing-lock", (("delete", "writer.lock"),), True, True
    yield "lock-junk", (("add", "writer.lock", b"\xff\xfe junk \0\n" * 10),), True, True
    yield "lock-other-pid", (("add", "writer.lock", b"1\n"),), True, True
    yield "extra-rows-1-junk", (("add", "rows-1.bin", rng.randbytes(8192)),), True, True
    yield "extra-rows-tmp", (("add", "rows-0.bin.tmp", rng.randbytes(8192)),), True, True
    yield "extra-stray-files", (("add", "README", b"hello"), ("add", "core", rng.randbytes(1000))), True, True
    yield "rows-swapped-for-dir", (("delete", "rows-0.bin"), ("add", "rows-0.bin/", b"")), False, False


def gallery(seed: int) -> Iterator[Case]:
    probes = ("@@FACES@@/biden.jpg", "@@FACES@@/obama3.jpg")
    for k, (name, ops, obama_ok, rows_kept) in enumerate(_damages(seed)):
        common = dict(gallery=True, damage=ops, obama_ok=obama_ok, rows_kept=rows_kept)
        yield Case("gallery", f"list:{name}", ("gallery", "list", "@@GALLERY@@", "--json"), timeout=30.0, **common)
        yield Case("gallery", f"check:{name}", ("gallery", "check", "@@GALLERY@@", "--json"), timeout=30.0, **common)
        yield Case("gallery", f"identify:{name}", ("identify", *probes, "--gallery", "@@GALLERY@@", "--json"),
                   check="identify", timeout=60.0, **common)
        if k % 2 == 0 or not obama_ok:
            yield Case("gallery", f"door-biden:{name}",
                       ("run", "--source", "@@BIDEN@@", "--gallery", "@@GALLERY@@", "--exit-at-end"),
                       check="door", stranger=True, timeout=90.0, **common)
        if k % 3 == 0:
            yield Case("gallery", f"door-obama:{name}",
                       ("run", "--source", "@@OBAMA@@", "--gallery", "@@GALLERY@@", "--exit-at-end"),
                       check="door", timeout=90.0, **common)
        if rows_kept and k % 2 == 1:
            yield Case("gallery", f"add:{name}", ("gallery", "add", "@@FACES@@", "--name", "obama", "--gallery", "@@GALLERY@@", "--largest", "--workers", "1"),
                       timeout=90.0, note="add to a gallery with unrelated damage", **common)
    # The gallery path itself is wrong.
    for name, argv, files in (
        ("path-missing", ("gallery", "list", "@@CASE@@/none"), ()),
        ("path-is-file", ("gallery", "list", "@@CASE@@/file"), (("file", b"x"),)),
        ("path-is-empty-dir", ("gallery", "check", "@@CASE@@/empty"), (("empty", ("dir",)),)),
        ("path-is-dev-null", ("gallery", "list", "/dev/null"), ()),
        ("identify-empty-dir", ("identify", "@@FACES@@/obama3.jpg", "--gallery", "@@CASE@@/empty"), (("empty", ("dir",)),)),
        ("build-over-existing", ("gallery", "build", "@@FACES@@", "--gallery", "@@GALLERY@@", "--workers", "1"), ()),
        ("remove-unknown", ("gallery", "remove", "nobody", "--gallery", "@@GALLERY@@"), ()),
        ("remove-newline-name", ("gallery", "remove", "obama\n", "--gallery", "@@GALLERY@@"), ()),
        ("rename-to-empty", ("gallery", "rename", "obama", "", "--gallery", "@@GALLERY@@"), ()),
        ("rename-to-control", ("gallery", "rename", "obama", "\x1b[2J", "--gallery", "@@GALLERY@@"), ()),
        ("rename-to-long", ("gallery", "rename", "obama", "x" * 100_000, "--gallery", "@@GALLERY@@"), ()),
        ("export-to-dir", ("gallery", "export", "@@CASE@@", "--gallery", "@@GALLERY@@"), ()),
        ("export-to-dev-full", ("gallery", "export", "/dev/full", "--gallery", "@@GALLERY@@"), ()),
    ):
        yield Case("gallery", f"usage:{name}", argv, files=files, gallery=True, timeout=60.0,
                   rows_kept=name.startswith(("remove", "rename", "export", "build")), note="bad gallery usage")


# ---------------------------------------------------------------- import files

def _info(name: str, method: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    """A member with a fixed date (writestr with a bare name stamps the current time: not deterministic)."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = method
    return info


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as z:
        for name, data in members.items():
            z.writestr(_info(name, method), data)
    return buffer.getvalue()


def _npy(array) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


MODEL_ID = "sface_float16.tflite:9c750b4e5553868f09b50aa253908d304355c807b36899cb57fa234b421e6b7a"


def _meta(rows: list, **over) -> bytes:
    meta = {"format": "edge-gallery-export", "version": 1, "model_id": MODEL_ID, "dim": 128, "rows": rows}
    meta.update(over)
    return json.dumps(meta).encode()


def _row(identity, **over) -> dict:
    row = {"identity": identity, "source": "x.jpg", "added": 1.0, "quality": 1.0}
    row.update(over)
    return row


@lru_cache(maxsize=None)
def _deflate_bomb_zip(size: int) -> bytes:
    """A zip whose embeddings.npy inflates to ``size`` bytes (an npy header claiming that many float32 rows)."""
    import numpy as np

    rows = (size - 128) // (128 * 4)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows, 128)})
    info = _info("embeddings.npy")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(_info("gallery.json"), _meta([_row("mallory")] * 1))
        with z.open(info, "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zero = b"\0" * (1 << 22)
            left = rows * 128 * 4
            while left > 0:
                n = min(left, len(zero))
                member.write(zero[:n])
                left -= n
    return buffer.getvalue()


def _patched_sizes(data: bytes, declared: int) -> bytes:
    """A zip with every declared uncompressed size replaced by ``declared`` (a lying header)."""
    out = bytearray(data)
    # Local file headers keep the uncompressed size at +22, central directory entries at +24.
    for signature, field in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = out.find(signature)
        while i >= 0:
            struct.pack_into("<I", out, i + field, declared)
            i = out.find(signature, i + 4)
    return bytes(out)


def imports(seed: int) -> Iterator[Case]:
    import numpy as np

    rng = _rng(seed, "imports")
    unit = rng.random
    vec = np.array([[unit() - 0.5 for _ in range(128)]], np.float32)
    vec /= np.linalg.norm(vec)
    good_npy, good_meta = _npy(vec), _meta([_row("mallory")])
    zips: dict[str, bytes] = {
        "not-a-zip": b"hello, not a zip", "empty-file": b"", "random-bytes": rng.randbytes(10000),
        "empty-zip": _zip({}),
        "only-meta": _zip({"gallery.json": good_meta}), "only-npy": _zip({"embeddings.npy": good_npy}),
        "meta-not-json": _zip({"gallery.json": b"{nope", "embeddings.npy": good_npy}),
        "meta-not-utf8": _zip({"gallery.json": b"\xff\xfe{}", "embeddings.npy": good_npy}),
        "meta-is-list": _zip({"gallery.json": b"[]", "embeddings.npy": good_npy}),
        "meta-is-null": _zip({"gallery.json": b"null", "embeddings.npy": good_npy}),
        "meta-is-number": _zip({"gallery.json": b"12", "embeddings.npy": good_npy}),
        "meta-deep-nesting": _zip({"gallery.json": b"[" * 100_000 + b"]" * 100_000, "embeddings.npy": good_npy}),
        "meta-wrong-format": _zip({"gallery.json": _meta([_row("m")], format="zip"), "embeddings.npy": good_npy}),
        "meta-version-99": _zip({"gallery.json": _meta([_row("m")], version=99), "embeddings.npy": good_npy}),
        "meta-version-string": _zip({"gallery.json": _meta([_row("m")], version="1"), "embeddings.npy": good_npy}),
        "meta-other-model": _zip({"gallery.json": _meta([_row("m")], model_id="other:123"), "embeddings.npy": good_npy}),
        "meta-model-id-int": _zip({"gallery.json": _meta([_row("m")], model_id=5), "embeddings.npy": good_npy}),
        "meta-dim-wrong": _zip({"gallery.json": _meta([_row("m")], dim=64), "embeddings.npy": good_npy}),
        "meta-dim-string": _zip({"gallery.json": _meta([_row("m")], dim="128"), "embeddings.npy": good_npy}),
        "meta-rows-missing": _zip({"gallery.json": json.dumps({"format": "edge-gallery-export", "version": 1, "model_id": MODEL_ID, "dim": 128}).encode(), "embeddings.npy": good_npy}),
        "meta-rows-dict": _zip({"gallery.json": _meta({"a": 1}), "embeddings.npy": good_npy}),
        "meta-rows-strings": _zip({"gallery.json": _meta(["mallory"]), "embeddings.npy": good_npy}),
        "meta-rows-more": _zip({"gallery.json": _meta([_row("a"), _row("b")]), "embeddings.npy": good_npy}),
        "meta-rows-fewer": _zip({"gallery.json": _meta([]), "embeddings.npy": good_npy}),
        "row-identity-missing": _zip({"gallery.json": _meta([{"source": "x"}]), "embeddings.npy": good_npy}),
        "row-identity-int": _zip({"gallery.json": _meta([_row(5)]), "embeddings.npy": good_npy}),
        "row-identity-null": _zip({"gallery.json": _meta([_row(None)]), "embeddings.npy": good_npy}),
        "row-identity-list": _zip({"gallery.json": _meta([_row(["a"])]), "embeddings.npy": good_npy}),
        "row-identity-empty": _zip({"gallery.json": _meta([_row("")]), "embeddings.npy": good_npy}),
        "row-identity-newline": _zip({"gallery.json": _meta([_row("mal\nlory")]), "embeddings.npy": good_npy}),
        "row-identity-dotdot": _zip({"gallery.json": _meta([_row("../../etc/passwd")]), "embeddings.npy": good_npy}),
        "row-identity-slash": _zip({"gallery.json": _meta([_row("a/b")]), "embeddings.npy": good_npy}),
        "row-identity-nul": _zip({"gallery.json": _meta([_row("obama\u0000")]), "embeddings.npy": good_npy}),
        "row-identity-escape": _zip({"gallery.json": _meta([_row("\x1b[2J")]), "embeddings.npy": good_npy}),
        "row-identity-long": _zip({"gallery.json": _meta([_row("x" * 1_000_000)]), "embeddings.npy": good_npy}),
        "row-identity-surrogate": _zip({"gallery.json": b'{"format": "edge-gallery-export", "version": 1, "model_id": "' + MODEL_ID.encode() + b'", "dim": 128, "rows": [{"identity": "\\ud800", "source": "x"}]}', "embeddings.npy": good_npy}),
        "row-identity-obama-nfd": _zip({"gallery.json": _meta([_row("obam\u0061\u0301")]), "embeddings.npy": good_npy}),
        "row-added-string": _zip({"gallery.json": _meta([_row("m", added="yesterday")]), "embeddings.npy": good_npy}),
        "row-added-nan": _zip({"gallery.json": _meta([_row("m", added=float("nan"))]), "embeddings.npy": good_npy}),
        "row-quality-huge": _zip({"gallery.json": _meta([_row("m", quality=1e308)]), "embeddings.npy": good_npy}),
        "row-source-nonstring": _zip({"gallery.json": _meta([_row("m", source={"a": 1})]), "embeddings.npy": good_npy}),
        "npy-not-npy": _zip({"gallery.json": good_meta, "embeddings.npy": b"not npy"}),
        "npy-float64": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec.astype(np.float64))}),
        "npy-float16": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec.astype(np.float16))}),
        "npy-int8": _zip({"gallery.json": good_meta, "embeddings.npy": _npy((vec * 100).astype(np.int8))}),
        "npy-complex": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec.astype(np.complex64))}),
        "npy-big-endian": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec.astype(">f4"))}),
        "npy-object-pickle": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(np.array([[None] * 128], dtype=object))}),
        "npy-structured": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(np.zeros(1, dtype=[("a", "<f4", (128,))]))}),
        "npy-1d": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec[0])}),
        "npy-3d": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec[None])}),
        "npy-dim-127": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec[:, :127])}),
        "npy-dim-0": _zip({"gallery.json": _meta([]), "embeddings.npy": _npy(np.zeros((0, 128), np.float32))}),
        "npy-scalar": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(np.float32(1.0))}),
        "npy-fortran": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(np.asfortranarray(np.repeat(vec, 1, 0)))}),
        "npy-nan": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(np.full((1, 128), np.nan, np.float32))}),
        "npy-inf": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(np.full((1, 128), np.inf, np.float32))}),
        "npy-zero-vector": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(np.zeros((1, 128), np.float32))}),
        "npy-not-unit": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec * 1000)}),
        "npy-subnormal": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(np.full((1, 128), 1e-45, np.float32))}),
        "npy-header-huge-shape": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec)[:10] + b"\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 128), }" + b" " * 41 + b"\n" + vec.tobytes()}),
        "npy-truncated-data": _zip({"gallery.json": good_meta, "embeddings.npy": _npy(vec)[:-100]}),
        "zip-truncated": _zip({"gallery.json": good_meta, "embeddings.npy": good_npy})[:-30],
        "zip-truncated-half": _zip({"gallery.json": good_meta, "embeddings.npy": good_npy})[:300],
        "zip-stored": _zip({"gallery.json": good_meta, "embeddings.npy": good_npy}, zipfile.ZIP_STORED),
        "zip-bzip2": _zip({"gallery.json": good_meta, "embeddings.npy": good_npy}, zipfile.ZIP_BZIP2),
        "zip-lzma": _zip({"gallery.json": good_meta, "embeddings.npy": good_npy}, zipfile.ZIP_LZMA),
        "zip-traversal-member": _zip({"../gallery.json": good_meta, "../../embeddings.npy": good_npy}),
        "zip-duplicate-members": _zip({"gallery.json": good_meta, "embeddings.npy": good_npy}) ,
        "zip-nested": _zip({"inner.zip": _zip({"gallery.json": good_meta, "embeddings.npy": good_npy})}),
        "zip-declared-4GB": _patched_sizes(_zip({"gallery.json": good_meta, "embeddings.npy": good_npy}), 0xFFFFFFF0),
        "zip-declared-0": _patched_sizes(_zip({"gallery.json": good_meta, "embeddings.npy": good_npy}), 0),
        "zip-bomb-2GB": _deflate_bomb_zip(2 << 30),
        "zip-bomb-600MB": _deflate_bomb_zip(600 << 20),
    }
    # Duplicate member names (zipfile warns but writes them).
    buffer = io.BytesIO()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr(_info("gallery.json"), good_meta)
            z.writestr(_info("embeddings.npy"), good_npy)
            z.writestr(_info("gallery.json"), _meta([_row("a"), _row("b"), _row("c")]))
    zips["zip-duplicate-members"] = buffer.getvalue()
    # Encrypted flag and an unknown compression method on the members.
    plain = bytearray(_zip({"gallery.json": good_meta, "embeddings.npy": good_npy}, zipfile.ZIP_STORED))
    encrypted, method99 = bytearray(plain), bytearray(plain)
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        i = 0
        while (i := plain.find(sig, i)) >= 0:
            struct.pack_into("<H", encrypted, i + flag_at, 1)
            struct.pack_into("<H", method99, i + method_at, 99)
            i += 4
    zips["zip-encrypted-flag"], zips["zip-method-99"] = bytes(encrypted), bytes(method99)
    for k in range(20):
        data = bytearray(_zip({"gallery.json": good_meta, "embeddings.npy": good_npy}))
        for _ in range(1 + k % 3):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        zips[f"zip-bitflip-{k}"] = bytes(data)
    for name, data in zips.items():
        yield Case("imports", f"import:{name}", ("gallery", "import", "@@CASE@@/in.zip", "--gallery", "@@GALLERY@@", "--json"),
                   files=(("in.zip", data),), gallery=True, rows_kept=True, timeout=60.0, note="malformed import file")
    yield Case("imports", "import:missing-file", ("gallery", "import", "@@CASE@@/none.zip", "--gallery", "@@GALLERY@@"),
               gallery=True, rows_kept=True, timeout=60.0)
    yield Case("imports", "import:directory", ("gallery", "import", "@@CASE@@", "--gallery", "@@GALLERY@@"),
               gallery=True, rows_kept=True, timeout=60.0)
    yield Case("imports", "import:dev-zero", ("gallery", "import", "/dev/zero", "--gallery", "@@GALLERY@@"),
               gallery=True, rows_kept=True, timeout=60.0)
    yield Case("imports", "import:own-rows-file", ("gallery", "import", "@@GALLERY@@/rows-0.bin", "--gallery", "@@GALLERY@@"),
               gallery=True, rows_kept=True, timeout=60.0)


# ---------------------------------------------------------------- MQTT commands

def mqtt(seed: int) -> Iterator[Case]:
    rng = _rng(seed, "mqtt")
    subtopics = ("enroll", "enroll_cancel", "remove", "reload", "set_name")
    payloads: dict[str, bytes] = {
        "junk": b"\x00\x01\x02junk", "non-utf8": b"\xff\xfe\xfd", "huge-64KB": b"a" * 65536, "huge-1MB": b"{" * (1 << 20),
        "json-list": b"[]", "json-string": b'"obama"', "json-number": b"12", "json-null": b"null", "json-true": b"true",
        "name-int": b'{"name": 1}', "name-null": b'{"name": null}', "name-list": b'{"name": ["a"]}',
        "name-object": b'{"name": {"a": 1}}', "name-empty": b'{"name": ""}', "name-spaces": b'{"name": "   "}',
        "unknown-field": b'{"name": "mallory", "admin": true}', "only-unknown": b'{"x": 1}',
        "name-newline": b'{"name": "obama\\n"}', "name-nul": b'{"name": "obama\\u0000"}', "name-escape": b'{"name": "\\u001b[2J"}',
        "name-bell": b'{"name": "ob\\u0007ama"}', "name-rtl": b'{"name": "\\u202eamabo"}', "name-zero-width": b'{"name": "obama\\u200b"}',
        "name-surrogate": b'{"name": "\\ud800"}', "name-long": b'{"name": "' + b"x" * 4000 + b'"}',
        "name-dotdot": b'{"name": "../../etc"}', "name-slash": b'{"name": "a/b"}', "name-wildcard": b'{"name": "#"}',
        "deep-nesting": b"[" * 3000 + b"]" * 3000, "duplicate-keys": b'{"name": "a", "name": "obama\\n"}',
        "nan-literal": b'{"name": NaN}', "trailing-junk": b'{"name": "a"} x', "bom": b'\xef\xbb\xbf{"name": "a"}',
        "utf16": '{"name": "a"}'.encode("utf-16"), "press-lower": b"press", "press-spaces": b" PRESS ",
    }
    cases = []
    for sub in subtopics:
        for name, payload in payloads.items():
            cases.append((f"command/{sub}:{name}", (f"command/{sub}", payload, False)))
    for k in range(20):
        cases.append((f"command/{('enroll', 'remove', 'set_name')[k % 3]}:random-{k}",
                      (f"command/{('enroll', 'remove', 'set_name')[k % 3]}", rng.randbytes(rng.choice((1, 10, 100, 5000))), False)))
    for topic in ("command/unknown", "command/enroll/extra", "command/", "command", "command/REMOVE", "command/remove "):
        cases.append((f"{topic}:obama", (topic, b'{"name": "obama"}', False)))
    # Retained commands: valid-looking ones too; the door must ignore them (a retained command is replayed at every reconnect).
    for sub, payload in (("remove", b'{"name": "obama"}'), ("enroll", b'{"name": "mallory"}'), ("enroll", b"PRESS"),
                         ("set_name", b"mallory"), ("reload", b"PRESS"), ("remove", b"junk")):
        # (an empty retained payload would only clear the topic: not a command)
        cases.append((f"retained:command/{sub}:{payload[:20].decode(errors='replace') or 'empty'}", (f"command/{sub}", payload, True)))
    for name, spec in cases:
        yield Case("mqtt", f"mqtt:{name}", mqtt=spec, timeout=10.0, note="a hostile MQTT command")


GENERATORS = {"images": images, "pairs": pairs, "configs": configs, "gallery": gallery, "imports": imports, "mqtt": mqtt}


BOMB_WORDS = ("bomb", "huge", "dev-zero", "zero.jpg", "many-", "deep-", "1MB", "16MB", "20MB", "30000", "65535",
              "2^31", "declared-4GB", "12000", "64KB")
# Not a bomb: "rows-extended-1GB-sparse" (a rows file grown by a sparse GB past its committed rows).
# It is mapped, never read, and its commands peak at their normal cost (identify 552 MiB against 545
# on the intact gallery, gallery add 659 against 672), which is above 500 MiB with or without it.


def _is_bomb(case: Case) -> bool:
    return any(word.lower() in case.name.lower() for word in BOMB_WORDS)


def all_cases(seed: int = 10, families: tuple[str, ...] = FAMILIES) -> list[Case]:
    """Every case of the given families, in a stable order; names are unique."""
    cases = [case for family in families for case in GENERATORS[family](seed)]
    cases = [Case(**{**c.__dict__, "bomb": True}) if _is_bomb(c) else c for c in cases]
    seen: dict[str, int] = {}
    unique = []
    for case in cases:
        n = seen.get(case.name, 0)
        seen[case.name] = n + 1
        unique.append(case if n == 0 else Case(**{**case.__dict__, "name": f"{case.name}#{n}"}))
    return unique


def subset(cases: list[Case], per_family: dict[str, int], seed: int = 10) -> list[Case]:
    """A deterministic sample: ``per_family[f]`` cases of family f, spread over its generators."""
    out = []
    for family, n in per_family.items():
        members = [c for c in cases if c.family == family]
        if not members or n <= 0:
            continue
        step = max(1, len(members) // n)
        out.extend(members[::step][:n])
    return out
