"""What a call costs, in integer micro-credits: estimates for holds, exact costs from reported usage."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .catalog import Model

PER_MESSAGE_TOKENS = 4  # role and separators, as chat templates add them
REPLY_PRIMER_TOKENS = 3
SAFETY_MARGIN_PERCENT = 25  # on the prompt estimate, which counts without the model's tokenizer


def estimate_tokens(texts: Sequence[str]) -> int:
    """An offline over-estimate of prompt tokens: one token per 3 UTF-8 bytes (real tokenizers average ~4
    bytes per token on English and ~2.5-3 on most other scripts), plus chat framing."""
    return sum(math.ceil(len(text.encode()) / 3) + PER_MESSAGE_TOKENS for text in texts) + REPLY_PRIMER_TOKENS


def token_cost(tokens: int, per_million: int) -> int:
    """Micro-credits for `tokens` at `per_million` µc per 1M tokens, rounded up (integers only)."""
    return -(-tokens * per_million // 1_000_000)


@dataclass(frozen=True)
class Estimate:
    prompt_tokens: int
    max_output_tokens: int
    micros: int


def estimate(model: Model, texts: Sequence[str], max_output_tokens: int) -> Estimate:
    prompt = estimate_tokens(texts)
    padded = prompt + prompt * SAFETY_MARGIN_PERCENT // 100
    micros = token_cost(padded, model.input_per_million) + token_cost(max_output_tokens, model.output_per_million)
    return Estimate(prompt, max_output_tokens, max(micros, 1))


def cost(model: Model, prompt_tokens: int, completion_tokens: int) -> int:
    return token_cost(prompt_tokens, model.input_per_million) + token_cost(completion_tokens, model.output_per_million)
