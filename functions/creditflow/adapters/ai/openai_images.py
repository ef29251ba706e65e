"""Image generation on any OpenAI-compatible images endpoint, through the official `openai` SDK.

`client.images.generate` with the model's extras (steps as `num_inference_steps`, `seed`, `negative_prompt`, made by
`domain.images.provider_extras`) in `extra_body`. Images come back as base64 or as URLs; a URL is downloaded here,
with a size limit and a timeout, and base64 is held to the same size limit before it is decoded. Failures read as
the chat adapter's: ProviderUnavailable (fall back, charge nothing) for 5xx, 429, timeouts and unusable replies;
ProviderRejected with the provider's message for 400, 413 and 422."""

from __future__ import annotations

import base64
import binascii
import threading
from typing import Any

import openai

from ...domain.errors import ProviderUnavailable
from ...domain.media import GeneratedImage
from ..cpu_turns import away
from ..media.download import DownloadFailed, download
from .refusals import REJECTED, rejected

MAX_DOWNLOAD = 20 * 1024 * 1024


def sniffed_type(data: bytes) -> str | None:
    """The image type the first bytes announce (a cheap first check; Pillow checks the whole image later)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


class OpenAIImages:
    def __init__(self, name: str, base_url: str, api_key: str, timeout: float = 60.0,
                 download_timeout: float = 30.0, max_download: int = MAX_DOWNLOAD,
                 response_format: str | None = "b64_json") -> None:
        self.name = name
        self._settings: dict[str, Any] = {"base_url": base_url, "api_key": api_key, "timeout": timeout}
        self.download_timeout = download_timeout
        self.max_download = max_download
        self.response_format = response_format  # None for endpoints that refuse the field (they send base64)
        self._local = threading.local()

    @property
    def _client(self) -> openai.OpenAI:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = openai.OpenAI(**self._settings, max_retries=0)
        return client

    def generate(self, model: str, prompt: str, width: int, height: int, steps: int, n: int,
                 extras: dict[str, Any] | None = None) -> list[GeneratedImage]:
        """At most `n` images; fewer when the provider delivered fewer (charge for what came), none is a failure.
        `steps` reaches the provider only as extras' num_inference_steps, where the model takes it."""
        extras = dict(extras or {})
        if extras.get("num_inference_steps", steps) != steps:
            raise ValueError("extras' num_inference_steps must be the steps priced")
        options: dict[str, Any] = {"model": model, "prompt": prompt, "size": f"{width}x{height}", "n": n}
        if self.response_format:
            options["response_format"] = self.response_format
        try:
            with away():
                response = self._client.images.generate(**options, extra_body=extras or None)
        except openai.APIStatusError as error:
            if error.status_code in REJECTED:
                raise rejected(self.name, error.status_code, error.body) from error
            raise ProviderUnavailable(f"{self.name} answered {error.status_code}", provider=self.name,
                                      upstream_status=error.status_code) from error
        except openai.APIError as error:  # timeouts, refused connections, a reply that is not JSON
            raise ProviderUnavailable(f"{self.name} could not be reached: {type(error).__name__}",
                                      provider=self.name) from error
        items = list(response.data or [])[:n]
        if not items:
            raise ProviderUnavailable(f"{self.name} returned no images", provider=self.name)
        asked_seed = extras.get("seed") if n == 1 else None
        return [self._image(item, asked_seed) for item in items]

    def _image(self, item: Any, asked_seed: object) -> GeneratedImage:
        if item.b64_json:
            if not isinstance(item.b64_json, str) or len(item.b64_json) > self.max_download * 4 // 3 + 4:
                raise ProviderUnavailable(f"{self.name} sent an inline image over the {self.max_download} bytes "
                                          "accepted", provider=self.name)
            try:
                data = base64.b64decode(item.b64_json, validate=True)
            except (binascii.Error, ValueError) as error:
                raise ProviderUnavailable(f"{self.name} sent an image that is not base64",
                                          provider=self.name) from error
        elif item.url:
            data = self._download(item.url)
        else:
            raise ProviderUnavailable(f"{self.name} sent an image with neither b64_json nor url", provider=self.name)
        content_type = sniffed_type(data)
        if content_type is None:
            raise ProviderUnavailable(f"{self.name} sent bytes that are not an image", provider=self.name)
        seed = (item.model_extra or {}).get("seed", asked_seed)
        return GeneratedImage(data=data, content_type=content_type,
                              seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None)

    def _download(self, url: str) -> bytes:
        try:
            return download(url, timeout=self.download_timeout, max_bytes=self.max_download,
                            schemes=("https://", "http://"))
        except DownloadFailed as failed:
            raise ProviderUnavailable(f"{self.name}'s image URL: {failed.reason}", provider=self.name,
                                      **({"upstream_status": failed.status} if failed.status else {})) from failed
