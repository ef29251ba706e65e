"""The local runtime's Ed25519 signing key, created on first start in the data folder, and its retired keys."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from ...domain.signing import Keyring, PublicKey, SigningKey

Stamp = tuple[tuple[int, int, int] | None, ...]


class KeyFiles:
    """keys/signing.json holds the active key (mode 0600); keys/verify.txt every public key ever active; and
    keys/<purpose>.secret the secrets a rotation must leave alone (the dev tokens' key), each made once."""

    def __init__(self, data_dir: Path, name: str) -> None:
        self.folder = Path(data_dir) / "keys"
        self.name = name

    @property
    def _signing(self) -> Path:
        return self.folder / "signing.json"

    @property
    def _verify(self) -> Path:
        return self.folder / "verify.txt"

    def made(self) -> bool:
        """Whether the folder has its signing key."""
        return self._signing.exists()

    def load_or_create(self) -> tuple[SigningKey, Keyring]:
        """The active key; the first start makes it. Processes starting at once on a new folder all end up with
        the one key that was installed first (the others' never sign: see `_install`)."""
        if not self._signing.exists():
            self._install(SigningKey.generate(self.name), first=True)
        return self.load()

    def load(self) -> tuple[SigningKey, Keyring]:
        """The active key and every key to verify with, as the files hold them now."""
        data = json.loads(self._signing.read_text())
        key = SigningKey(data["name"], base64.b64decode(data["seed"]))
        keyring = Keyring(PublicKey.from_vkey(line) for line in self._verify.read_text().split() if line)
        keyring.add(key.public)
        return key, keyring

    def stamp(self) -> Stamp:
        """What the key files are now (inode, modification time, size): a change means a rotation happened."""

        def of(path: Path) -> tuple[int, int, int] | None:
            try:
                status = path.stat()
            except FileNotFoundError:
                return None
            return status.st_ino, status.st_mtime_ns, status.st_size

        return of(self._signing), of(self._verify)

    def rotate(self) -> SigningKey:
        """Make a new active key; the old one stays in the keyring so its signatures still verify."""
        self.load_or_create()
        key = SigningKey.generate(self.name)
        self._install(key)
        return key

    def secret(self, purpose: str, first: Callable[[], bytes]) -> bytes:
        """The secret kept for `purpose`, made by `first()` the first time it is asked for and never changed after,
        whatever happens to the signing key. Two processes asking at once keep the same one (the file is created
        whole, once: the loser reads the winner's)."""
        path = self.folder / f"{purpose.replace(' ', '-')}.secret"
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._place(path, {"purpose": purpose, "secret": base64.b64encode(first()).decode()}, replace=False)
        return base64.b64decode(json.loads(path.read_text())["secret"])

    def _install(self, key: SigningKey, *, first: bool = False) -> None:
        """Make `key` the active one, listed for verification before it can sign. The `first` key is kept only if
        no other process installed one meanwhile: that one stays, and this one never signs."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._verify.open("a") as out:
            out.write(key.public.vkey + "\n")
        self._place(self._signing, {"name": key.name, "seed": base64.b64encode(key.seed).decode()}, replace=not first)

    def _place(self, path: Path, data: dict[str, str], *, replace: bool) -> None:
        """Write `path` whole, through a temporary file of this caller's own (a shared name let one process rename
        or truncate another's); unless `replace`, it is linked into place, which keeps a file another process made
        first."""
        temporary = path.with_suffix(f".{secrets.token_hex(8)}.tmp")
        self._write_private(temporary, data)
        try:
            if replace:
                os.replace(temporary, path)
            else:
                os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)

    @staticmethod
    def _write_private(path: Path, data: dict[str, str]) -> None:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(data, out)
            out.flush()
            os.fsync(out.fileno())
