"""The local runtime's Ed25519 signing key, created on first start in the data folder, and its retired keys."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from ...domain.signing import Keyring, PublicKey, SigningKey


class KeyFiles:
    """keys/signing.json holds the active key (mode 0600); keys/verify.txt every public key ever active."""

    def __init__(self, data_dir: Path, name: str) -> None:
        self.folder = Path(data_dir) / "keys"
        self.name = name

    @property
    def _signing(self) -> Path:
        return self.folder / "signing.json"

    @property
    def _verify(self) -> Path:
        return self.folder / "verify.txt"

    def load_or_create(self) -> tuple[SigningKey, Keyring]:
        if not self._signing.exists():
            self._install(SigningKey.generate(self.name))
        data = json.loads(self._signing.read_text())
        key = SigningKey(data["name"], base64.b64decode(data["seed"]))
        keyring = Keyring(PublicKey.from_vkey(line) for line in self._verify.read_text().split() if line)
        keyring.add(key.public)
        return key, keyring

    def rotate(self) -> SigningKey:
        """Make a new active key; the old one stays in the keyring so its signatures still verify."""
        self.load_or_create()
        key = SigningKey.generate(self.name)
        self._install(key)
        return key

    def _install(self, key: SigningKey) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._verify.open("a") as out:
            out.write(key.public.vkey + "\n")
        temporary = self._signing.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump({"name": key.name, "seed": base64.b64encode(key.seed).decode()}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self._signing)
