"""localstripe (PyPI), a stateful Stripe API server for what the tests' own fake lacks: saved cards (PaymentMethods
attached to customers), off-session PaymentIntents confirmed at once, declines and refunds. Started on a free
loopback port with --from-scratch (it pickles its state to one file in the temp folder: one at a time)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.firestore_emulator import free_port


def localstripe_missing() -> str | None:
    if importlib.util.find_spec("localstripe") is None:
        return "localstripe is not installed (requirements-dev.txt)"
    return None


class LocalStripe:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "localstripe", "--port", str(self.port),
                                         "--from-scratch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/v1/customers", timeout=2)
                break
            except urllib.error.HTTPError:  # it answers (401 without a key): up
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
