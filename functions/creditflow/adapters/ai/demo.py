"""The offline `demo` provider: deterministic text, token counts and embeddings, labelled as demo in every reply."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from ...domain.pricing import estimate_tokens, prompt_tokens
from ...domain.replies import ChatReply, Embedded, StreamPiece
from ...domain.vision import image_parts, image_source
from ...ports import ImageTools, Messages

WORDS = ("credits", "ledger", "signed", "merkle", "reserve", "settle", "stream", "model", "token", "demo")
DIMENSIONS = 256


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def demo_vector(text: str) -> list[float]:
    """A bag of hashed words, normalised: texts that share words point the same way, so recall works offline."""
    vector = [0.0] * DIMENSIONS
    for word in _words(text):
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % DIMENSIONS] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


EXPRESSION = re.compile(r"[(\d][\d\s.()]*(?:[-+*/%^][\d\s.()]*)+\d\)*")  # digits with at least one operator
DRAWING = re.compile(r"\b(?:draw|paint|(?:an? )?(?:image|picture) of)\b\s*(.*)", re.IGNORECASE | re.DOTALL)


def said(answer: str) -> str:
    """A tool's answer as a reply puts it: an image task started is named, with its price, not shown as JSON."""
    try:
        started = json.loads(answer)
    except ValueError:
        return answer
    if isinstance(started, dict) and "taskId" in started:
        return f"image task {started['taskId']} started ({started.get('price', '?')} credits held; see Images)"
    return answer


def demo_tool_use(messages: Messages, options: dict[str, Any] | None) -> tuple[str, list[dict[str, Any]]] | None:
    """What the demo does with tools, so that an agent shows its tool calls offline: asked with tools, it calls
    `arithmetic` on the first expression in the user's text and `start_image_task` when the text asks to draw (or
    for an image or a picture of something); once the tools have answered, it says what they answered. It keeps
    to `tool_choice`: "none" calls nothing, "required" or a named function always calls (with the plainest
    arguments the function's parameters admit when nothing fits). None when no tool is offered or none fits: the
    plain demo reply."""
    tools = {tool["function"]["name"]: tool["function"] for tool in (options or {}).get("tools") or []}
    choice = (options or {}).get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    last_user = max((n for n, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    answered = [str(m.get("content", "")) for m in messages[last_user + 1:] if m.get("role") == "tool"]
    if answered and choice == "auto":
        return "[demo reply, not a real model] the tools answered: " + "; ".join(map(said, answered)), []
    text = str(messages[last_user].get("content", "")) if last_user >= 0 else ""
    planned: list[tuple[str, Any]] = []
    expression = EXPRESSION.search(text)
    if "arithmetic" in tools and expression:
        planned.append(("arithmetic", {"expression": expression.group(0).strip()}))
    drawing = DRAWING.search(text)
    if "start_image_task" in tools and drawing:
        planned.append(("start_image_task", {"prompt": (drawing.group(1).strip() or text)[:500]}))
    if isinstance(choice, dict):  # {"type": "function", "function": {"name": …}}: that function, and it alone
        named = choice["function"]["name"]
        planned = [call for call in planned if call[0] == named] or [
            (named, demo_instance(tools[named].get("parameters") or {"type": "object"}))]
    elif choice == "required" and not planned:
        first = next(iter(tools.values()))
        planned = [(first["name"], demo_instance(first.get("parameters") or {"type": "object"}))]
    if not planned:
        return None
    return "", [{"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for n, (name, args) in enumerate(planned, 1)]


def demo_instance(schema: dict[str, Any], budget: list[int] | None = None) -> Any:
    """The plainest value a JSON schema admits (an object's required members, an enum's first value, a number's
    minimum), so that a request for structured output gets JSON its schema accepts. At most `budget[0]` values
    are made (1024 by default): past it, arrays stop short, as a real model's reply is cut at its max_tokens."""
    budget = [1024] if budget is None else budget
    budget[0] -= 1
    for choice in ("const", "enum", "anyOf", "oneOf"):
        if choice in schema:
            options = schema[choice]
            if choice == "const":
                return options
            if not isinstance(options, list) or not options:  # admits nothing: the demo says null
                return None
            return options[0] if choice == "enum" else demo_instance(options[0], budget)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        members = schema.get("properties", {})
        return {name: demo_instance(members.get(name, {}), budget) for name in schema.get("required", [])}
    if kind == "array":
        items: list[Any] = []
        while len(items) < int(schema.get("minItems", 0)) and budget[0] > 0:
            items.append(demo_instance(schema.get("items", {}), budget))
        return items
    if kind in ("integer", "number"):
        least = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return min(least, schema.get("maximum", least))
    return {"string": "demo", "boolean": False}.get(kind)


def stopped(text: str, options: dict[str, Any] | None) -> str:
    """A reply ended at the first of the request's `stop` sequences, as a model ends it."""
    stop = (options or {}).get("stop") or []
    for sequence in [stop] if isinstance(stop, str) else stop:
        if sequence and sequence in text:
            text = text[:text.index(sequence)]
    return text


def cut(text: str, max_tokens: int) -> tuple[str, str]:
    """A reply cut at `max_tokens` (the demo's tokens are 3 bytes, as its estimate counts them), and its finish
    reason: "length" when cut, else "stop"."""
    room = 3 * max_tokens
    if len(text.encode()) <= room:
        return text, "stop"
    return text.encode()[:room].decode(errors="ignore"), "length"


def structured(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema a request for structured output gives (`{}` for a JSON object of any shape); None: free text."""
    wanted = (options or {}).get("response_format") or {}
    if wanted.get("type") == "json_schema":
        return dict(wanted.get("json_schema", {}).get("schema") or {})
    return {} if wanted.get("type") == "json_object" else None


class DemoProvider:
    name = "demo"

    def __init__(self, images: ImageTools | None = None) -> None:
        self.images = images  # reads the images of vision requests (sizes, colours)

    def complete(self, model: str, messages: Messages, max_tokens: int,
                 options: dict[str, Any] | None = None) -> ChatReply:
        seen = self._seen(messages)
        if seen:
            text = "[demo vision, not a real model] " + " ".join(seen)
            return ChatReply(text=text, model=model, prompt_tokens=prompt_tokens(messages, options, 256),
                             completion_tokens=min(max_tokens, estimate_tokens([text])), finish_reason="stop")
        schema = structured(options)
        if schema is not None:  # JSON its schema accepts: the demo is labelled by its model's catalog entry
            text, finish = cut(json.dumps(demo_instance(schema, [max_tokens]) if schema else {"demo": True}),
                               max_tokens)
            return ChatReply(text=text, model=model, prompt_tokens=prompt_tokens(messages, options),
                             completion_tokens=min(max_tokens, estimate_tokens([text])), finish_reason=finish)
        planned = demo_tool_use(messages, options)
        if planned is not None:
            text, calls = planned
            return ChatReply(text=text, model=model, prompt_tokens=prompt_tokens(messages, options),
                             completion_tokens=min(max_tokens, 6 + estimate_tokens([text, str(calls)])),
                             finish_reason="tool_calls" if calls else "stop", tool_calls=calls or None)
        digest = hashlib.sha256("\n".join(str(m.get("content", "")) for m in messages).encode()).digest()
        wanted = 8 + digest[0] % 24  # words, each a token, after a prefix of 6
        count = min(max_tokens, wanted)
        words = " ".join(WORDS[b % len(WORDS)] for b in digest[:count])
        text = stopped(f"[demo reply, not a real model] {words}", options)
        return ChatReply(text=text, model=model, prompt_tokens=prompt_tokens(messages, options),
                         completion_tokens=min(max_tokens, count + 6),
                         finish_reason="length" if wanted + 6 > max_tokens else "stop")

    def _seen(self, messages: Messages) -> list[str]:
        """What can be told of each inline image without a model: its size and its dominant colours."""
        if self.images is None:
            return []
        said = []
        for n, (_, _, part) in enumerate(image_parts(messages), 1):
            source = image_source(part["image_url"]["url"])
            if source.data is None:
                continue
            facts = self.images.inspect(source.data)
            colours = ", ".join(f"{hex_} ({share}%)" for hex_, share in self.images.dominant_colours(source.data, 3))
            said.append(f"Image {n}: a {facts.width}×{facts.height} {facts.format} image; dominant colours "
                        f"{colours}.")
        return said

    def stream(self, model: str, messages: Messages, max_tokens: int,
               options: dict[str, Any] | None = None) -> Iterator[StreamPiece]:
        reply = self.complete(model, messages, max_tokens, options)
        if reply.tool_calls:  # one delta with every call whole, as a provider may send them
            yield StreamPiece(tool_calls=[{"index": n, **call} for n, call in enumerate(reply.tool_calls)])
        else:
            words = reply.text.split(" ")
            for n, word in enumerate(words):
                yield StreamPiece(text=word if n == 0 else " " + word)
        yield StreamPiece(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                          finish_reason=reply.finish_reason)

    def chain(self, model: str, messages: Messages, max_tokens: int) -> ChatReply:
        from .chains import run_step
        from .demo_chain import DemoChatModel

        return run_step(DemoChatModel(provider=self, model=model, max_tokens=max_tokens), self.name, messages)

    def embed(self, model: str, inputs: list[str]) -> Embedded:
        return Embedded(vectors=[demo_vector(text) for text in inputs], model=model,
                        prompt_tokens=estimate_tokens(inputs))
