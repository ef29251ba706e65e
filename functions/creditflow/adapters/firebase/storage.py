"""Media in Cloud Storage (google-cloud-storage), served by V4 signed URLs.

Signing needs a key. Given `signing_credentials` (a service account's, with its private key) it signs locally; on
Cloud Functions the runtime's credentials hold no key, so it signs through IAM's signBlob with the function's
service account (which then needs roles/iam.serviceAccountTokenCreator on itself), as the library documents."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from google.api_core import exceptions as gcs_errors

from ...domain.media import Blob, BlobInfo
from ..local.blobs import check_expiry
from ..media.paths import safe_path, safe_prefix


class CloudStorageBlobs:
    def __init__(self, bucket: str, client: Any = None, signing_credentials: Any = None) -> None:
        from google.cloud.storage import Client

        self._client = client or Client()
        self._bucket = self._client.bucket(bucket)
        self._signing = signing_credentials
        self._runtime: Any = None  # the runtime's own credentials, refreshed only when their token lapses

    def put(self, path: str, data: bytes, content_type: str, cache_control: str | None = None,
            metadata: dict[str, str] | None = None) -> None:
        blob = self._bucket.blob(safe_path(path))
        blob.cache_control = cache_control
        blob.metadata = {str(k): str(v) for k, v in (metadata or {}).items()} or None
        blob.upload_from_string(bytes(data), content_type=content_type)

    def get(self, path: str) -> Blob | None:
        """Metadata and bytes of one generation of the object: replaced in between, it is read again."""
        for _ in range(3):
            blob = self._bucket.get_blob(safe_path(path))
            if blob is None:
                return None
            # read before the download, which resets them from its response headers
            content_type, cache_control = blob.content_type or "application/octet-stream", blob.cache_control
            metadata = dict(blob.metadata or {})
            try:
                data = blob.download_as_bytes(if_generation_match=blob.generation)
            except gcs_errors.NotFound:
                return None
            except gcs_errors.PreconditionFailed:
                continue
            return Blob(path=path, data=data, content_type=content_type, cache_control=cache_control,
                        metadata=metadata)
        raise gcs_errors.ServiceUnavailable(f"blob {path!r} kept changing while it was read")

    def delete(self, path: str) -> bool:
        try:
            self._bucket.blob(safe_path(path)).delete()
        except gcs_errors.NotFound:
            return False
        return True

    def list(self, prefix: str) -> list[BlobInfo]:
        blobs = self._client.list_blobs(self._bucket, prefix=safe_prefix(prefix) or None)
        return sorted((BlobInfo(path=blob.name, size=int(blob.size or 0),
                                content_type=blob.content_type or "application/octet-stream") for blob in blobs),
                      key=lambda info: info.path)

    def signed_url(self, path: str, expires_in: int) -> str:
        blob = self._bucket.blob(safe_path(path))
        options: dict[str, Any] = {"version": "v4", "method": "GET",
                                   "expiration": timedelta(seconds=check_expiry(expires_in))}
        if self._signing is not None:
            options["credentials"] = self._signing
        else:  # the runtime's service account signs through IAM
            import google.auth
            from google.auth.transport.requests import Request

            if self._runtime is None:
                self._runtime, _ = google.auth.default()
            if not self._runtime.valid:
                self._runtime.refresh(Request())
            options.update(service_account_email=self._runtime.service_account_email,
                           access_token=self._runtime.token)
        return blob.generate_signed_url(**options)
