"""The command line, run as a user would: audit, proofs, offline verification with only the public key."""

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CREDIT, make_platform

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def cli(*args: str, cwd: Path = FUNCTIONS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "creditflow", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(FUNCTIONS)})


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    platform = make_platform(folder)
    platform.credits.open_account("ada")
    platform.credits.grant("ada", 10 * CREDIT, source="admin", lot_kind="paid", key="g")
    hold = platform.credits.reserve("ada", 3 * CREDIT, key="r")
    platform.credits.settle("ada", hold.hold, CREDIT, key="s")
    return folder


def test_help_lists_the_cli() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("serve", "ledger", "keys", "users"):
        assert command in result.stdout


def test_audit_verify_and_checkpoint(data: Path) -> None:
    assert cli("ledger", "audit", "--data-dir", str(data)).returncode == 0
    assert "OK" in cli("ledger", "verify", "--data-dir", str(data)).stdout
    note = cli("ledger", "checkpoint", "--data-dir", str(data)).stdout
    assert note.splitlines()[:2] == ["creditflow.local/ledger", "3"]
    report = json.loads(cli("ledger", "audit", "--json", "--data-dir", str(data)).stdout)
    assert report["ok"] and report["totals"]["sum"]["micros"] == 0 and report["checkpointSize"] == 3
    for saved in (note, note + "\n", note.rstrip("\n")):  # as saved by hand: a newline more or less
        (data.parent / "kept.txt").write_text(saved)
        checked = cli("ledger", "verify", "--checkpoint", str(data.parent / "kept.txt"), "--data-dir", str(data))
        assert checked.returncode == 0 and "the checkpoint is consistent" in checked.stdout, checked.stdout


def test_a_kept_checkpoint_tells_a_store_rolled_back_to_a_copy(data: Path, tmp_path: Path) -> None:
    """The README's rollback: the store put back to a copy from before a grant audits clean; the checkpoint kept
    since the grant is larger than the log, and `ledger verify --checkpoint` says so and fails."""
    assert cli("ledger", "checkpoint", "--data-dir", str(data)).returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    assert cli("users", "grant", "ada", "1", "--key", "later", "--data-dir", str(data)).returncode == 0
    kept = tmp_path / "kept.txt"
    kept.write_text(cli("ledger", "checkpoint", "--data-dir", str(data)).stdout)
    shutil.rmtree(data)
    shutil.copytree(copy, data)
    assert cli("ledger", "audit", "--data-dir", str(data)).returncode == 0  # nothing in the store tells
    result = cli("ledger", "verify", "--checkpoint", str(kept), "--data-dir", str(data))
    assert result.returncode == 1 and "checkpoint:4" in result.stdout and "larger than the log" in result.stdout


def test_a_proof_verifies_offline_with_only_the_public_key(data: Path, tmp_path: Path) -> None:
    entry = sqlite3.connect(data / "ledger.sqlite3").execute("SELECT id FROM entries WHERE seq = 2").fetchone()[0]
    export = tmp_path / "proof.json"
    assert cli("ledger", "proof", entry, "--out", str(export), "--data-dir", str(data)).returncode == 0
    vkey = cli("keys", "show", "--data-dir", str(data)).stdout.split()[1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok = cli("ledger", "verify-export", str(export), "--public-key", vkey, cwd=elsewhere)
    assert ok.returncode == 0, ok.stdout
    kept = tmp_path / "keys.txt"  # `keys show > keys.txt`, its labels and all
    kept.write_text(cli("keys", "show", "--data-dir", str(data)).stdout)
    from_file = cli("ledger", "verify-export", str(export), "--public-key", str(kept), cwd=elsewhere)
    assert from_file.returncode == 0, from_file.stdout
    stranger = make_platform(tmp_path / "stranger").key.public.vkey
    assert cli("ledger", "verify-export", str(export), "--public-key", stranger).returncode == 1
    document = json.loads(export.read_text())
    document["entry"]["body"] = document["entry"]["body"].replace('"amount":"3000000"', '"amount":"1"')
    export.write_text(json.dumps(document))
    bad = cli("ledger", "verify-export", str(export), "--public-key", vkey)
    assert bad.returncode == 1 and entry in bad.stdout


def test_a_tampered_store_fails_with_a_named_entry(data: Path) -> None:
    db = sqlite3.connect(data / "ledger.sqlite3", isolation_level=None)
    entry = db.execute("SELECT id FROM entries WHERE seq = 3").fetchone()[0]
    db.execute("UPDATE entries SET body = replace(body, 'settle', 'settlf') WHERE id = ?", (entry,))
    result = cli("ledger", "audit", "--data-dir", str(data))
    assert result.returncode == 1 and entry in result.stdout
    assert cli("ledger", "verify", "--data-dir", str(data)).returncode == 1


def test_rotated_keys_keep_old_entries_verifiable(data: Path) -> None:
    old = cli("keys", "show", "--data-dir", str(data)).stdout.split()[1]
    assert cli("keys", "rotate", "--data-dir", str(data)).returncode == 0
    shown = cli("keys", "show", "--data-dir", str(data)).stdout
    assert old in shown and shown.split()[1] != old
    assert cli("users", "grant", "ada", "2.5", "--key", "after-rotation", "--data-dir", str(data)).returncode == 0
    assert cli("ledger", "audit", "--data-dir", str(data)).returncode == 0
    balance = json.loads(cli("users", "balance", "ada", "--data-dir", str(data)).stdout)
    assert balance["available"] == {"credits": "11.5", "micros": 11_500_000}


def test_consistency_between_checkpoints(data: Path) -> None:
    cli("ledger", "checkpoint", "--data-dir", str(data))
    cli("users", "grant", "ada", "1", "--key", "more", "--data-dir", str(data))
    cli("ledger", "checkpoint", "--data-dir", str(data))
    huge = cli("ledger", "consistency", "3", str(10**19), "--data-dir", str(data))
    assert huge.returncode == 2 and f"no checkpoint of size {10**19} is stored" in huge.stderr
    result = cli("ledger", "consistency", "3", "4", "--data-dir", str(data))
    assert result.returncode == 0 and json.loads(result.stdout)["consistent"]


def test_errors_exit_non_zero_with_a_message(data: Path, tmp_path: Path) -> None:
    result = cli("users", "grant", "ada", "-1", "--key", "neg", "--data-dir", str(data))
    assert result.returncode == 2 and "Invalid amount" in result.stderr
    missing = tmp_path / "no-such-note"
    result = cli("ledger", "verify", "--checkpoint", str(missing), "--data-dir", str(data))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {missing}: No such file or directory"
    # each of these once succeeded: a token already expired, every chain verified, an empty audit "clean"
    for args, said in ((("dev-token", "ada", "--ttl", "0"), "is not a lifetime"),
                       (("dev-token", "ada", "--unverified"), "--unverified needs --email"),
                       (("ledger", "verify", "--entry", ""), "no ledger entry ''"),
                       (("ledger", "audit", "--user", "nobody"), "no account user:nobody")):
        result = cli(*args, "--data-dir", str(data))
        assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr, args


@pytest.mark.parametrize("command", [("ledger", "audit"), ("ledger", "verify"), ("users", "balance", "ada"),
                                     ("keys", "show"), ("dev-token", "ada")])
def test_a_folder_without_a_ledger_is_refused_not_audited_as_a_new_one(tmp_path: Path, command: tuple) -> None:
    mistyped = tmp_path / "no-such-data"
    result = cli(*command, "--data-dir", str(mistyped))
    assert result.returncode == 2 and "no Creditflow ledger in" in result.stderr and "OK" not in result.stdout
    assert not mistyped.exists()


def test_a_grant_with_an_unreadable_expiry_is_a_usage_error(data: Path) -> None:
    result = cli("users", "grant", "ada", "1", "--key", "x", "--expires", "tomorrow", "--data-dir", str(data))
    assert result.returncode == 2 and "is not an ISO 8601 time" in result.stderr and "Traceback" not in result.stderr
    naive = cli("users", "grant", "ada", "1", "--key", "y", "--expires", "2099-01-01T00:00", "--data-dir", str(data))
    assert naive.returncode == 0
    lots = json.loads(cli("users", "balance", "ada", "--data-dir", str(data)).stdout)["lots"]
    assert "2099-01-01T00:00:00.000000Z" in [lot["expiresAt"] for lot in lots]  # no offset given: UTC


def test_the_cli_runs_from_any_folder_with_paths_from_there_and_says_where_it_wrote(data: Path, tmp_path: Path) -> None:
    entry = sqlite3.connect(data / "ledger.sqlite3").execute("SELECT id FROM entries WHERE seq = 2").fetchone()[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    wrapper = FUNCTIONS.parent / "creditflow"  # the README's `./creditflow`, here run from another folder
    result = subprocess.run([str(wrapper), "ledger", "proof", entry, "--out", "proof.json", "--data-dir", "../data"],
                            cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {elsewhere / 'proof.json'}"
    assert json.loads((elsewhere / "proof.json").read_text())["entry"]["id"] == entry


def test_the_readmes_command_line_block_runs_as_written(tmp_path: Path) -> None:
    """Every line of the README's CLI block, from a folder whose ./.creditflow is the data folder (as the
    repository root is once `make run` has run there), with TX and the key filled in."""
    readme = (FUNCTIONS.parent / "README.md").read_text()
    section = readme[readme.index("## The command line"):]
    block = section[section.index("```sh\n") + 6:section.index("```\n", section.index("```sh\n") + 6)]
    platform = make_platform(tmp_path / ".creditflow")
    platform.credits.open_account("ada")
    platform.credits.grant("ada", 10 * CREDIT, source="admin", lot_kind="paid", key="g")
    entry = sqlite3.connect(tmp_path / ".creditflow" / "ledger.sqlite3").execute(
        "SELECT id FROM entries WHERE seq = 1").fetchone()[0]
    vkey = platform.key.public.vkey
    for line in block.splitlines():
        command = line.split("  #")[0].strip().replace("[--entry TX] [--checkpoint NOTE_FILE]", f"--entry {entry}")
        command = command.replace(" TX ", f" {entry} ").replace("'creditflow.local/ledger+…'", f"'{vkey}'")
        command = command.replace("/tmp/proof.json", str(tmp_path / "proof.json"))  # this test's own
        assert command.startswith("./creditflow "), line
        ran = subprocess.run(str(FUNCTIONS.parent) + command[1:], shell=True, cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
        assert ran.returncode == 0, (command, ran.stdout, ran.stderr)
    assert json.loads((tmp_path / "proof.json").read_text())["entry"]["id"] == entry


def test_a_grant_to_a_user_with_no_account_yet_opens_it(data: Path) -> None:
    """As the admins' REST grant does: credits granted before the user first signs in wait in their account."""
    result = cli("users", "grant", "grace", "2", "--key", "first", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["account"] == "user:grace"
    balance = cli("users", "balance", "grace", "--data-dir", str(data))
    assert json.loads(balance.stdout)["available"] == {"credits": "2", "micros": 2 * CREDIT}


def test_the_data_folder_may_be_named_before_the_command_too(data: Path, tmp_path: Path) -> None:
    """`creditflow --data-dir D users balance u` as `creditflow users balance u --data-dir D`; given after the
    command too, the command's own wins."""
    before = cli("--data-dir", str(data), "users", "balance", "ada")
    after = cli("users", "balance", "ada", "--data-dir", str(data))
    assert before.returncode == after.returncode == 0, before.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)
    both = cli("--data-dir", str(tmp_path / "elsewhere"), "users", "balance", "ada", "--data-dir", str(data))
    assert both.returncode == 0 and json.loads(both.stdout) == json.loads(after.stdout)
    assert "$CREDITFLOW_DATA_DIR" in cli("serve", "--help").stdout


@pytest.mark.parametrize("command", [("keys", "show"), ("ledger", "verify"), ("users", "balance", "ada")])
def test_a_folder_whose_signing_key_is_gone_is_refused_not_given_a_new_key(data: Path, command: tuple) -> None:
    """A read made a new key with no warning, and every entry then failed as a bad signature (dev tokens and
    gateway secrets were replaced too, with the keys folder gone)."""
    (data / "keys" / "signing.json").unlink()
    result = cli(*command, "--data-dir", str(data))
    assert result.returncode == 2 and "restore the keys folder" in result.stderr, result.stderr
    assert not (data / "keys" / "signing.json").exists()


def test_a_grant_refused_says_so_in_credits_and_in_the_commands_words(data: Path) -> None:
    """The ledger's refusals name what it keeps: `-5` was "must not be negative (got -5000000)", and a key used
    again with another amount "first used with amount=25000000, now amount=26000000"."""
    negative = cli("users", "grant", "ada", "-5", "--key", "neg", "--data-dir", str(data))
    assert negative.returncode == 2 and "more than 0 credits, not -5" in negative.stderr, negative.stderr
    assert cli("users", "grant", "ada", "25", "--key", "top-1", "--data-dir", str(data)).returncode == 0
    again = cli("users", "grant", "ada", "25", "--key", "top-1", "--data-dir", str(data))
    assert again.returncode == 0 and json.loads(again.stdout)["replayed"]
    for args, field in ((("ada", "26"), "amount of credits"), (("bob", "25"), "user"),
                        (("ada", "25", "--kind", "paid"), "kind")):
        other = cli("users", "grant", *args, "--key", "top-1", "--data-dir", str(data))
        assert other.returncode == 2, other.stderr
        assert f"--key 'top-1' was first used for a grant with a different {field}:" in other.stderr, other.stderr
        assert "000000" not in other.stderr, other.stderr


def test_verify_export_of_a_file_that_is_not_json_names_it(data: Path, tmp_path: Path) -> None:
    """The checkpoint note given where the proof goes said only "FAILED: Expecting value: line 1 column 1"."""
    note = tmp_path / "note.txt"
    note.write_text(cli("ledger", "checkpoint", "--data-dir", str(data)).stdout)
    vkey = cli("keys", "show", "--data-dir", str(data)).stdout.split()[1]
    refused = cli("ledger", "verify-export", str(note), "--public-key", vkey)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"FAILED: {note} is not JSON" in refused.stdout and "ledger proof --out" in refused.stdout, refused.stdout
