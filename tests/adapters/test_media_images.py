"""Image checks and derivatives on real Pillow: the real type is sniffed, bombs are refused undecoded, thumbnails
and stripped copies are upright and carry no EXIF."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from PIL import Image

from creditflow.adapters.media.images import PillowImages
from creditflow.domain.images import ImageTooLarge, InvalidImage
from creditflow.domain.media import ImageLimits
from creditflow.entrypoints.http.statuses import status_of
from tests.media_samples import encoded, exif, halves, noise, png_header, png_with_text, rotated_jpeg

tools = PillowImages()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def near(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel[:3], colour, strict=True))


RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.mark.parametrize(("data", "format", "size"), [
    (encoded(halves(64, 32), "PNG"), "PNG", (64, 32)),
    (encoded(halves(64, 32), "JPEG"), "JPEG", (64, 32)),
    (encoded(halves(64, 32), "WEBP"), "WEBP", (64, 32)),
    (encoded(halves(64, 32).convert("P"), "GIF"), "GIF", (64, 32)),
])
def test_the_real_type_and_size_are_read(data: bytes, format: str, size: tuple[int, int]) -> None:
    facts = tools.inspect(data)
    assert (facts.format, (facts.width, facts.height), facts.size, facts.frames) == (format, size, len(data), 1)
    assert facts.content_type == f"image/{format.lower()}" and facts.orientation == 1


def test_orientation_and_metadata_are_reported() -> None:
    facts = tools.inspect(rotated_jpeg())
    assert (facts.width, facts.height, facts.orientation, facts.has_metadata) == (200, 400, 6, True)
    assert tools.inspect(png_with_text()).has_metadata
    assert not tools.inspect(encoded(halves(64, 32), "PNG")).has_metadata


def test_a_look_at_the_header_decodes_no_pixels_of_a_png() -> None:
    """decode=False is what the vision flow checks stored images with before a hold, and sizes them for the
    estimate: Pillow's PNG plugin decodes every pixel in getexif() (looking for an eXIf chunk after them), so it read
    a 49-megapixel upload whole each time, 0.65 s, eight times a request. A PNG whose pixel data is not even zlib is
    now read by its header, and refused once decoded; its EXIF written before the pixels is still read."""
    def broken(data: bytes) -> bytes:  # the pixel data's zlib header and first bytes overwritten
        start = data.index(b"IDAT") + 4
        return data[:start] + b"\xff" * 16 + data[start + 16:]

    plain = broken(encoded(halves(64, 32), "PNG"))
    facts = tools.inspect(plain, decode=False)
    assert (facts.format, facts.width, facts.height, facts.orientation, facts.has_metadata) == (
        "PNG", 64, 32, 1, False)
    with pytest.raises(InvalidImage):
        tools.inspect(plain)
    turned = tools.inspect(broken(encoded(halves(300, 200), "PNG", exif=exif(6))), decode=False)
    assert (turned.width, turned.height, turned.orientation, turned.has_metadata) == (200, 300, 6, True)


def test_an_animation_counts_its_frames() -> None:
    frames = [halves(32, 32, left=(n * 60, 0, 0)).convert("P") for n in range(3)]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert tools.inspect(data).frames == 3


@pytest.mark.parametrize("data", [
    b"hello, world", b"%PDF-1.7\n1 0 obj", b"<html><body>not an image</body></html>", b"\x89PNG\r\n\x1a\n",
    encoded(noise(64, 32), "PNG")[:2000], encoded(noise(64, 32), "JPEG")[:1000],  # truncated: the header reads
    encoded(halves(64, 32), "BMP"), encoded(halves(64, 32), "TIFF"),  # real images, formats not accepted
    b"",
])
def test_what_is_not_an_accepted_image_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidImage) as refused:
        tools.inspect(data)
    assert status_of(refused.value) == 422  # well formed, and not an image this platform takes
    for derive in (tools.thumbnails, tools.strip, tools.upload_copy):
        with pytest.raises(InvalidImage):
            derive(data)


@pytest.mark.parametrize("size", [(8_000, 8_000), (20_000, 20_000), (30_000, 30_000),  # ours; Pillow's guards too
                                  (1, 49_000_000), (49_000_000, 1)])  # within the pixels, one side seconds to read
def test_a_decompression_bomb_is_refused_before_it_is_decoded(size: tuple[int, int]) -> None:
    bomb = png_header(*size)
    assert len(bomb) < 2_000  # a few hundred bytes that would decode to 400-900 MB
    tracemalloc.start()
    try:
        for check in (tools.inspect, tools.thumbnails, tools.strip, tools.upload_copy, tools.dominant_colours):
            with pytest.raises(ImageTooLarge, match="pixels") as refused:
                check(bomb)
            assert status_of(refused.value) == 413
            assert "bomb" not in refused.value.detail and "178956970" not in refused.value.detail  # not Pillow's
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # nothing near the decoded size was allocated


def test_limits_on_bytes_pixels_and_formats() -> None:
    data = encoded(halves(100, 100), "PNG")
    with pytest.raises(ImageTooLarge, match="bytes"):
        tools.inspect(data, ImageLimits(max_bytes=len(data) - 1))
    with pytest.raises(ImageTooLarge, match="100x100"):
        tools.inspect(data, ImageLimits(max_pixels=9_999))
    with pytest.raises(InvalidImage, match="JPEG"):
        tools.inspect(data, ImageLimits(formats=frozenset({"JPEG"})))
    assert tools.inspect(data, ImageLimits(max_pixels=10_000)).width == 100


def test_thumbnails_are_webp_upright_and_without_exif() -> None:
    thumbs = tools.thumbnails(rotated_jpeg())
    assert set(thumbs) == {256, 512}
    small = opened(thumbs[256])
    assert small.format == "WEBP" and small.size == (128, 256)  # shown the right way: tall, red on top
    assert near(small.getpixel((64, 20)), RED) and near(small.getpixel((64, 236)), BLUE)
    assert opened(thumbs[512]).size == (200, 400)  # never enlarged past the original
    for data in thumbs.values():
        assert not opened(data).getexif() and "exif" not in opened(data).info and b"SecretCam" not in data


def test_thumbnails_of_a_large_image_have_the_long_side_asked_for() -> None:
    photo = encoded(halves(2048, 1536), "JPEG", quality=90)
    thumbs = tools.thumbnails(photo)
    assert opened(thumbs[512]).size == (512, 384) and opened(thumbs[256]).size == (256, 192)
    assert near(opened(thumbs[256]).getpixel((10, 100)), RED) and near(opened(thumbs[256]).getpixel((250, 100)), BLUE)


def test_thumbnails_keep_transparency() -> None:
    clear = Image.new("RGBA", (600, 300), (0, 0, 0, 0))
    clear.paste((0, 255, 0, 255), (0, 0, 300, 300))
    thumb = opened(tools.thumbnails(encoded(clear, "PNG"))[256])
    assert thumb.mode == "RGBA" and thumb.getpixel((200, 64))[3] == 0 and thumb.getpixel((20, 64))[3] == 255


def test_strip_turns_the_image_upright_and_drops_exif_in_its_own_format() -> None:
    stripped = tools.strip(rotated_jpeg())
    image = opened(stripped)
    assert image.format == "JPEG" and image.size == (200, 400) and near(image.getpixel((100, 10)), RED)
    assert not image.getexif() and b"SecretCam" not in stripped
    assert tools.inspect(stripped).orientation == 1 and not tools.inspect(stripped).has_metadata


def test_strip_drops_exif_comments_and_text_chunks() -> None:
    upright_jpeg = encoded(halves(300, 200), "JPEG", exif=exif(1), comment=b"SecretCam")
    png = png_with_text()
    for data, format in ((upright_jpeg, "JPEG"), (png, "PNG")):
        assert b"SecretCam" in data
        stripped = tools.strip(data)
        assert b"SecretCam" not in stripped and opened(stripped).format == format
        assert opened(stripped).size == (300, 200) and not tools.inspect(stripped).has_metadata


def test_an_upload_copy_is_upright_stripped_and_described_as_it_is_kept() -> None:
    """What `inspect` and `strip` did in two decodes: the facts are the copy's, and it carries no metadata."""
    upright_jpeg = encoded(halves(300, 200), "JPEG", exif=exif(1), comment=b"SecretCam")
    gif = encoded(halves(64, 32).convert("P"), "GIF", comment=b"SecretCam")
    for data, format, size in ((rotated_jpeg(), "JPEG", (200, 400)), (upright_jpeg, "JPEG", (300, 200)),
                               (png_with_text(), "PNG", (300, 200)), (gif, "GIF", (64, 32))):
        assert b"SecretCam" in data
        copy, facts = tools.upload_copy(data)
        assert b"SecretCam" not in copy and opened(copy).format == format and opened(copy).size == size
        assert facts == tools.inspect(copy) and not facts.has_metadata and facts.orientation == 1
    turned = opened(tools.upload_copy(rotated_jpeg())[0])
    assert near(turned.getpixel((100, 10)), RED)
    with pytest.raises(ImageTooLarge, match="bytes"):
        tools.upload_copy(upright_jpeg, ImageLimits(max_bytes=len(upright_jpeg) - 1))


def test_an_upload_copy_shrinks_to_the_long_side_and_never_enlarges() -> None:
    wide, facts = tools.upload_copy(encoded(halves(2000, 1000), "JPEG", exif=exif(1)), max_side=512)
    assert opened(wide).format == "JPEG" and (facts.width, facts.height) == opened(wide).size == (512, 256)
    assert b"SecretCam" not in wide and facts == tools.inspect(wide)
    turned = opened(tools.upload_copy(rotated_jpeg(), max_side=100)[0])
    assert turned.size == (50, 100) and near(turned.getpixel((25, 5)), RED)
    assert opened(tools.upload_copy(encoded(halves(64, 32), "PNG"), max_side=512)[0]).size == (64, 32)
    gif, facts = tools.upload_copy(encoded(halves(64, 32).convert("P"), "GIF"), max_side=32)
    assert opened(gif).format == "PNG" and opened(gif).size == (32, 16) and facts.content_type == "image/png"
    left = opened(tools.upload_copy(encoded(halves(64, 32).convert("P"), "GIF"), max_side=32)[0]).convert("RGB")
    assert near(left.getpixel((4, 8)), RED)


def test_downscale_shrinks_to_the_long_side_and_never_enlarges() -> None:
    wide = tools.downscale(encoded(halves(2000, 1000), "JPEG", exif=exif(1)), 512)
    assert opened(wide).format == "JPEG" and opened(wide).size == (512, 256) and b"SecretCam" not in wide
    turned = opened(tools.downscale(rotated_jpeg(), 100))
    assert turned.size == (50, 100) and near(turned.getpixel((25, 5)), RED)
    assert opened(tools.downscale(encoded(halves(64, 32), "PNG"), 512)).size == (64, 32)
    gif = opened(tools.downscale(encoded(halves(64, 32).convert("P"), "GIF"), 32))
    assert gif.format == "PNG" and gif.size == (32, 16)


def test_dominant_colours_most_common_first() -> None:
    image = Image.new("RGB", (400, 100), BLUE)
    image.paste(RED, (0, 0, 300, 100))  # three quarters red
    colours = tools.dominant_colours(encoded(image, "PNG"), count=3)
    assert colours[0] == ("#ff0000", 75) and colours[1] == ("#0000ff", 25)
    assert tools.dominant_colours(encoded(image, "PNG"), count=3) == colours  # the same every time


def test_strip_keeps_a_gif_a_gif() -> None:
    gif = encoded(halves(64, 32).convert("P"), "GIF", comment=b"SecretCam")
    stripped = tools.strip(gif)
    assert opened(stripped).format == "GIF" and opened(stripped).size == (64, 32) and b"SecretCam" not in stripped


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "RGBA", "I;16", "1"])
def test_thumbnails_of_every_mode_are_webp(mode: str) -> None:
    base = halves(600, 400)
    image = base.convert("L").convert("I;16") if mode == "I;16" else base.convert(mode)
    data = encoded(image, "JPEG" if mode == "CMYK" else "PNG")
    assert opened(data).mode == mode
    thumb = opened(tools.thumbnails(data)[256])
    assert thumb.format == "WEBP" and thumb.size == (256, 171) and thumb.mode in ("RGB", "RGBA")


def test_large_images_are_decoded_two_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory, not CPU, is what many large images at once exhaust (six 49-megapixel PNGs took 2.7 GB): past four
    megapixels, two are decoded at once in a process and the others wait their turn; small ones never wait."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    large = encoded(Image.new("RGB", (2500, 2000), "navy"), "PNG")  # 5 megapixels, a few KB
    small = encoded(halves(64, 32), "PNG")
    inside, most, lock = [0], [0], threading.Lock()
    load = Image.Image.load

    def counted(image: Image.Image) -> object:
        if image.width * image.height > 4_000_000 and getattr(image, "_im", None) is None:  # its first decode
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.05)
            try:
                return load(image)
            finally:
                with lock:
                    inside[0] -= 1
        return load(image)

    monkeypatch.setattr(Image.Image, "load", counted)
    with ThreadPoolExecutor(6) as pool:
        assert all(pool.map(lambda data: tools.strip(data), [large] * 6 + [small] * 6))
    assert most[0] == 2


class HeldDecodes:
    """Image.load of a chosen large size held until the test lets it go: a decode that takes long."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
        import threading

        self.size, self.started, self.finish = size, threading.Semaphore(0), threading.Event()
        load = Image.Image.load

        def held(image: Image.Image) -> object:
            if image.size == self.size and getattr(image, "_im", None) is None:
                self.started.release()
                self.finish.wait(30)
            return load(image)

        monkeypatch.setattr(Image.Image, "load", held)


def test_a_callers_large_images_in_chat_wait_for_each_other_and_leave_a_slot_to_others(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat turn's or a task's images are decoded one at a time of a caller's: one caller's six large images at
    once took both slots, and another caller's waited behind all of them. The caller's others wait (a refusal would
    fail a task), and another caller's is decoded while the first caller's is still decoding."""
    from concurrent.futures import ThreadPoolExecutor

    hogs_image = encoded(Image.new("RGB", (2500, 2000), "navy"), "PNG")  # 5 megapixels, a few KB
    others_image = encoded(Image.new("RGB", (2400, 2000), "teal"), "PNG")
    held = HeldDecodes(monkeypatch, (2500, 2000))
    with ThreadPoolExecutor(5) as pool:
        try:
            hogs = [pool.submit(tools.inspect, hogs_image, owner="hog") for _ in range(4)]
            assert held.started.acquire(timeout=10)
            theirs = pool.submit(tools.inspect, others_image, owner="other")
            assert theirs.result(timeout=10).width == 2400  # within the hog's decode, not after it
            assert not held.started.acquire(timeout=0.3)  # the hog's others wait for the first: none decodes
        finally:
            held.finish.set()
        assert [hog.result(timeout=30).width for hog in hogs] == [2500] * 4  # each in its turn, none refused


def test_a_look_at_a_large_images_header_does_not_wait_for_a_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored image's header is checked again when a chat names it, and its pixels were checked when it was
    stored: that look reads no pixels, so it does not wait while every large-decode slot is taken."""
    from concurrent.futures import ThreadPoolExecutor

    large = encoded(Image.new("RGB", (2500, 2000), "navy"), "PNG")
    held = HeldDecodes(monkeypatch, (2500, 2000))
    with ThreadPoolExecutor(2) as pool:
        try:
            decodes = [pool.submit(tools.inspect, large, owner=owner) for owner in ("ann", "bob")]
            assert held.started.acquire(timeout=10) and held.started.acquire(timeout=10)  # both slots taken
            with ThreadPoolExecutor(1) as looker:
                assert looker.submit(tools.inspect, large, decode=False).result(timeout=5).width == 2500
        finally:
            held.finish.set()
        assert all(decode.result(timeout=30) for decode in decodes)
