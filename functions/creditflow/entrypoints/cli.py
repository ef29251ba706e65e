"""`creditflow serve | ledger … | users … | keys …`: operate and verify a Creditflow ledger from a shell."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..config import ConfigurationError, LocalDefaults
from ..domain.errors import IdempotencyConflict, InvalidAmount, LedgerError
from ..domain.money import parse_credits

if TYPE_CHECKING:
    from ..config import Settings

DEFAULTS = LocalDefaults.from_env()


def _print(data: BaseModel | dict[str, Any]) -> None:
    """JSON as the API writes it: camelCase, amounts as {credits, micros} (the API's response models)."""
    print(data.model_dump_json(indent=2) if isinstance(data, BaseModel) else json.dumps(data, indent=2))


def _existing_data(args: argparse.Namespace) -> Path:
    """The data folder of a platform that has run: a mistyped folder must not be audited as a new, clean ledger."""
    folder = Path(args.data_dir)
    if not (folder / "ledger.sqlite3").is_file():
        print(f"error: no Creditflow ledger in {folder.resolve()}; give the folder `make run` uses with --data-dir "
              "(or CREDITFLOW_DATA_DIR), or start the platform there first", file=sys.stderr)
        raise SystemExit(2)
    return folder


def _settings(args: argparse.Namespace) -> Settings:  # deferred import keeps `--help` fast
    from ..config import Settings

    return Settings.from_env(runtime="local", data_dir=_existing_data(args))


def _platform(args: argparse.Namespace):
    from ..bootstrap import beside_runtime, build

    return beside_runtime(build(_settings(args)))


def _findings(findings: list, ok_message: str) -> int:
    for finding in findings:
        print(f"{finding.severity.upper()} [{finding.check}] {finding.subject}: {finding.detail}")
    errors = [f for f in findings if f.severity == "error"]
    print(ok_message if not errors else f"FAILED: {len(errors)} problem(s)")
    return 0 if not errors else 1


def cmd_verify(args: argparse.Namespace) -> int:
    platform = _platform(args)
    integrity = platform.integrity
    if args.entry is not None:  # given, even empty: that entry, not every chain
        result = integrity.verify_entry(args.entry)
        from .http.views import verification_out

        _print(verification_out(result))
        return 0 if result.ok else 1
    findings = integrity.validate_chains(signatures=not args.no_signatures)
    if args.checkpoint:
        # saved by hand, it may have lost its last newline or gained one: a note ends with exactly one
        findings += integrity.check_presented(Path(args.checkpoint).read_text().rstrip("\n") + "\n")
    return _findings(findings, "OK: every chain verifies" + (" and the checkpoint is consistent"
                                                              if args.checkpoint else ""))


def cmd_audit(args: argparse.Namespace) -> int:
    platform = _platform(args)
    if args.user is not None:
        platform.credits.balance(args.user)  # no such account: said so, not "audits clean" over nothing
    report = platform.integrity.audit(args.user, signatures=not args.no_signatures)
    if args.json:
        from .http.views import audit_out

        _print(audit_out(report))
        return 0 if report.ok else 1
    print(f"audit of {report.scope}: {report.accounts} accounts, {report.entries} entries, "
          f"tree size {report.tree_size}, latest checkpoint {report.checkpoint_size}")
    print("totals: " + ", ".join(f"{name}={value}" for name, value in report.totals.items()))
    if report.idempotency_conflicts:
        print(f"idempotency conflicts seen: {len(report.idempotency_conflicts)}")
    return _findings(report.findings, "OK: the ledger audits clean")


def cmd_proof(args: argparse.Namespace) -> int:
    export = _platform(args).integrity.export_entry(args.entry)
    text = json.dumps(export, indent=2)
    if args.out:
        out = Path(args.out).resolve()  # relative to where the command was run
        out.write_text(text + "\n")
        print(f"wrote {out}")
    else:
        print(text)
    return 0


def cmd_checkpoint(args: argparse.Namespace) -> int:
    print(_platform(args).integrity.publish_checkpoint(rehash=True).note, end="")  # refuses a rewritten log
    return 0


def cmd_consistency(args: argparse.Namespace) -> int:
    result = _platform(args).integrity.consistency(args.old, args.new)
    from .http.views import consistency_out

    _print(consistency_out(result))
    return 0 if result.consistent else 1


def cmd_verify_export(args: argparse.Namespace) -> int:
    """Check an exported entry with nothing but the public key: no data folder, no network."""
    from ..domain.proofs import verify_export
    from ..domain.signing import Keyring, PublicKey

    source = Path(args.public_key)
    # a file of keys: one a line, or as `keys show` prints them ("active: …", "verify: …"), labels skipped
    vkeys = [word for word in dict.fromkeys(source.read_text().split()) if not word.endswith(":")] \
        if source.exists() else [args.public_key]
    try:
        keyring = Keyring(PublicKey.from_vkey(vkey) for vkey in vkeys)
        text = Path(args.export).read_text()
    except (ValueError, OSError) as error:
        print(f"FAILED: {error}")
        return 1
    try:
        export = json.loads(text)
    except ValueError as error:  # JSON's own words ("Expecting value: line 1 column 1") named no file
        print(f"FAILED: {args.export} is not JSON ({error}): give the file `ledger proof --out` wrote")
        return 1
    return _findings(verify_export(export, keyring), "OK: signature, canonical form and inclusion in the signed "
                                                      "checkpoint all verify")


def cmd_keys_show(args: argparse.Namespace) -> int:
    platform = _platform(args)
    print(f"active: {platform.key.public.vkey}")
    for key in platform.keyring.public_keys():
        print(f"verify: {key.vkey}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from ..bootstrap import rotate_key_files
    from .local_runtime import KEY_CHECK_SECONDS, runtime_holding

    settings = _settings(args)
    if settings.signing_key:
        print("error: the signing key comes from LEDGER_SIGNING_KEY, not from the key files: rotate it there (and "
              "list the old verifier key in LEDGER_VERIFY_KEYS)", file=sys.stderr)
        return 2
    key = rotate_key_files(settings)
    print(f"active: {key.public.vkey}")
    print(f"old keys keep verifying; dev tokens are unaffected; key files in {(settings.data_dir / 'keys').resolve()}")
    holder = runtime_holding(settings.data_dir)
    if holder is not None:
        print(f"the runtime serving this folder (PID {holder}) signs with the new key within {KEY_CHECK_SECONDS:g} s; "
              "no restart needed")
    return 0


def cmd_users_open(args: argparse.Namespace) -> int:
    account = _platform(args).credits.open_account(args.uid)
    _print({"account": account.id, "status": account.status})
    return 0


def moment(text: str) -> datetime:
    """An ISO 8601 time from the command line; one without an offset is UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time like 2027-01-31T12:00:00Z") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def tcp_port(text: str) -> int:
    """A TCP port from the command line; 0 takes any free one."""
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535; 0 takes any free port)")
    return int(text)


def lifetime(text: str) -> int:
    """A token's lifetime in seconds: a whole number above zero (0 or less made a token expired when printed)."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a lifetime: a whole number of seconds, 1 or more")
    return int(text)


def cmd_users_grant(args: argparse.Namespace) -> int:
    from .http.views import grant_out

    amount = parse_credits(args.credits)
    if amount <= 0:  # said in credits, as typed (the ledger's own refusal counts micro-credits)
        raise InvalidAmount(f"a grant is of more than 0 credits, not {args.credits}")
    credits = _platform(args).credits
    account = credits.open_account(args.uid).id  # a user may be granted credits before they first sign in
    try:
        result = credits.grant(args.uid, amount, source=args.source, lot_kind=args.kind, key=args.key,
                               expires_at=args.expires, reference=args.reference)
    except IdempotencyConflict as conflict:  # the ledger's words name its values (micro-credits, its field names)
        kept = str(conflict.context.get("field"))
        field = {"amount": "amount of credits", "account": "user", "lot_kind": "kind", "expires_at": "expiry"}.get(
            kept, kept)
        raise IdempotencyConflict(f"--key {args.key!r} was first used for a grant with a different {field}: the "
                                  "same key and grant again is a retry, answered with the first; another grant "
                                  "needs a new key", key=args.key, field=field) from conflict
    _print(grant_out(account, amount, result))
    return 0


def cmd_users_balance(args: argparse.Namespace) -> int:
    from .http.views import balance_out

    _print(balance_out(_platform(args).credits.balance(args.uid)))
    return 0


def cmd_dev_token(args: argparse.Namespace) -> int:
    """Print a local dev token (the local runtime accepts them when no Auth emulator runs)."""
    from ..bootstrap import issue_dev_token
    from ..domain.accounts import user_account

    user_account(args.uid)  # refuses a malformed uid
    if args.unverified and args.email is None:
        print("error: --unverified needs --email (a token without an email has no verified email already)",
              file=sys.stderr)
        return 2
    print(issue_dev_token(_settings(args), args.uid, admin=args.admin, email=args.email,
                          email_verified=not args.unverified, ttl_seconds=args.ttl))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .local_runtime import serve

    return serve(host=args.host, port=args.port, data_dir=Path(args.data_dir))


DATA_DIR_HELP = "the local data folder (default: $CREDITFLOW_DATA_DIR, else ./.creditflow)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="creditflow", description="Creditflow: credits, a signed ledger and "
                                   "metered AI on Firebase or on one machine.")
    # before the command as after it (`creditflow --data-dir D users balance u`): a subcommand's default would
    # overwrite the root's value, so both default to None and `main` settles it
    root.add_argument("--data-dir", dest="root_data_dir", metavar="DATA_DIR", help=DATA_DIR_HELP)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(group: Any, name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        command = group.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        if handler is not cmd_verify_export:
            command.add_argument("--data-dir", help=DATA_DIR_HELP)
        return command

    serve = add(commands, "serve", cmd_serve, "run the local platform (embedded SQLite store)")
    serve.add_argument("--host", default=DEFAULTS.host,
                       help=f"the address to listen on (default: $CREDITFLOW_HOST, else {DEFAULTS.host})")
    serve.add_argument("--port", type=tcp_port, default=DEFAULTS.port,  # converted too
                       help=f"the port (0: a free one; default: $CREDITFLOW_PORT, else {DEFAULTS.port})")

    token = add(commands, "dev-token", cmd_dev_token, "print a local dev token for a user")
    token.add_argument("uid")
    token.add_argument("--admin", action="store_true", help="with the admin claim")
    token.add_argument("--email", help="the email claim, verified (without it: no email, none verified)")
    token.add_argument("--unverified", action="store_true", help="the --email given is not verified")
    token.add_argument("--ttl", type=lifetime, default=3600, help="lifetime in seconds")

    ledger = commands.add_parser("ledger", help="verify, audit and prove the ledger").add_subparsers(
        dest="ledger_command", required=True, metavar="ACTION")
    verify = add(ledger, "verify", cmd_verify, "verify every chain, one entry, or a presented checkpoint")
    verify.add_argument("--entry", help="verify this entry: signature, chain link, inclusion")
    verify.add_argument("--checkpoint", help="a signed checkpoint note someone was shown: is it consistent?")
    verify.add_argument("--no-signatures", action="store_true", help="skip signature checks (faster)")
    audit = add(ledger, "audit", cmd_audit, "full audit: conservation, balances, chains, Merkle log, checkpoints")
    audit.add_argument("--user", help="audit only this user's account")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument("--no-signatures", action="store_true", help="skip signature checks (faster)")
    proof = add(ledger, "proof", cmd_proof, "export an entry with its inclusion proof and signed checkpoint")
    proof.add_argument("entry")
    proof.add_argument("--out", help="write the export to this file")
    add(ledger, "checkpoint", cmd_checkpoint, "sequence new entries and publish a signed checkpoint")
    consistency = add(ledger, "consistency", cmd_consistency, "consistency proof between two checkpoints")
    consistency.add_argument("old", type=int)
    consistency.add_argument("new", type=int, nargs="?", help="default: the latest checkpoint")
    export = add(ledger, "verify-export", cmd_verify_export, "check an exported entry offline with the public key")
    export.add_argument("export", help="the file `ledger proof --out` wrote")
    export.add_argument("--public-key", required=True,
                        help="the verifier key (name+id+key), or a file of them (`keys show > keys.txt` makes one)")

    keys = commands.add_parser("keys", help="the ledger signing keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION")
    add(keys, "show", cmd_keys_show, "print the active key and every key accepted for verification")
    add(keys, "rotate", cmd_keys_rotate, "make a new active signing key; old keys still verify")

    users = commands.add_parser("users", help="accounts and grants").add_subparsers(
        dest="users_command", required=True, metavar="ACTION")
    add(users, "open", cmd_users_open, "open a user's account").add_argument("uid")
    grant = add(users, "grant", cmd_users_grant, "grant credits to a user")
    grant.add_argument("uid")
    grant.add_argument("credits", help="decimal credits, e.g. 12.5")
    grant.add_argument("--key", required=True, help="idempotency key")
    grant.add_argument("--source", default="admin", choices=["admin", "welcome", "stripe", "crypto"])
    grant.add_argument("--kind", default="promotional", choices=["promotional", "paid"])
    grant.add_argument("--expires", type=moment, help="ISO 8601 expiry time (UTC unless it gives an offset)")
    grant.add_argument("--reference", help="payment reference")
    add(users, "balance", cmd_users_balance, "show a user's balance").add_argument("uid")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.handler is not cmd_verify_export:
        args.data_dir = args.data_dir or args.root_data_dir or DEFAULTS.data_dir
    try:
        return int(args.handler(args))
    except LedgerError as error:
        print(f"error: {error.title}: {error.detail}", file=sys.stderr)
        return 2
    except ConfigurationError as error:  # a variable the platform cannot start with: said without a traceback
        print(f"error: configuration: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a file named on the command line that cannot be read or written
        print(f"error: {error.filename}: {error.strerror}" if error.filename else f"error: {error}",
              file=sys.stderr)
        return 2
    except sqlite3.OperationalError as error:  # a read-only folder, say: SQLite writes its WAL files even to read
        print(f"error: the data folder's databases cannot be opened ({error}); the commands need to write in "
              f"{Path(args.data_dir).resolve()}, even to read (SQLite's WAL files): copy a read-only backup to a "
              "folder of your own first", file=sys.stderr)
        return 2
