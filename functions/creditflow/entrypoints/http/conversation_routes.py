"""Conversations under /api/v1/conversations: start, list, read and delete, each scoped to the caller."""

from __future__ import annotations

from ...bootstrap import Platform
from ...domain.callers import Caller
from ...domain.conversations import Conversation
from . import schemas as s
from .api import Routes

V1 = "/api/v1"

routes = Routes()


def conversation_out(conversation: Conversation) -> s.ConversationOut:
    c = conversation
    return s.ConversationOut(id=c.id, title=c.title, created_at=c.created_at, updated_at=c.updated_at,
                             messages=c.messages)


@routes.route("POST", f"{V1}/conversations", summary="Start a conversation (chat in it with conversationId)",
              body=s.ConversationIn, response=s.ConversationOut,
              idempotent_header="optional", errors=(409,))
def start_conversation(platform: Platform, caller: Caller, body: s.ConversationIn, key: str | None
                       ) -> s.ConversationOut:
    return conversation_out(platform.conversations.start(caller.uid, body.title, key))


@routes.route("GET", f"{V1}/conversations", summary="The caller's conversations, latest activity first",
              query=s.ConversationsQuery, response=s.ConversationsOut)
def list_conversations(platform: Platform, caller: Caller, query: s.ConversationsQuery) -> s.ConversationsOut:
    page, cursor = platform.conversations.list(caller.uid, query.limit, query.cursor)
    return s.ConversationsOut(conversations=[conversation_out(c) for c in page], next_cursor=cursor)


@routes.route("GET", f"{V1}/conversations/{{conversationId}}",
              summary="A conversation with its latest messages (older ones a page at a time, by nextCursor)",
              query=s.MessagesQuery, response=s.ConversationDetailOut)
def read_conversation(platform: Platform, caller: Caller, conversationId: str,
                      query: s.MessagesQuery) -> s.ConversationDetailOut:
    conversation = platform.conversations.get(caller.uid, conversationId)
    page, cursor = platform.conversations.page_of_messages(caller.uid, conversationId, query.limit, query.cursor)
    history = [s.StoredMessageOut(seq=m.seq, role=m.role, content=m.content, at=m.at) for m in page]
    return s.ConversationDetailOut(**conversation_out(conversation).model_dump(), summary=conversation.summary,
                                   summary_upto=conversation.summary_upto, history=history, next_cursor=cursor)


@routes.route("DELETE", f"{V1}/conversations/{{conversationId}}", summary="Delete a conversation and its messages",
              response=s.DeletedOut)
def delete_conversation(platform: Platform, caller: Caller, conversationId: str) -> s.DeletedOut:
    platform.conversations.delete(caller.uid, conversationId)
    return s.DeletedOut(id=conversationId, deleted=True)
