"""C2SP signed-note checkpoints and Ed25519 keys."""

import base64
import hashlib

import pytest

from creditflow.domain.checkpoint import Checkpoint, NoteError, open_checkpoint, parse_checkpoint, sign_checkpoint
from creditflow.domain.signing import Keyring, PublicKey, SigningKey

KEY = SigningKey("example.com/log", bytes(range(32)))
ROOT = hashlib.sha256(b"root").digest()


def test_key_id_is_the_c2sp_key_hash() -> None:
    expected = hashlib.sha256(b"example.com/log\n\x01" + KEY.public.key).digest()[:4]
    assert KEY.key_id == expected


def test_vkey_round_trip_and_refusals() -> None:
    assert PublicKey.from_vkey(KEY.public.vkey) == KEY.public
    name, _key_id, blob = KEY.public.vkey.split("+", 2)
    with pytest.raises(ValueError):
        PublicKey.from_vkey(f"{name}+00000000+{blob}")
    with pytest.raises(ValueError):
        PublicKey.from_vkey("nonsense")


def test_a_vkey_whose_key_id_is_written_in_upper_case_is_the_same_key() -> None:
    """The key id is a hexadecimal number (Go's note package parses it as one): its digits' case is no matter."""
    name, key_id, blob = KEY.public.vkey.split("+", 2)
    assert key_id != key_id.upper()  # the id has hex letters to write in capitals
    assert PublicKey.from_vkey(f"{name}+{key_id.upper()}+{blob}") == KEY.public


def test_a_signature_is_64_bytes_and_no_more() -> None:
    """Bytes after a signature are not read as the start of the message: the key's signature of `x` followed by a
    message, with `x` moved to the signature's end, does not verify the message."""
    keyring, key_id, message = Keyring([KEY.public]), KEY.key_id.hex(), b"a tree head"
    signature = KEY.sign(b"x" + message)
    assert keyring.verify(key_id, b"x" + message, signature)
    assert not keyring.verify(key_id, message, signature + b"x")
    assert not keyring.verify(key_id, message, KEY.sign(message)[:63])


def test_note_has_the_c2sp_shape() -> None:
    note = sign_checkpoint(Checkpoint("example.com/log", 8, ROOT), KEY)
    lines = note.split("\n")
    assert lines[:4] == ["example.com/log", "8", base64.b64encode(ROOT).decode(), ""]
    assert lines[4].startswith("\u2014 example.com/log ")
    raw = base64.b64decode(lines[4].rsplit(" ", 1)[1])
    assert raw[:4] == KEY.key_id and len(raw) == 68
    assert note.endswith("\n")


def test_open_verifies_and_parses() -> None:
    note = sign_checkpoint(Checkpoint("example.com/log", 8, ROOT), KEY)
    signed = open_checkpoint(note, Keyring([KEY.public]), "example.com/log")
    assert signed.checkpoint == Checkpoint("example.com/log", 8, ROOT)


@pytest.mark.parametrize("change", [
    lambda n: n.replace("\n8\n", "\n9\n"),
    lambda n: n.replace("example.com/log\n", "evil.com/log\n", 1),
    lambda n: n[:-3] + ("A" if n[-3] != "A" else "B") + n[-2:],
    lambda n: n.replace("\n\n", "\n"),
    lambda n: n.rstrip("\n"),
    lambda n: n.replace("\u2014 example.com/log ", "\u2014 evil.com/log "),  # the signer's name, key id kept
])
def test_any_change_to_the_note_is_refused(change) -> None:
    note = sign_checkpoint(Checkpoint("example.com/log", 8, ROOT), KEY)
    with pytest.raises(NoteError):
        open_checkpoint(change(note), Keyring([KEY.public]), "example.com/log")


def test_unknown_key_and_wrong_origin_are_refused() -> None:
    note = sign_checkpoint(Checkpoint("example.com/log", 8, ROOT), KEY)
    with pytest.raises(NoteError):
        open_checkpoint(note, Keyring([SigningKey.generate("example.com/log").public]))
    with pytest.raises(NoteError):
        open_checkpoint(note, Keyring([KEY.public]), "other.org/log")


def test_rotated_keys_still_verify() -> None:
    new = SigningKey.generate("example.com/log")
    old_note = sign_checkpoint(Checkpoint("example.com/log", 1, ROOT), KEY)
    new_note = sign_checkpoint(Checkpoint("example.com/log", 2, ROOT), new)
    keyring = Keyring([KEY.public, new.public])
    assert open_checkpoint(old_note, keyring).key_ids == (KEY.key_id.hex(),)
    assert open_checkpoint(new_note, keyring).key_ids == (new.key_id.hex(),)


@pytest.mark.parametrize("body", ["o\n01\n" + base64.b64encode(ROOT).decode() + "\n", "o\n1\nxx\n",
                                  "o\n1\n" + base64.b64encode(b"short").decode() + "\n", "\n1\nAA==\n",
                                  "o\n²\n" + base64.b64encode(ROOT).decode() + "\n"])
def test_malformed_bodies(body: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(body)
