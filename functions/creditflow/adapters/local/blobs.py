"""Media as files under the data folder, served by HMAC-signed, expiring URLs (`/media/{path}?expires=…&sig=…`).

Each object is one file holding a small JSON header (content type, cache control, metadata) and then the bytes,
written to a temporary file and renamed over the old one: a reader sees the old object or the new one, whole,
and a crash leaves at worst a stray temporary file (its name starts with a dot, which no blob path may)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from ...domain.media import Blob, BlobInfo
from ..media.paths import safe_path, safe_prefix

MAGIC = b"CFBLOB1\n"
MAX_EXPIRY = 7 * 24 * 3600  # as Cloud Storage's V4 URLs


def check_expiry(expires_in: int) -> int:
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 1 <= expires_in <= MAX_EXPIRY:
        raise ValueError(f"a signed URL lasts 1 to {MAX_EXPIRY} seconds, not {expires_in!r}")
    return expires_in


class LocalBlobs:
    def __init__(self, root: Path, secret: bytes, url_prefix: str = "/media",
                 now: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("the URL signing secret must have at least 32 bytes")
        self.root = Path(root)
        self._secret = secret
        self.url_prefix = url_prefix.rstrip("/")
        self.now = now

    def _file(self, path: str) -> Path:
        return self.root / safe_path(path)

    def put(self, path: str, data: bytes, content_type: str, cache_control: str | None = None,
            metadata: dict[str, str] | None = None) -> None:
        target = self._file(path)
        header = json.dumps({"content_type": content_type, "cache_control": cache_control,
                             "metadata": {str(k): str(v) for k, v in (metadata or {}).items()}}).encode()
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(MAGIC + len(header).to_bytes(4, "big") + header)
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, path: str) -> Blob | None:
        try:
            raw = self._file(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        header, data = _split(raw, path)
        return Blob(path=path, data=data, content_type=header["content_type"], cache_control=header["cache_control"],
                    metadata=header["metadata"])

    def delete(self, path: str) -> bool:
        try:
            self._file(path).unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False
        return True

    def list(self, prefix: str) -> list[BlobInfo]:
        prefix = safe_prefix(prefix)
        start = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if not start.is_dir():
            return []
        found = []
        for folder, folders, files in os.walk(start):
            folders[:] = [name for name in folders if not name.startswith(".")]
            for name in files:
                if name.startswith("."):
                    continue
                file = Path(folder) / name
                path = file.relative_to(self.root).as_posix()
                if path.startswith(prefix):
                    try:
                        with file.open("rb") as handle:
                            head = handle.read(len(MAGIC) + 4)
                            length = int.from_bytes(head[len(MAGIC):], "big")
                            header = json.loads(handle.read(length))
                            size = os.fstat(handle.fileno()).st_size - len(MAGIC) - 4 - length
                    except FileNotFoundError:  # deleted since the folder was read: gone, as it would be listed next
                        continue
                    found.append(BlobInfo(path=path, size=size, content_type=header["content_type"]))
        return sorted(found, key=lambda info: info.path)

    def _signature(self, path: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"creditflow media\n{path}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def signed_url(self, path: str, expires_in: int) -> str:
        expires = int(self.now()) + check_expiry(expires_in)
        return (f"{self.url_prefix}/{quote(safe_path(path), safe='/')}?expires={expires}"
                f"&sig={self._signature(path, expires)}")

    def verify(self, path: str, expires: str, sig: str) -> bool:
        """Whether a request for `path` with these query values may be served: the signature was made here for
        exactly this path and expiry, and the expiry has not passed. Compared in constant time."""
        try:
            safe_path(path)
        except ValueError:
            return False
        if not isinstance(expires, str) or not expires.isascii() or not expires.isdigit() or len(expires) > 12:
            return False
        if not isinstance(sig, str) or not sig.isascii():
            return False
        if int(expires) < self.now():
            return False
        return hmac.compare_digest(self._signature(path, int(expires)).encode(), sig.encode())


def _split(raw: bytes, path: str) -> tuple[dict, bytes]:
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 4:
        raise ValueError(f"blob {path!r} is not a Creditflow blob file")
    length = int.from_bytes(raw[len(MAGIC):len(MAGIC) + 4], "big")
    start = len(MAGIC) + 4
    return json.loads(raw[start:start + length]), raw[start + length:]
