"""LangGraph's BaseCheckpointSaver on Firestore: the production checkpointer of agent tasks.

Layout, one thread per agent task:

    checkpoints/{thread}                                      {thread_id}
      namespaces/{ns}                                         {checkpoint_ns}   ("root" for the top graph)
        checkpoints/{checkpoint_id}                           head: parent, type, data or chunk list, metadata
                                                              (its own bytes or chunk list)
          chunks/{digest}-{n}                                 pieces of a checkpoint or its metadata too large for
                                                              one document
          writes/{task_id}~{idx}                              a pending write (its value inline or in chunks)
            chunks/{digest}-{n}

A document holds at most 1 MiB, so a serialised checkpoint or write above INLINE bytes is split into chunks (and
a checkpoint's metadata, a graph's own to fill, above what the head has room for beside the checkpoint),
written before the document that names them (a reader never finds a head without its pieces), and named by a
digest of their content (a second put of the same id never mixes its pieces with the first's). Writes keep
SQLite's rules: a task's regular writes are stored once (the first wins, in one transaction), special writes
(errors, interrupts) replace. The community package langgraph-checkpoint-firestore 0.4.0 was evaluated against
tests/contract/test_checkpointer.py and not used: see that module."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import quote, unquote

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

INLINE = 900_000  # bytes of a value kept in its own document; larger ones go to chunks of this size
CHUNKS_PER_COMMIT = 4  # a commit stays under 4 MiB, the gRPC message limit (the emulator's too)
ROOT_NS = "root"


def _doc_id(value: str) -> str:
    """A Firestore document id for a thread id: no '/', never '.', '..' or __reserved__."""
    encoded = quote(str(value), safe=":@-_~+=,;!$&'()*")
    if not encoded or encoded in (".", "..") or (encoded.startswith("__") and encoded.endswith("__")):
        encoded = "%" + encoded.encode().hex()
    return encoded


def _ns_id(checkpoint_ns: str) -> str:
    return ROOT_NS if checkpoint_ns == "" else "ns-" + quote(checkpoint_ns, safe=":|-_")


def _ns_of(ns_id: str) -> str:
    return "" if ns_id == ROOT_NS else unquote(ns_id.removeprefix("ns-"))


class FirestoreSaver(BaseCheckpointSaver[str]):
    def __init__(self, client: firestore.Client, root: str = "checkpoints", *,
                 serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.client = client
        self.root = client.collection(root)

    # -- references ------------------------------------------------------------------------------------------

    def _thread(self, thread_id: str) -> firestore.DocumentReference:
        return self.root.document(_doc_id(thread_id))

    def _namespace(self, thread_id: str, checkpoint_ns: str) -> firestore.DocumentReference:
        return self._thread(thread_id).collection("namespaces").document(_ns_id(checkpoint_ns))

    def _checkpoint(self, thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> firestore.DocumentReference:
        return self._namespace(thread_id, checkpoint_ns).collection("checkpoints").document(checkpoint_id)

    # -- values that may pass a document's size ------------------------------------------------------------

    def _stored(self, parent: firestore.DocumentReference, data: bytes, room: int = INLINE,
                field: str = "data") -> tuple[dict[str, Any], list]:
        """The fields that hold `data` (`field`, and its chunk list), and the chunk documents to write first when
        it is larger than the `room` left in its document."""
        chunk_list = "chunks" if field == "data" else f"{field}_chunks"
        if len(data) <= room:
            return {field: data, chunk_list: []}, []
        digest = hashlib.sha256(data).hexdigest()[:16]
        pieces = [(parent.collection("chunks").document(f"{digest}-{n:05d}"), {"data": data[at:at + INLINE]})
                  for n, at in enumerate(range(0, len(data), INLINE))]
        return {field: None, chunk_list: [ref.id for ref, _ in pieces]}, pieces

    def _write_chunks(self, pieces: list) -> None:
        for start in range(0, len(pieces), CHUNKS_PER_COMMIT):
            batch = self.client.batch()
            for ref, fields in pieces[start:start + CHUNKS_PER_COMMIT]:
                batch.set(ref, fields)
            batch.commit()

    def _loaded(self, parent: firestore.DocumentReference, fields: dict[str, Any], field: str = "data") -> bytes:
        names = fields.get("chunks" if field == "data" else f"{field}_chunks")
        if not names:  # a head written before metadata could be chunked has none: its metadata is inline
            return bytes(fields[field])
        refs = [parent.collection("chunks").document(name) for name in names]
        found = {snapshot.id: snapshot.get("data") for snapshot in self.client.get_all(refs)}
        missing = [name for name in names if name not in found]
        if missing:
            raise RuntimeError(f"checkpoint {parent.path} lost chunks {missing}")
        return b"".join(bytes(found[name]) for name in names)

    # -- the saver -------------------------------------------------------------------------------------------

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id, checkpoint_ns = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        ref = self._checkpoint(thread_id, checkpoint_ns, checkpoint["id"])
        kind, data = self.serde.dumps_typed(checkpoint)
        meta_kind, meta = self.serde.dumps_typed(get_checkpoint_metadata(config, metadata))
        fields, pieces = self._stored(ref, data)
        # the metadata gets what room the checkpoint left in the head (the two inline could pass 1 MiB together)
        meta_fields, meta_pieces = self._stored(ref, meta, INLINE - len(fields["data"] or b""), "metadata")
        self._write_chunks(pieces + meta_pieces)
        batch = self.client.batch()
        batch.set(self._thread(thread_id), {"thread_id": thread_id})
        batch.set(self._namespace(thread_id, checkpoint_ns), {"checkpoint_ns": checkpoint_ns})
        batch.set(ref, {"checkpoint_id": checkpoint["id"], "parent_id": configurable.get("checkpoint_id"),
                        "type": kind, "metadata_type": meta_kind, "size": len(data), **fields, **meta_fields})
        batch.commit()
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns,
                                 "checkpoint_id": checkpoint["id"]}}

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        configurable = config["configurable"]
        parent = self._checkpoint(str(configurable["thread_id"]), configurable.get("checkpoint_ns", ""),
                                  str(configurable["checkpoint_id"]))
        rows = []
        for n, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, n)
            ref = parent.collection("writes").document(f"{task_id}~{idx}")
            kind, data = self.serde.dumps_typed(value)
            fields, pieces = self._stored(ref, data)
            rows.append((ref, {"task_id": task_id, "task_path": task_path, "idx": idx, "channel": channel,
                               "type": kind, **fields}, pieces))
        replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        for _, _, pieces in rows:
            self._write_chunks(pieces)
        if replace:
            batch = self.client.batch()
            for ref, fields, _ in rows:
                batch.set(ref, fields)
            batch.commit()
            return

        for ref, fields, _ in rows:  # the first wins, each on its own (as INSERT OR IGNORE): a run delivered twice
            with contextlib.suppress(AlreadyExists):  # writing the same step at once locks nothing of the other's
                ref.create(fields)

    def _tuple(self, thread_id: str, checkpoint_ns: str, snapshot: firestore.DocumentSnapshot) -> CheckpointTuple:
        fields = snapshot.to_dict() or {}
        checkpoint = self.serde.loads_typed((fields["type"], self._loaded(snapshot.reference, fields)))
        metadata = self.serde.loads_typed((fields["metadata_type"],
                                           self._loaded(snapshot.reference, fields, "metadata")))
        writes = sorted((w.to_dict() | {"ref": w.reference} for w in snapshot.reference.collection("writes").stream()),
                        key=lambda w: writes_sort_key(w["task_path"], w["task_id"], w["idx"]))
        pending = [(w["task_id"], w["channel"], self.serde.loads_typed((w["type"], self._loaded(w["ref"], w))))
                   for w in writes]
        parent = fields.get("parent_id")
        return CheckpointTuple(
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns,
                              "checkpoint_id": fields["checkpoint_id"]}},
            checkpoint, metadata,
            {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns, "checkpoint_id": parent}}
            if parent else None,
            pending)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        configurable = config["configurable"]
        thread_id, checkpoint_ns = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            snapshot = self._checkpoint(thread_id, checkpoint_ns, checkpoint_id).get()
            return self._tuple(thread_id, checkpoint_ns, snapshot) if snapshot.exists else None
        latest = (self._namespace(thread_id, checkpoint_ns).collection("checkpoints")
                  .order_by("checkpoint_id", direction=firestore.Query.DESCENDING).limit(1).get())
        return self._tuple(thread_id, checkpoint_ns, latest[0]) if latest else None

    def _partitions(self, config: RunnableConfig | None) -> Iterator[tuple[str, str]]:
        """(thread, namespace) pairs a listing covers: one, a thread's, or every one."""
        configurable = (config or {}).get("configurable", {})
        if "thread_id" in configurable:
            threads = [str(configurable["thread_id"])]
        else:
            threads = [snapshot.get("thread_id") for snapshot in self.root.stream()]
        for thread_id in threads:
            if configurable.get("checkpoint_ns") is not None:
                yield thread_id, configurable["checkpoint_ns"]
                continue
            for ns in self._thread(thread_id).collection("namespaces").list_documents():
                yield thread_id, _ns_of(ns.id)

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None) -> Iterator[CheckpointTuple]:
        only = get_checkpoint_id(config) if config else None
        below = get_checkpoint_id(before) if before else None

        def newest_first(thread_id: str, checkpoint_ns: str) -> Iterator[tuple[str, str, str, Any]]:
            query = self._namespace(thread_id, checkpoint_ns).collection("checkpoints")
            if only:
                query = query.where(filter=firestore.FieldFilter("checkpoint_id", "==", only))
            if below:
                query = query.where(filter=firestore.FieldFilter("checkpoint_id", "<", below))
            for snapshot in query.order_by("checkpoint_id", direction=firestore.Query.DESCENDING).stream():
                yield _Desc(snapshot.get("checkpoint_id")), thread_id, checkpoint_ns, snapshot

        merged = heapq.merge(*(newest_first(t, ns) for t, ns in self._partitions(config)), key=lambda row: row[0])
        given = 0
        for _, thread_id, checkpoint_ns, snapshot in merged:
            if limit is not None and given >= limit:
                return
            found = self._tuple(thread_id, checkpoint_ns, snapshot)
            if filter and any(found.metadata.get(k) != v for k, v in filter.items()):
                continue
            given += 1
            yield found

    def delete_thread(self, thread_id: str) -> None:
        self.client.recursive_delete(self._thread(str(thread_id)))

    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """Versions as SqliteSaver makes them: a zero-padded counter, then a random tie-breaker."""
        counter = 0 if current is None else current if isinstance(current, int) else int(current.split(".")[0])
        return f"{counter + 1:032}.{random.random():016}"

    # -- async, as the base class asks: the same work in a thread -------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        for found in await asyncio.to_thread(lambda: list(self.list(config, filter=filter, before=before,
                                                                       limit=limit))):
            yield found

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)


class _Desc(str):
    """A string that sorts backwards, for merging newest-first listings."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return str.__gt__(self, other)  # type: ignore[operator]
