"""localstripe (PyPI), a stateful Stripe API server for what the tests' own fake lacks: saved cards (PaymentMethods
attached to customers), off-session PaymentIntents confirmed at once, declines and refunds. Started on a free
loopback port with --from-scratch (it pickles its state to one file in the temp folder: one at a time)."""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import urllib.error
import urllib.request

from tests.firestore_emulator import free_port
from tests.servers import stop_process, wait_until_up


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
        wait_until_up(self.process, self._answers, "localstripe", pause=0.05)

    def _answers(self) -> bool:
        with contextlib.suppress(urllib.error.HTTPError):  # it answers (401 without a key): up
            urllib.request.urlopen(f"{self.url}/v1/customers", timeout=2)
        return True

    def stop(self) -> None:
        stop_process(self.process)
