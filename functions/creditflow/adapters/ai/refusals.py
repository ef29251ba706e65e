"""A provider's refusal of the request itself, told apart from the provider failing."""

from __future__ import annotations

from ...domain.errors import ProviderRejected

REJECTED = frozenset({400, 413, 422})  # the request's fault; 401, 403 and 404 say the provider is set up wrong


def rejected(provider: str, status: int, body: object) -> ProviderRejected:
    """ProviderRejected with the provider's own message, and the parameter and code it named (such as
    content_policy_violation or context_length_exceeded), from OpenAI's error body (the SDK hands over its
    `error` object, or the whole body when it has none)."""
    error = body.get("error", body) if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    message, param, code = error.get("message"), error.get("param"), error.get("code")
    detail = message[:500] if isinstance(message, str) and message else f"the request was refused ({status})"
    return ProviderRejected(f"{provider} refused the request: {detail}", provider=provider, upstream_status=status,
                            param=param if isinstance(param, str) else None,
                            upstream_code=code if isinstance(code, str) else None)
