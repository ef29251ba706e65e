"""Real images made with Pillow for the media tests, and hand-built headers for what Pillow will not make."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encoded(image: Image.Image, format: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


def halves(width: int, height: int, left: tuple[int, int, int] = (255, 0, 0),
           right: tuple[int, int, int] = (0, 0, 255)) -> Image.Image:
    """Left half one colour, right half another: which way up it is shows."""
    image = Image.new("RGB", (width, height), right)
    image.paste(left, (0, 0, width // 2, height))
    return image


def exif(orientation: int = 1, maker: str = "SecretCam GPS 51.5N") -> Image.Exif:
    tags = Image.Exif()
    tags[0x0112] = orientation
    tags[0x010F] = maker  # Make: stands for anything personal a camera writes
    return tags


def rotated_jpeg() -> bytes:
    """Stored 400 wide and 200 high, red on the left; EXIF orientation 6 says: turn 90° clockwise to show it, so
    it shows 200 wide and 400 high with red on top."""
    return encoded(halves(400, 200), "JPEG", quality=95, exif=exif(6))


def png_with_text() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "SecretCam GPS 51.5N")
    return encoded(halves(300, 200), "PNG", pnginfo=info, exif=exif(1))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width × height (8-bit greyscale) and carries a few kilobytes of zeros: what a
    decompression bomb looks like before it is decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 100_000, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def noise(width: int, height: int, seed: int = 1) -> Image.Image:
    """Pixels that do not compress: a truncated file of it lacks most of them."""
    import random

    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))
