"""Cold start: the import time of functions/main.py beside the import time of the bare Firebase SDKs.

Each figure is the median of several fresh interpreters. Target: main.py ≤ 1.2× the bare SDKs.
Run: make bench   (or: functions/venv/bin/python bench/coldstart.py [--runs N])
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"
SDKS = "import firebase_functions, firebase_admin, google.cloud.firestore, flask"
FLOOR = ("import firebase_admin, firebase_functions.https_fn, firebase_functions.scheduler_fn, "
         "firebase_functions.firestore_fn")
MAIN = "import main"
TIMER = "import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"


def seconds(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", TIMER.format(code=code)], cwd=FUNCTIONS, capture_output=True,
                         text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    sdk, floor, ours = [], [], []
    for _ in range(runs):  # interleaved, so that drift on the machine hits all three alike
        sdk.append(seconds(SDKS))
        floor.append(seconds(FLOOR))
        ours.append(seconds(MAIN))
    bare, least, full = statistics.median(sdk), statistics.median(floor), statistics.median(ours)
    print(f"cold start imports, median of {runs} fresh interpreters")
    print(f"  bare SDKs ({SDKS.removeprefix('import ')})  {bare * 1000:8.1f} ms")
    print(f"  SDK trigger modules main.py needs (https_fn, scheduler_fn, firestore_fn)   {least * 1000:8.1f} ms")
    print(f"  functions/main.py (our code loads on first call)                           {full * 1000:8.1f} ms")
    print(f"  ratio main.py / bare SDKs: {full / bare:.2f}x (target ≤ 1.20x);  main.py / trigger modules: "
          f"{full / least:.2f}x")


if __name__ == "__main__":
    main()
