"""Media benchmark: originals → two WebP thumbnails (long side 256 and 512), as the platform makes them.

For 1024² and 2048² originals, as PNG (what image models mostly send) and as JPEG (photos, uploads): thumbnails per
second on one core, and the peak resident memory the work added, each measured in a fresh child process (so one
size's high-water mark cannot hide another's), beside the targets: ≥ 20 images/s at 1024², and a peak of at most 4×
the decoded original (width × height × 3 bytes). Then where the time goes (decode, shrink, encode), to say what
limits a figure that misses. Not a test.
Run: make bench-media   (or: functions/venv/bin/python bench/media.py [--quick])
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))

from PIL import Image, ImageDraw, ImageFilter

SIZES = (1024, 2048)
FORMATS = ("PNG", "JPEG")


def original(side: int, format: str) -> bytes:
    """A photo-like picture: a gradient, shapes and grain (grain keeps PNG from compressing to nothing)."""
    rng = random.Random(side)
    image = Image.merge("RGB", [Image.linear_gradient("L").resize((side, side)).rotate(angle)
                                for angle in (0, 90, 180)])
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y, r = rng.randrange(side), rng.randrange(side), rng.randrange(side // 40, side // 6)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    grain = Image.effect_noise((side, side), 24).convert("RGB")
    image = Image.blend(image.filter(ImageFilter.GaussianBlur(2)), grain, 0.12)
    out = io.BytesIO()
    image.save(out, format=format, **({"quality": 90} if format == "JPEG" else {}))
    return out.getvalue()


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_kib() -> int:
    return status_kib("VmRSS")


def child(path: str, seconds: float) -> None:
    """In a fresh process: the peak RSS one thumbnail call adds, then thumbnails per second."""
    from creditflow.adapters.media.images import PillowImages

    data = Path(path).read_bytes()
    tools = PillowImages()
    tools.thumbnails(original(64, "PNG"))  # Pillow's plugins and libwebp load once: not the work measured
    tools.thumbnails(original(64, "JPEG"))
    # The high-water mark is read from /proc (VmHWM), reset here: getrusage's ru_maxrss would do on its own, but
    # Linux carries it over an exec from the forked parent, which held every original (it read 60 MB too high).
    Path("/proc/self/clear_refs").write_text("5")
    before = rss_kib()  # interpreter, Pillow and the encoded original: what was there before the work
    tools.thumbnails(data)
    first = status_kib("VmHWM")
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        tools.thumbnails(data)
        done += 1
    elapsed = time.perf_counter() - started
    print(json.dumps({"per_second": done / elapsed, "first_peak_kib": first - before,
                      "peak_kib": status_kib("VmHWM") - before,
                      "cpu_seconds": resource.getrusage(resource.RUSAGE_SELF).ru_utime}))


def stages(data: bytes) -> dict[str, float]:
    """Milliseconds for each stage of one thumbnail pair, done as the adapter does them: the best of 5 runs (on
    a shared machine the mean says more about the neighbours than about the work)."""
    times: dict[str, float] = {}
    runs = 5
    for _ in range(runs):
        t0 = time.perf_counter()
        image = Image.open(io.BytesIO(data))
        if image.format == "JPEG":
            image.draft("RGB", (512, 512))
        image.load()
        t1 = time.perf_counter()
        image.thumbnail((512, 512), Image.Resampling.BICUBIC, reducing_gap=1.0)
        large = image.copy()
        small = large.copy()
        small.thumbnail((256, 256), Image.Resampling.BICUBIC, reducing_gap=1.0)
        t2 = time.perf_counter()
        for thumb in (large, small):
            thumb.save(io.BytesIO(), format="WEBP", quality=80, method=2)
        t3 = time.perf_counter()
        for name, spent in (("decode", t1 - t0), ("shrink", t2 - t1), ("encode", t3 - t2)):
            times[name] = min(times.get(name, float("inf")), spent * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per case instead of 4")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], float(args.child[1]))
    seconds = 1.0 if args.quick else 4.0
    folder = Path(__file__).resolve().parent / ".media"
    folder.mkdir(exist_ok=True)
    print(f"Thumbnails (WebP, long side 256 and 512) from one original, one core, {seconds:g} s a case; "
          f"Pillow {Image.__version__}")
    print(f"  {'original':<22} {'bytes':>10} {'images/s':>10} {'target':>9}   {'peak added':>11} "
          f"{'decoded':>9} {'ratio':>6} {'target':>7}")
    for side in SIZES:
        for format in FORMATS:
            data = original(side, format)
            path = folder / f"original-{side}.{format.lower()}"
            path.write_bytes(data)
            out = subprocess.run([sys.executable, __file__, "--child", str(path), str(seconds)], check=True,
                                 capture_output=True, text=True).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            decoded = side * side * 3
            peak = figures["peak_kib"] * 1024
            rate_target = "≥ 20" if side == 1024 else "-"
            rate_ok = "" if side != 1024 else (" ok" if figures["per_second"] >= 20 else " MISS")
            ratio = peak / decoded
            print(f"  {f'{side}x{side} {format}':<22} {len(data):>10,} {figures['per_second']:>10.1f} "
                  f"{rate_target:>6}{rate_ok:<3}   {peak / 2**20:>8.1f} MB {decoded / 2**20:>6.1f} MB "
                  f"{ratio:>5.1f}× {'≤ 4×':>6}{' ok' if ratio <= 4 else ' MISS'}")
    print("Where the time goes (ms per original, best of 5, this process):")
    for side in SIZES:
        for format in FORMATS:
            spent = stages((folder / f"original-{side}.{format.lower()}").read_bytes())
            print(f"  {f'{side}x{side} {format}':<22} " + "  ".join(f"{k} {v:6.1f}" for k, v in spent.items()))
    print("A PNG original is bound by its decode (zlib inflate of every pixel: nothing like JPEG's draft can skip\n"
          "it); a JPEG is decoded at 1/2 to 1/4 scale by draft, so WebP encoding (method 2) is most of its time.")
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
