"""kill -9 in the middle of a stream of money movements: every acknowledged movement survives, nothing half-done."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import make_platform

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

WRITER = """
import sys
from pathlib import Path
from creditflow.bootstrap import build
from creditflow.config import Settings
credits = build(Settings.from_env(runtime="local", data_dir=Path(sys.argv[1]))).credits
credits.open_account("crash")
n = 0
while True:
    n += 1
    grant = credits.grant("crash", 3_000_000, source="admin", lot_kind="paid", key=f"g{n}")
    hold = credits.reserve("crash", 2_000_000, key=f"r{n}")
    settle = credits.settle("crash", hold.hold, 1_000_000, key=f"s{n}")
    print(grant.entry, hold.entry, settle.entry, flush=True)
"""


def test_nothing_acknowledged_is_lost_and_nothing_half_done_survives(tmp_path: Path) -> None:
    data = tmp_path / "data"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(data)], cwd=FUNCTIONS, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "SQLITE_SYNCHRONOUS": "NORMAL"})
    assert writer.stdout is not None
    started, first = time.monotonic(), []
    while len(first) <= 10 and time.monotonic() - started < 120:  # progress first, however slow the machine is
        first.append(writer.stdout.readline())
    time.sleep(0.5)  # then the kill lands in the middle of the stream
    os.kill(writer.pid, signal.SIGKILL)
    out, _ = writer.communicate()
    acknowledged = [line.split() for line in "".join(first).splitlines() + out.splitlines() if len(line.split()) == 3]
    assert len(acknowledged) > 10, "the writer should have made progress before the kill"
    platform = make_platform(data)  # no repair at restart: each commit counted its own usage rollup
    for grant, hold, settle in acknowledged:
        for entry_id in (grant, hold, settle):
            assert platform.store.entry(entry_id) is not None, json.dumps(entry_id)
    report = platform.integrity.audit()
    assert report.ok, report.findings
    balance = platform.credits.balance("crash")
    # Each full round adds 2 credits; a round cut short after its grant or hold commit is still whole.
    assert balance.available + balance.held == report.totals["users"]
    assert platform.credits.sweep() >= 0 and platform.integrity.publish_checkpoint().size >= 3 * len(acknowledged)


KILLED_AFTER_A_COMMIT = """
import os
import signal
import sys
from pathlib import Path
from creditflow.bootstrap import build
from creditflow.config import Settings
from creditflow.services.credits import Credits
credits = build(Settings.from_env(runtime="local", data_dir=Path(sys.argv[1]))).credits
credits.open_account("cut")
credits.grant("cut", 5_000_000, source="admin", lot_kind="paid", key="g")
hold = credits.reserve("cut", 2_000_000, key="r")
Credits._committed = lambda self, account, entries: os.kill(os.getpid(), signal.SIGKILL)  # right after the commit
credits.settle("cut", hold.hold, 1_000_000, key="s", memo={"model": "m1"})
"""


def test_a_kill_right_after_a_charge_commits_leaves_its_usage_rollup_counted(tmp_path: Path) -> None:
    """kill -9 between a charge's commit and everything after it: the usage rollups were written after the commit,
    in another file, and a restart had to rebuild them. The commit counts them now, so a platform opened on the
    folder (no repair at restart) reads the charge in the admins' analytics, and the audit finds nothing."""
    data = tmp_path / "data"
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_A_COMMIT, str(data)], cwd=FUNCTIONS,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    platform = make_platform(data)
    assert platform.credits.balance("cut").available == 4_000_000  # the settle was committed
    assert platform.usage is not None
    day = platform.clock.now().date().isoformat()
    usage = platform.usage.read(day, day, by="model")
    assert (usage.charged, usage.settles, usage.groups) == (1_000_000, 1, {"m1": 1_000_000})
    report = platform.integrity.audit()
    assert report.ok, report.findings
