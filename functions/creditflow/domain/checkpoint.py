"""Tree heads as C2SP tlog-checkpoints wrapped in C2SP signed notes with Ed25519 signatures."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from .signing import Keyring, SigningKey

_DASH = "\u2014 "


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str
    key_ids: tuple[str, ...]


class NoteError(ValueError):
    """A note that is malformed, or carries no signature from a known key that verifies."""


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey) -> str:
    body = checkpoint.body()
    signature = key.sign(body.encode())
    return f"{body}\n{_DASH}{key.name} {base64.b64encode(key.key_id + signature).decode()}\n"


def parse_checkpoint(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[0]:
        raise NoteError("checkpoint body must be origin, size and root hash lines, each ending in a newline")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not (size_text.isascii() and size_text.isdigit()) or (size_text.startswith("0") and size_text != "0"):
        raise NoteError(f"checkpoint tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError as error:
        raise NoteError("checkpoint root hash is not base64") from error
    if len(root) != 32:
        raise NoteError("checkpoint root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root)


def open_checkpoint(note: str, keyring: Keyring, origin: str | None = None) -> SignedCheckpoint:
    """Verify a signed checkpoint note; at least one signature must come from a key in the keyring."""
    body, separator, signatures = note.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise NoteError("a signed note is a text, a blank line, then signature lines")
    body += "\n"
    verified: list[str] = []
    for line in signatures[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise NoteError(f"malformed signature line {line!r}")
        name, _, blob = line[len(_DASH):].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError as error:
            raise NoteError(f"signature of {name!r} is not base64") from error
        key_id = raw[:4].hex()
        known = keyring.get(key_id)
        if known is not None and known.name == name and keyring.verify(key_id, body.encode(), raw[4:]):
            verified.append(key_id)
    if not verified:
        raise NoteError("no signature on the checkpoint verifies with a known key")
    checkpoint = parse_checkpoint(body)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return SignedCheckpoint(checkpoint, note, tuple(verified))
