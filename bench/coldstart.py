"""Cold start: the import time of functions/main.py beside the import time of the bare Firebase SDKs.

An instance of a deployed function imports main.py with FUNCTION_TARGET naming its function (Cloud Functions and
the emulator set it); main.py then defines, and imports the SDK module of, that function alone. Each function's
cold start is measured so, and deploy-time discovery (no target: every function) is shown beside them.
Each figure is the median of several fresh interpreters, run interleaved. Target: main.py ≤ 1.2× the bare SDKs.
For scale it also times what the SDK's Firestore decorator imports (firestore_fn imports more than the bare SDKs:
firebase_functions.options, its auth and App Check helpers, cloudevents): mirrorAccount's instance does without it,
as a plain handler of the raw CloudEvent; the decorator declares the trigger at deploy-time discovery only.
Measured in bench/.venv-functions (git-ignored), a venv with only functions/requirements.txt installed, as Cloud
Functions builds it: the development venv holds test tools that some SDK modules import when present.
Run: make bench   (or: functions/venv/bin/python bench/coldstart.py [--runs N] [--python PATH])
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
DEPLOY_VENV = ROOT / "bench" / ".venv-functions"
SDKS = "import firebase_functions, firebase_admin, google.cloud.firestore, flask"
TRIGGER_SDK = "import firebase_admin; from firebase_functions import firestore_fn"  # the decorator's imports
TARGETS = ("api", "claimWelcomeBonus", "expireHolds", "publishCheckpoint", "mirrorAccount")
TIMER = "import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"


def seconds(python: str, code: str, target: str | None = None) -> float:
    env = {key: value for key, value in os.environ.items() if key != "FUNCTION_TARGET"}
    if target is not None:
        env["FUNCTION_TARGET"] = target
    out = subprocess.run([python, "-c", TIMER.format(code=code)], cwd=FUNCTIONS, env=env, capture_output=True,
                         text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def deployment_python() -> str:
    """The interpreter of a venv holding what a deploy installs (made on first use), or this one if that fails."""
    python = DEPLOY_VENV / "bin" / "python"
    stamp = DEPLOY_VENV / ".requirements"
    wanted = (FUNCTIONS / "requirements.txt").read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    print(f"installing functions/requirements.txt into {DEPLOY_VENV.relative_to(ROOT)} (once) …", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(DEPLOY_VENV)], check=True)
        subprocess.run([str(DEPLOY_VENV / "bin" / "pip"), "install", "-q", "-r", str(FUNCTIONS / "requirements.txt")],
                       check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as error:
        print(f"  could not build it ({error}; {(error.stderr or '')[-1000:]}); measuring in {sys.executable} instead")
        return sys.executable
    stamp.write_text(wanted)
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)  # the machine's noise is ±30 %: more runs, a steadier median
    parser.add_argument("--python", help="the interpreter to measure in (default: bench/.venv-functions)")
    args = parser.parse_args()
    args.python = args.python or deployment_python()
    names = ("bare SDKs", "trigger SDK", *TARGETS, "discovery")
    samples: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.runs):  # interleaved, so that drift on the machine hits every figure alike
        samples["bare SDKs"].append(seconds(args.python, SDKS))
        samples["trigger SDK"].append(seconds(args.python, TRIGGER_SDK))
        for target in TARGETS:
            samples[target].append(seconds(args.python, "import main", target))
        samples["discovery"].append(seconds(args.python, "import main"))
    median = {name: statistics.median(values) for name, values in samples.items()}
    bare = median["bare SDKs"]
    print(f"cold start imports, median of {args.runs} fresh interpreters ({args.python})")
    print(f"  bare SDKs ({SDKS.removeprefix('import ')})  {bare * 1000:8.1f} ms  (anchor)")
    for target in TARGETS:
        print(f"  main.py as {target:<18} (FUNCTION_TARGET={target})  {median[target] * 1000:8.1f} ms  "
              f"{median[target] / bare:.2f}x")
    print(f"  main.py at deploy-time discovery (every function, not a cold start)  {median['discovery'] * 1000:8.1f} ms"
          f"  {median['discovery'] / bare:.2f}x")
    print(f"  for scale: what the SDK's Firestore decorator imports ({TRIGGER_SDK.removeprefix('import ')}), which "
          f"mirrorAccount's instance does without  {median['trigger SDK'] * 1000:8.1f} ms  "
          f"{median['trigger SDK'] / bare:.2f}x")
    worst = max(TARGETS, key=lambda target: median[target])
    print(f"  slowest cold start: {worst}, {median[worst] / bare:.2f}x the bare SDKs (target ≤ 1.20x)")


if __name__ == "__main__":
    main()
