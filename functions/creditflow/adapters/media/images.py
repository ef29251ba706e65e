"""Image checks and derivatives with Pillow: sniff the real type, refuse bombs undecoded, thumbnail, strip, shrink.

Every entry point opens the bytes the same way (`_open`): Pillow reads the header only, from the bytes themselves
(never a declared type or a name), restricted to the allowed formats; the pixel count the header declares is checked
before anything is decoded, so a 20000 × 20000 PNG of a few kilobytes is refused in microseconds. What is written
out carries no EXIF, XMP, comments or text chunks, and is upright (EXIF orientation applied); an ICC colour profile
is kept, since it is colour, not personal data, and dropping it would shift the colours of wide-gamut photos."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from PIL import Image, ImageOps, UnidentifiedImageError

from ...domain.images import ImageTooLarge, InvalidImage
from ...domain.media import ImageFacts, ImageLimits
from .decode_slots import LARGE_PIXELS, DecodeSlots

ORIENTATION = 0x0112
SAVE_AS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WEBP", "GIF": "GIF"}  # strip keeps the format (a GIF its first
# frame, palette as it was); downscale makes a GIF's first frame a PNG (resampled, it is no longer a palette image)
METADATA = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "icc_profile", "photoshop", "iptc")


LARGE_AT_ONCE = DecodeSlots(2)  # large images decoded at once in this process, one of them a caller's


@contextmanager
def _open(data: bytes, limits: ImageLimits, owner: str | None = None, refuse: bool = False,
          pixels: bool = True) -> Iterator[Image.Image]:
    """The image, header read and checked, nothing decoded yet; a large one whose `pixels` are to be read waits for
    its turn among the large ones being read (six 49-megapixel uploads at once took 2.7 GB), one at a time of the
    caller named `owner` (see DecodeSlots.held for `refuse`). A look at the header alone takes no turn."""
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        raise InvalidImage("no image bytes")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"the image is {len(data)} bytes; at most {limits.max_bytes} are accepted",
                            size=len(data), limit=limits.max_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's own guard, as an error
        try:
            image = Image.open(io.BytesIO(data), formats=sorted(limits.formats))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:  # said in our words
            raise ImageTooLarge(f"the image declares more pixels than the {limits.max_pixels:,} accepted",
                                limit=limits.max_pixels) from error
        except UnidentifiedImageError as error:
            raise InvalidImage(f"not an image of an accepted format ({', '.join(sorted(limits.formats))})") from error
        except (OSError, ValueError, SyntaxError) as error:  # a header Pillow recognises but cannot parse
            raise InvalidImage(f"a damaged image header: {error}") from error
    with image:
        if _format(image) not in limits.formats:  # a kind Pillow opened under an accepted format's plugin
            raise InvalidImage(f"not an image of an accepted format ({', '.join(sorted(limits.formats))})")
        width, height = image.size
        if width < 1 or height < 1 or width * height > limits.max_pixels:
            raise ImageTooLarge(f"the image declares {width}x{height} pixels; at most {limits.max_pixels:,} pixels "
                                "are accepted", width=width, height=height, limit=limits.max_pixels)
        if max(width, height) > limits.max_side:
            raise ImageTooLarge(f"the image declares {width}x{height} pixels; a side may be at most "
                                f"{limits.max_side:,} pixels", width=width, height=height, limit=limits.max_side)
        if width * height <= LARGE_PIXELS or not pixels:
            yield image
            return
        with LARGE_AT_ONCE.held(owner, refuse):
            yield image


def _format(image: Image.Image) -> str:
    """The format the bytes are, by Pillow's name: a multi-picture JPEG (MPO: a camera's JPEG with more pictures
    after it, which Pillow's JPEG plugin opens as MPO) is the JPEG its first picture is, and is kept as one."""
    return "JPEG" if image.format == "MPO" else str(image.format)


@contextmanager
def _decoding(what: str) -> Iterator[None]:
    """Decoding errors (truncated or corrupt data) as InvalidImage."""
    try:
        yield
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise InvalidImage(f"the image cannot be decoded ({what}): {error}") from error


KEPT = ("icc_profile", "transparency")  # colour, not metadata
SHRINKABLE = ("RGB", "RGBA", "L", "LA", "CMYK")  # modes resampled as they are; others become RGB(A) first
TURNS = {2: (Image.Transpose.FLIP_LEFT_RIGHT,), 3: (Image.Transpose.ROTATE_180,),
         4: (Image.Transpose.FLIP_TOP_BOTTOM,), 5: (Image.Transpose.TRANSPOSE,), 6: (Image.Transpose.ROTATE_270,),
         7: (Image.Transpose.TRANSVERSE,), 8: (Image.Transpose.ROTATE_90,)}  # as ImageOps.exif_transpose


def _bare(image: Image.Image) -> Image.Image:
    image.info = {key: image.info[key] for key in KEPT if key in image.info}
    return image


def _upright(image: Image.Image) -> Image.Image:
    """The decoded image turned as its EXIF orientation says, without EXIF or other metadata in `info`."""
    kept: dict[str | tuple[int, int], Any] = {key: image.info[key] for key in KEPT if key in image.info}
    turned = ImageOps.exif_transpose(image)
    turned.info = kept
    return turned


def _turned(image: Image.Image, orientation: int) -> Image.Image:
    """Upright, for an EXIF orientation read before (the image itself when there is nothing to turn)."""
    for turn in TURNS.get(orientation, ()):
        image = image.transpose(turn)
    return image


def _orientation(image: Image.Image) -> int:
    return _orientation_in(image.getexif())


def _orientation_in(exif: Image.Exif) -> int:
    value = exif.get(ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _rgb(image: Image.Image) -> Image.Image:
    """A mode WebP and JPEG take: RGBA where there is transparency (WebP), else RGB."""
    transparent = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    wanted = "RGBA" if transparent else "RGB"
    return image if image.mode == wanted else image.convert(wanted)


def _save(image: Image.Image, format: str, **options: object) -> bytes:
    out = io.BytesIO()
    icc = image.info.get("icc_profile")
    if icc:
        options["icc_profile"] = icc
    if format == "JPEG":
        image = image.convert("RGB") if image.mode not in ("RGB", "L", "CMYK") else image
        options.setdefault("quality", 90)
    elif format == "WEBP":
        image = _rgb(image)
    image.save(out, format=format, **options)
    return out.getvalue()


class PillowImages:
    """The ImageTools port on Pillow."""

    def __init__(self, limits: ImageLimits | None = None, webp_quality: int = 80, webp_method: int = 2) -> None:
        self.limits = limits or ImageLimits()
        self.webp_quality = webp_quality
        self.webp_method = webp_method  # 0 fastest .. 6 smallest; 2 is 3× faster than the default 4, 8 % larger

    def inspect(self, data: bytes, limits: ImageLimits | None = None, decode: bool = True,
                owner: str | None = None) -> ImageFacts:
        with _open(data, limits or self.limits, owner, pixels=decode) as image, _decoding("inspect"):
            format = _format(image)
            if decode:
                orientation = _orientation(image)
                metadata = any(key in image.info for key in METADATA) or bool(image.getexif()) or bool(
                    getattr(image, "text", None))
            else:  # Pillow's PNG plugin decodes every pixel in getexif() and .text, to find chunks written after
                # them: a look at the header reads what comes before the pixels (Image's own getexif) and no more
                exif = Image.Image.getexif(image)
                orientation = _orientation_in(exif)
                metadata = any(key in image.info for key in METADATA) or bool(exif)
            frames = int(getattr(image, "n_frames", 1))
            if decode:
                image.load()  # the whole first frame decodes: truncated or corrupt data is refused here
            width, height = image.size
        if orientation in (5, 6, 7, 8):  # turned a quarter: shown the other way round
            width, height = height, width
        return ImageFacts(format=format, content_type=Image.MIME.get(format, "application/octet-stream"),
                          width=width, height=height, frames=frames, orientation=orientation,
                          has_metadata=metadata, size=len(data))

    def thumbnails(self, data: bytes, sides: tuple[int, ...] = (256, 512)) -> dict[int, bytes]:
        """Decoded once, at the smallest scale that still covers the largest side (JPEG's DCT scaling through
        `draft`); shrunk first and turned upright after (turning the small image costs less and copies nothing
        big); each smaller thumbnail made from the one before. Shrinking by whole factors first (`reducing_gap`
        1.0: a box average, then a resample of what is left) and WebP's method 2 keep a 1024² original near
        30 ms; see bench/media.py."""
        if not sides or any(side < 16 for side in sides):
            raise ValueError("thumbnail sides must be at least 16")
        with _open(data, self.limits) as image, _decoding("thumbnails"):
            largest = max(sides)
            if _format(image) == "JPEG":
                image.draft("RGB", (largest, largest))
            orientation = _orientation(image)
            kept: dict[str | tuple[int, int], Any] = {key: image.info[key] for key in KEPT if key in image.info}
            image.load()
            current = image if image.mode in SHRINKABLE else _rgb(image)  # a palette would shrink to noise
            current.thumbnail((largest, largest), Image.Resampling.BICUBIC, reducing_gap=1.0)
            if current is image:  # shrunk in place: take the (small) pixels out of the file before it closes
                current = image.copy()
        made: dict[int, bytes] = {}
        for side in sorted(set(sides), reverse=True):
            current.thumbnail((side, side), Image.Resampling.BICUBIC, reducing_gap=1.0)
            upright = _turned(current, orientation)
            upright.info = kept
            made[side] = _save(upright, "WEBP", quality=self.webp_quality, method=self.webp_method)
        return {side: made[side] for side in sorted(made)}

    def strip(self, data: bytes) -> bytes:
        with _open(data, self.limits) as image, _decoding("strip"):
            format = SAVE_AS.get(_format(image), "PNG")
            if image.format == "JPEG" and _orientation(image) == 1:  # nothing to turn: keep its quantisation, lose
                # less (an MPO's first picture is re-encoded: Pillow keeps the tables of a plain JPEG only)
                image.load()
                return _save(_bare(image), "JPEG", quality="keep", subsampling="keep")
            return _save(_upright(image), format)

    def upload_copy(self, data: bytes, limits: ImageLimits | None = None, max_side: int | None = None,
                    owner: str | None = None) -> tuple[bytes, ImageFacts]:
        """What an upload keeps, and its facts, from one decode (a 49-megapixel PNG decoded by `inspect` and again
        by `strip` took 1.75 s of CPU an upload): checked as `inspect` checks (the real type, bytes, pixels
        declared, the first frame decoded whole), upright, without metadata, at most `max_side` on its long side
        (never enlarged; shrunk before it is turned, which costs less), in its own format: a JPEG kept at its size
        and upright keeps its quantisation, a GIF shrunk becomes a PNG (resampled, it is no longer a palette). A large
        image of the caller `owner` is refused (RateLimited) while another of theirs is decoding."""
        if max_side is not None and max_side < 16:
            raise ValueError("max_side must be at least 16")
        with _open(data, limits or self.limits, owner, refuse=True) as image, _decoding("upload"):
            source = _format(image)
            side = max_side if max_side is not None and max(image.size) > max_side else None  # None: kept as is
            format = "PNG" if side and source == "GIF" else SAVE_AS.get(source, "PNG")
            if side and source == "JPEG":
                image.draft("RGB", (side, side))  # DCT scaling: decodes less
            orientation = _orientation(image)
            kept: dict[str | tuple[int, int], Any] = {key: image.info[key] for key in KEPT if key in image.info}
            image.load()  # the first frame whole, once: truncated or corrupt data is refused here
            if image.format == "JPEG" and orientation == 1 and not side:  # as strip: the JPEG's own tables
                return self._facts(_save(_bare(image), "JPEG", quality="keep", subsampling="keep"), format,
                                   image.size)
            current = image if not side or image.mode in SHRINKABLE else _rgb(image)  # a palette shrinks to noise
            if side:  # whole factors first (a box average), then Lanczos: 7000² to 1280² in 0.1 s, not 0.3 s at 2.0
                current.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=1.0)
            if current is image:  # the pixels taken out of the file before it closes
                current = image.copy()
        upright = _turned(current, orientation)
        upright.info = kept
        return self._facts(_save(upright, format), format, upright.size)

    @staticmethod
    def _facts(data: bytes, format: str, size: tuple[int, int]) -> tuple[bytes, ImageFacts]:
        return data, ImageFacts(format=format, content_type=Image.MIME.get(format, "application/octet-stream"),
                                width=size[0], height=size[1], frames=1, orientation=1, has_metadata=False,
                                size=len(data))

    def downscale(self, data: bytes, max_side: int, owner: str | None = None) -> bytes:
        if max_side < 16:
            raise ValueError("max_side must be at least 16")
        with _open(data, self.limits, owner) as image, _decoding("downscale"):
            format = "PNG" if image.format == "GIF" else SAVE_AS.get(_format(image), "PNG")
            if format == "JPEG":
                image.draft("RGB", (max_side, max_side))
            upright = _upright(image)
        upright.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
        return _save(upright, format)

    def dominant_colours(self, data: bytes, count: int = 5) -> list[tuple[str, int]]:
        if not 1 <= count <= 16:
            raise ValueError("count must be from 1 to 16")
        with _open(data, self.limits) as image, _decoding("colours"):
            image.draft("RGB", (64, 64))
            small = image.convert("RGB")
        small.thumbnail((64, 64))
        quantised = small.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
        palette = quantised.getpalette() or []
        counted = sorted(quantised.getcolors() or [], key=lambda pair: (-pair[0], pair[1]))
        total = sum(n for n, _ in counted) or 1
        indexed = cast(list[tuple[int, int]], counted)  # a quantised image's colours are palette indices
        return [("#{:02x}{:02x}{:02x}".format(*palette[3 * index:3 * index + 3]), n * 100 // total)
                for n, index in indexed]
