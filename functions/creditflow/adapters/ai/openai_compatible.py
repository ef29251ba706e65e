"""Any OpenAI-compatible endpoint (Nebius AI Studio, OpenAI, a local server) through the official `openai` SDK."""

from __future__ import annotations

import openai

from ...domain.errors import ProviderUnavailable
from ...ports import ChatReply


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
