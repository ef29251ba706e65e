"""Any OpenAI-compatible endpoint (Nebius AI Studio, OpenAI, a local server) through the official `openai` SDK."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import openai
import orjson

from ...domain.errors import ProviderUnavailable
from ...domain.replies import ChatReply, Embedded, StreamPiece
from ...ports import Messages
from ..cpu_turns import away, each_away
from .refusals import REJECTED, rejected


class OpenAICompatible:
    def __init__(self, name: str, base_url: str, api_key: str, timeout: float = 60.0) -> None:
        self.name = name
        self._settings: dict[str, Any] = {"base_url": base_url, "api_key": api_key, "timeout": timeout}
        self._local = threading.local()
        self._tls: ssl.SSLContext | None = None

    @property
    def _client(self) -> openai.OpenAI:
        """This thread's SDK client. One client shared by the server's threads makes them queue on its connection
        pool's lock, which a holder keeps while it waits for the GIL: on the gateway benchmark a client per
        thread serves about 10 % more plain and 40 % more streamed requests. The clients share one TLS context
        (the SDK's default one), which takes 30 ms of CPU to load where a client takes 1 ms."""
        client = getattr(self._local, "client", None)
        if client is None:
            if self._tls is None:
                self._tls = httpx2.create_ssl_context()
            client = self._local.client = openai.OpenAI(
                **self._settings, max_retries=0, http_client=openai.DefaultHttpxClient(verify=self._tls))
        return client

    @contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        """The SDK's errors as ProviderUnavailable, which routing falls back on, or as ProviderRejected when the
        provider refused the request itself."""
        try:
            yield
        except openai.APIStatusError as error:
            if error.status_code in REJECTED:
                raise rejected(self.name, error.status_code, error.body) from error
            raise ProviderUnavailable(f"{self.name} answered {error.status_code}", provider=self.name,
                                      upstream_status=error.status_code) from error
        except openai.APIError as error:  # timeouts, refused connections, broken streams
            raise ProviderUnavailable(f"{self.name} {doing}: {type(error).__name__}", provider=self.name) from error
        except ValueError as error:  # a reply that is not JSON (orjson's error is a ValueError too)
            raise ProviderUnavailable(f"{self.name} sent a reply that is not JSON", provider=self.name) from error

    def complete(self, model: str, messages: Messages, max_tokens: int,
                 options: dict[str, Any] | None = None) -> ChatReply:
        """The SDK's client posts (auth, base URL, timeouts, its error types); the reply is read as plain JSON,
        which skips the SDK's request transform and response models: about 0.8 ms of CPU a call."""
        with self._failures("could not be reached"):
            with away():
                raw = self._client.post("/chat/completions", cast_to=bytes, body={
                    "model": model, "messages": messages, "max_tokens": max_tokens, **(options or {})})
            reply = orjson.loads(raw)
        choices = reply.get("choices") if isinstance(reply, dict) else None
        if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("message"), dict):
            raise ProviderUnavailable(f"{self.name} returned no choices", provider=self.name)
        usage, message = reply.get("usage") or {}, choices[0]["message"]
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        reported = isinstance(prompt, int) and isinstance(completion, int)
        return ChatReply(text=message.get("content") or "", model=reply.get("model") or model,
                         prompt_tokens=prompt if reported else None, completion_tokens=completion if reported else None,
                         finish_reason=choices[0].get("finish_reason"), tool_calls=message.get("tool_calls") or None)

    def stream(self, model: str, messages: Messages, max_tokens: int,
               options: dict[str, Any] | None = None) -> Iterator[StreamPiece]:
        """Posted through the SDK's client (auth, timeouts, its status errors), its body read here as server-sent
        events to the very end: the SDK's own stream stops reading at [DONE], which throws the connection away
        (a new TCP and TLS handshake for every streamed call), and its chunk models cost more CPU than the
        rest of a streamed call."""
        with self._failures("stream broke"):
            with away():
                opened = self._client.post(
                    "/chat/completions", cast_to=object, stream=True, stream_cls=openai.Stream[object],
                    body={"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True,
                          "stream_options": {"include_usage": True},  # custom base URLs drop usage otherwise
                          **(options or {})})
            try:
                for chunk in _events(lines_of(each_away(opened.response.iter_bytes()))):
                    piece = _piece(chunk)
                    if piece is not None:
                        yield piece
            except (openai.APIError, ValueError):
                raise
            except Exception as error:  # the HTTP client's own errors while reading: a cut or a timeout
                raise ProviderUnavailable(f"{self.name} stream broke: {type(error).__name__}",
                                          provider=self.name) from error
            finally:
                opened.response.close()  # read to the end, so the connection goes back to the pool

    def chain(self, model: str, messages: Messages, max_tokens: int) -> ChatReply:
        """On langchain-openai's ChatOpenAI. stream_usage: with a custom base URL it otherwise drops the usage
        of streamed calls, and chains are metered on that usage."""
        from langchain_openai import ChatOpenAI

        from .chains import run_step

        llm = ChatOpenAI(model=model, max_tokens=max_tokens, max_retries=0, stream_usage=True,
                         **self._settings)
        with away():
            return run_step(llm, self.name, messages)

    def embed(self, model: str, inputs: list[str]) -> Embedded:
        with self._failures("could not be reached"), away():
            response = self._client.embeddings.create(model=model, input=inputs)
        vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
        if len(vectors) != len(inputs):
            raise ProviderUnavailable(f"{self.name} returned {len(vectors)} embeddings for {len(inputs)} inputs",
                                      provider=self.name)
        usage = response.usage
        return Embedded(vectors=vectors, model=response.model or model,
                        prompt_tokens=usage.prompt_tokens if usage else None)


def _piece(chunk: object) -> StreamPiece | None:
    """A chat.completion.chunk as a StreamPiece; None when it carries nothing (role-only deltas)."""
    if not isinstance(chunk, dict):
        raise ValueError("a stream chunk that is not a JSON object")
    usage = chunk.get("usage") or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    reported = isinstance(prompt, int) and isinstance(completion, int)
    choices = chunk.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    delta = choice.get("delta") or {}
    text, calls, finish = delta.get("content") or "", delta.get("tool_calls") or None, choice.get("finish_reason")
    if not (text or calls or reported or finish):
        return None
    return StreamPiece(text=text, prompt_tokens=prompt if reported else None,
                       completion_tokens=completion if reported else None, finish_reason=finish, tool_calls=calls)


def lines_of(reads: Iterable[bytes]) -> Iterator[str]:
    """The lines of a body, from its reads as they arrive, ended by LF, CRLF or CR as server-sent events' are. Split
    here rather than by the HTTP client's line reader so that a thread gives its turn at the interpreter up only
    for a read that waits on the network, not for every line (an event's lines come in one read, or more)."""
    rest = b""
    for read in reads:
        lines = (rest + read).splitlines(keepends=True)
        rest = lines.pop() if lines and (lines[-1].endswith(b"\r") or not lines[-1].endswith(b"\n")) else b""
        for line in lines:  # (a CR kept back: the LF of its CRLF may come with the next read)
            yield line.rstrip(b"\r\n").decode()
    if rest:
        yield rest.rstrip(b"\r\n").decode()


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON `data:` of each server-sent event, until the body ends ([DONE] is read past, not obeyed). An
    event cut off by the end of the body is dropped: the stream then reads as broken."""
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            payload, data = "\n".join(data), []
            if payload != "[DONE]":
                yield _event(payload)
    if data and data != ["[DONE]"]:
        try:
            yield _event("\n".join(data))
        except ValueError:
            return


def _event(payload: str) -> dict[str, Any]:
    event = orjson.loads(payload)
    if isinstance(event, dict) and event.get("error"):
        raise openai.APIError(str(event["error"]), request=None, body=event["error"])  # type: ignore[arg-type]
    return event
