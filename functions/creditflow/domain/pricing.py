"""What a call costs, in integer micro-credits: estimates for holds, exact costs from reported usage."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .catalog import IMAGE_TOKENS, Model

PER_MESSAGE_TOKENS = 4  # role and separators, as chat templates add them
REPLY_PRIMER_TOKENS = 3
BYTES_PER_TOKEN_ESTIMATED = 3  # real tokenizers average ~4 UTF-8 bytes a token on English, ~2.5-3 on most scripts
SAFETY_MARGIN_PERCENT = 25  # on the prompt estimate, which counts without the model's tokenizer


def estimate_tokens(texts: Sequence[str]) -> int:
    """An offline estimate of prompt tokens, over on usual text: one token per 3 UTF-8 bytes, plus chat framing
    (for a context's fit, and for a charge the provider reported no usage for; a hold uses `token_bound`)."""
    return sum(-(-len(text.encode()) // BYTES_PER_TOKEN_ESTIMATED) + PER_MESSAGE_TOKENS
               for text in texts) + REPLY_PRIMER_TOKENS


def token_bound(texts: Sequence[str]) -> int:
    """The most tokens `texts` can be, with chat framing: a byte-level BPE tokenizer's every token is at least one
    UTF-8 byte. What a hold covers whatever the text is: the estimate above is beaten 1.3-2.4 times by spaced
    digits, hex, base64, control characters, rare CJK or emoji, and a charge never passes its hold."""
    return sum(len(text.encode()) + PER_MESSAGE_TOKENS for text in texts) + REPLY_PRIMER_TOKENS


def _beyond(part: Mapping[str, Any]) -> dict[str, Any]:
    """A content part's members other than its type, its text and its image's url: passed on with it all the same."""
    extra = {k: v for k, v in part.items() if k not in ("type", "text", "image_url") and v is not None}
    image = part.get("image_url")
    if isinstance(image, Mapping):
        extra.update({f"image_url.{k}": v for k, v in image.items() if k != "url" and v is not None})
    return extra


def message_texts(messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any] | None = None
                  ) -> tuple[list[str], int]:
    """Everything in a request the model reads as tokens, as texts, and the number of images: string or
    text-part content, every other member of a message or a part as JSON (a name, tool calls and results, and
    whatever else a client sent: messages are passed on as sent, and a charge never passes its hold), and the tool
    and response-format schemas."""
    texts: list[str] = []
    images = 0
    for message in messages:
        content = message.get("content")
        beyond: list[dict[str, Any]] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            parts = [part for part in content if isinstance(part, Mapping)]
            texts.append("".join(str(p.get("text", "")) for p in parts if p.get("type") == "text"))
            images += sum(1 for p in parts if p.get("type") == "image_url")
            beyond = [extra for extra in map(_beyond, parts) if extra]
        else:
            texts.append("")
        extra = {k: v for k, v in message.items() if k not in ("role", "content") and v is not None}
        if beyond:
            extra["content"] = beyond
        if extra:
            texts[-1] += json.dumps(extra, ensure_ascii=False, default=str)
    for name in ("tools", "response_format"):
        if options and options.get(name) is not None:
            texts.append(json.dumps(options[name], ensure_ascii=False))
    return texts, images


def prompt_tokens(messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any] | None = None,
                  image_tokens: int = IMAGE_TOKENS) -> int:
    """The prompt's tokens estimated, each image counted as the model's catalog entry says (`image_tokens`)."""
    texts, images = message_texts(messages, options)
    return estimate_tokens(texts) + images * image_tokens


def prompt_bound(messages: Sequence[Mapping[str, Any]], options: Mapping[str, Any] | None = None,
                 image_tokens: int = IMAGE_TOKENS) -> int:
    """The most tokens the prompt can be (`token_bound`), each image counted as for `prompt_tokens`."""
    texts, images = message_texts(messages, options)
    return token_bound(texts) + images * image_tokens


def token_cost(tokens: int, per_million: int) -> int:
    """Micro-credits for `tokens` at `per_million` µc per 1M tokens, rounded up (integers only)."""
    return -(-tokens * per_million // 1_000_000)


@dataclass(frozen=True)
class Estimate:
    prompt_tokens: int
    max_output_tokens: int
    micros: int


def estimate(model: Model, prompt: int, max_output_tokens: int, bound: int = 0) -> Estimate:
    """The hold for a call: the prompt estimate plus the safety margin, or the most the prompt can be (`bound`)
    when that is more, and the whole output allowance."""
    padded = max(prompt + prompt * SAFETY_MARGIN_PERCENT // 100, bound)
    micros = token_cost(padded, model.input_per_million) + token_cost(max_output_tokens, model.output_per_million)
    return Estimate(prompt, max_output_tokens, max(micros, 1))


def cost(model: Model, prompt_tokens: int, completion_tokens: int) -> int:
    return token_cost(prompt_tokens, model.input_per_million) + token_cost(completion_tokens, model.output_per_million)
