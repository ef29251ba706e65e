"""Downloads with a size limit and a deadline over the whole transfer (not only per read), through httpx2."""

from __future__ import annotations

import time

import httpx2


class DownloadFailed(Exception):
    """Not downloaded: what went wrong, and the HTTP status when there was one."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


def download(url: str, *, timeout: float, max_bytes: int, schemes: tuple[str, ...] = ("https://",)) -> bytes:
    if not url.startswith(schemes):
        raise DownloadFailed(f"the URL is not {' or '.join(s.rstrip(':/') for s in schemes)}")
    try:
        with httpx2.Client(timeout=timeout, follow_redirects=True) as http, http.stream("GET", url) as reply:
            if reply.status_code != 200:
                raise DownloadFailed(f"the URL answered {reply.status_code}", reply.status_code)
            declared = reply.headers.get("content-length")
            if declared and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                raise DownloadFailed(f"it is {declared} bytes, over the {max_bytes} accepted")
            data, deadline = bytearray(), time.monotonic() + timeout
            for chunk in reply.iter_bytes():
                data += chunk
                if time.monotonic() > deadline:
                    raise DownloadFailed(f"it took over {timeout:g} s")
                if len(data) > max_bytes:
                    raise DownloadFailed(f"it is over the {max_bytes} bytes accepted")
            return bytes(data)
    except httpx2.HTTPError as error:  # timeouts, refused or cut connections
        raise DownloadFailed(f"it could not be downloaded: {type(error).__name__}") from error
