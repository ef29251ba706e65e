"""Any OpenAI-compatible endpoint (Nebius AI Studio, OpenAI, a local server) through the official `openai` SDK."""

from __future__ import annotations

from collections.abc import Iterator

import openai

from ...domain.errors import ProviderUnavailable
from ...ports import ChatReply, StreamPiece


class OpenAICompatible:
    def __init__(self, name: str, base_url: str, api_key: str, timeout: float = 60.0) -> None:
        self.name = name
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)

    def complete(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> ChatReply:
        try:
            response = self._client.chat.completions.create(model=model, messages=messages,  # type: ignore[arg-type]
                                                            max_tokens=max_tokens)
        except openai.APIStatusError as error:
            raise ProviderUnavailable(f"{self.name} answered {error.status_code}", provider=self.name,
                                      upstream_status=error.status_code) from error
        except openai.APIError as error:  # timeouts, refused connections
            raise ProviderUnavailable(f"{self.name} could not be reached: {type(error).__name__}",
                                      provider=self.name) from error
        except ValueError as error:  # a reply that is not JSON
            raise ProviderUnavailable(f"{self.name} sent a reply that is not JSON", provider=self.name) from error
        if not response.choices:
            raise ProviderUnavailable(f"{self.name} returned no choices", provider=self.name)
        usage = response.usage
        return ChatReply(text=response.choices[0].message.content or "", model=response.model or model,
                         prompt_tokens=usage.prompt_tokens if usage else None,
                         completion_tokens=usage.completion_tokens if usage else None,
                         finish_reason=response.choices[0].finish_reason)

    def stream(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> Iterator[StreamPiece]:
        try:
            chunks = self._client.chat.completions.create(
                model=model, messages=messages, max_tokens=max_tokens, stream=True,  # type: ignore[arg-type]
                stream_options={"include_usage": True})  # a custom base URL drops usage on streams without it
            for chunk in chunks:
                usage = getattr(chunk, "usage", None)
                choice = chunk.choices[0] if chunk.choices else None
                text = (choice.delta.content or "") if choice is not None and choice.delta is not None else ""
                if text or usage is not None or (choice is not None and choice.finish_reason):
                    yield StreamPiece(text=text, prompt_tokens=usage.prompt_tokens if usage else None,
                                      completion_tokens=usage.completion_tokens if usage else None,
                                      finish_reason=choice.finish_reason if choice is not None else None)
        except openai.APIStatusError as error:
            raise ProviderUnavailable(f"{self.name} answered {error.status_code}", provider=self.name,
                                      upstream_status=error.status_code) from error
        except (openai.APIError, ValueError) as error:  # timeouts, refused or broken streams
            raise ProviderUnavailable(f"{self.name} stream broke: {type(error).__name__}",
                                      provider=self.name) from error
