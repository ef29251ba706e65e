"""The metered chat under /api/v1/chat: held first, settled on the provider's reported usage, whole or streamed."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

from flask import Response

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.idempotency import CALLS, MAX_REQUEST_KEY, of_client
from ...services.chat_results import Piece, StreamEnd
from . import schemas as s
from .api import Routes
from .credit_routes import account_of
from .slots import take_call_slot
from .views import reply_fields

V1 = "/api/v1"

routes = Routes()


def stream_chat(pieces: Iterator[Piece]) -> Response:
    """Server-sent events: `data: {"delta": …}` pieces, then `event: done` with the charge (a ChatDoneOut). The
    hold is placed and the first piece awaited before the 200 goes out, so refusals and dead providers are plain
    problems."""
    first = next(pieces)

    def events() -> Iterator[str]:
        try:
            for piece in itertools.chain([first], pieces):
                if isinstance(piece, StreamEnd):
                    done = s.ChatDoneOut(**reply_fields(piece), broken=piece.broken, tried=piece.tried)
                    yield f"event: done\ndata: {done.model_dump_json()}\n\n"
                else:
                    said = {"delta": piece.text, **({"tool_calls": piece.tool_calls} if piece.tool_calls else {})}
                    yield f"data: {json.dumps(said)}\n\n"
        finally:
            pieces.close()  # type: ignore[attr-defined]  # a client that left: the chat service settles

    return Response(events(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


@routes.route("POST", f"{V1}/chat", summary="A metered chat completion: held first, settled on reported usage",
              body=s.ChatIn, response=s.ChatOut, idempotent_header=True, errors=(402, 404, 409, 422, 502, 503),
              also=("text/event-stream",), longest_key=MAX_REQUEST_KEY,
              retry_after=(409,))  # an image part whose task has not succeeded yet (ImageNotReady), or the same
              # request still running (RequestInProgress): when to ask again
def chat(platform: Platform, caller: Caller, body: s.ChatIn, key: str) -> s.ChatOut | Response:
    account_of(platform, caller)
    take_call_slot(caller.uid)
    messages = [m.openai() for m in body.messages]
    model, most, key = body.model, body.maxTokens, of_client(CALLS, key)
    if body.conversationId is not None:
        talk = platform.conversations
        if body.stream:
            return stream_chat(talk.stream(caller.uid, body.conversationId, messages, key=key, model=model,
                                           max_tokens=most, replayable=True))
        result = talk.chat(caller.uid, body.conversationId, messages, key=key, model=model, max_tokens=most,
                           replayable=True)
    elif body.stream:
        return stream_chat(platform.chat.stream(caller.uid, messages, key=key, model=model, max_tokens=most,
                                                replayable=True))
    else:
        result = platform.chat.chat(caller.uid, messages, key=key, model=model, max_tokens=most, replayable=True)
    return s.ChatOut(text=result.text, **reply_fields(result), conversationId=body.conversationId)
