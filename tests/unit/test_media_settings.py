"""The media settings read from the environment, and refused when they cannot work."""

from __future__ import annotations

import pytest

from creditflow.config import Settings


def test_defaults_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env()
    assert (settings.media_bucket, settings.media_url_seconds, settings.media_max_upload_bytes) == (
        None, 3600, 20 * 1024 * 1024)
    monkeypatch.setenv("MEDIA_BUCKET", "demo-creditflow.appspot.com")
    monkeypatch.setenv("MEDIA_URL_SECONDS", "600")
    assert (Settings.from_env().media_bucket, Settings.from_env().media_url_seconds) == (
        "demo-creditflow.appspot.com", 600)


@pytest.mark.parametrize(("name", "value", "why"), [
    ("MEDIA_URL_SECONDS", "0", "MEDIA_URL_SECONDS"), ("MEDIA_URL_SECONDS", "604801", "7 days"),
    ("MEDIA_BUCKET", "Not A Bucket", "bucket name"), ("MEDIA_BUCKET", "gs://x", "bucket name"),
    ("MEDIA_MAX_UPLOAD_BYTES", "10", "MEDIA_MAX_UPLOAD_BYTES"),
])
def test_settings_that_cannot_work_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                why: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=why):
        Settings.from_env()
