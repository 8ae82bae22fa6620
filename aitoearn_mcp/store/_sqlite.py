"""The default store: one SQLite file in the user's state directory.

Every server process of the user (one per host session, HTTP workers on one machine) opens the
same file: WAL lets readers and one writer work at once, a busy timeout queues writers, and a
continuation is stored only if the turn count it read is still the stored one (the rule the
Redis store keeps with a script). The standard library's ``sqlite3`` is blocking, so every
statement runs in a worker thread, on a connection from a small pool. The file is opened on
first use (start-up does not touch the disk) and made private: folder 0700, file 0600 (SQLite
gives its ``-wal`` and ``-shm`` files the database file's mode).

The writes a call can leave until after its answer (its reply's record, a new conversation, a
conversation's renewed TTL) and the continuation of a conversation go to one writer thread, in
order: a statement issued after one of them waits until it is written (one that reads a single
item, until that item's writes are), so a read never misses it, and closing the store (or the
interpreter exiting) waits for the queue to empty, so a server that exits right after answering
still has them in the file. The writer commits what is queued when it starts as one transaction
(a group commit: a call's turn and its reply's record, queued one after the other, are one
commit, with one sweep of what expired and one check of the byte cap); if one of them fails, each
is written again alone, so one that fails takes no other with it.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
from pydantic import SecretStr

from .._errors import StoreUnavailableError, TooLargeToStoreError
from .._paths import make_dirs, private_dir
from ._protocol import (
    COUNT_SECONDS,
    UNLISTED,
    Conversation,
    ConversationSummary,
    ReplySummary,
    conversation_summary,
    is_conversation_id,
    is_reply_id,
    owner_hmac,
    reply_summary,
)

if TYPE_CHECKING:
    import sqlite3

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

SCHEMA_VERSION = 1
BUSY_SECONDS = 10.0  # how long a writer waits for another process's transaction
THREADS = 4  # statements in flight at once (each holds a pooled connection)

_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # kind: 'c' a conversation, 'r' a reply; owner: the key's HMAC; times are unix seconds.
    """CREATE TABLE items (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, owner TEXT NOT NULL, size INTEGER NOT NULL,
        expires REAL NOT NULL, used REAL NOT NULL, turns INTEGER NOT NULL DEFAULT 0,
        cancel INTEGER NOT NULL DEFAULT 0, summary TEXT NOT NULL, data TEXT NOT NULL)""",
    "CREATE INDEX items_by_owner ON items (owner, kind, used)",
    "CREATE INDEX items_by_use ON items (owner, used)",
    "CREATE INDEX items_by_expiry ON items (expires)",
    # Bytes held by each owner, kept by triggers: the cap is checked without summing every item.
    "CREATE TABLE held (owner TEXT PRIMARY KEY, size INTEGER NOT NULL)",
    """CREATE TRIGGER held_insert AFTER INSERT ON items BEGIN
        INSERT INTO held (owner, size) VALUES (new.owner, new.size)
        ON CONFLICT (owner) DO UPDATE SET size = size + new.size; END""",
    """CREATE TRIGGER held_delete AFTER DELETE ON items BEGIN
        UPDATE held SET size = size - old.size WHERE owner = old.owner;
        DELETE FROM held WHERE owner = old.owner AND size <= 0; END""",
    """CREATE TRIGGER held_update AFTER UPDATE OF size ON items BEGIN
        UPDATE held SET size = size - old.size + new.size WHERE owner = new.owner; END""",
)
# The daily credits counts: made in any file of this schema version that lacks it (added after
# version 1 shipped; an older server ignores it).
_COUNTS = """CREATE TABLE IF NOT EXISTS credits (
    owner TEXT NOT NULL, day TEXT NOT NULL, micro INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (owner, day))"""
_FIX = "move it away (a new one is made) or set AITOEARN_CONVERSATIONS=memory (nothing kept on disk)"

_T = TypeVar("_T")

logger = logging.getLogger("aitoearn_mcp")

# A write queued for the writer thread (its statements, run inside the writer's transaction), what
# to tell of its outcome (its result or its error), until when (monotonic) it may wait (0: at
# once, an answer waits for it), and the id of the item it writes (None: what it changes no read
# of that item waits for).
_Write = tuple[Callable[["sqlite3.Connection"], Any], Callable[[Any], None], float, str | None]
GROUP = 64  # the most writes one commit takes
# How long a write no answer waits for is held back: the answer's last steps (its serialising,
# the transport) go first instead of sharing the interpreter with it.
HOLD_SECONDS = 0.005
# How long a conversation's renewed TTL (a use, not a change: no read waits for it) may wait for
# the call's own writes, to be committed with them.
RENEW_SECONDS = 1.0


class SQLiteStore:
    """Conversations and replies in the SQLite file ``path``; expire ``ttl`` seconds after
    their last use; past ``max_bytes`` the key holding the most bytes gives up its least
    recently used item first. ``private_folder``: the folder is ours alone (the default state
    directory) and is checked and narrowed to 0700; a folder the user named is only created."""

    def __init__(self, path: Path, ttl: float, max_bytes: int, *, private_folder: bool = False) -> None:
        self.path = path
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._private_folder = private_folder
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._secret: bytes | None = None  # read from the file once it is open
        self._closed = False
        self._limiter = anyio.CapacityLimiter(THREADS)
        # The writes left for the writer thread, oldest first; each stays until it is done.
        self._writes: deque[_Write] = deque()
        self._queued = 0  # writes ever queued: a statement waits until this many at its start are done
        self._last_write: dict[str, int] = {}  # an item with writes queued → the number of its last one
        self._written = 0
        self._urgent = 0  # queued writes an answer waits for
        self._waiting = 0  # statements (or a close) waiting for queued writes: none is held back then
        self._changed = threading.Condition(self._lock)
        self._writer: threading.Thread | None = None

    # --- connections -----------------------------------------------------------------------
    async def _run(self, work: Callable[[sqlite3.Connection], _T], *, item: str | None = None) -> _T:
        """``work`` on a pooled connection once the writes queued before it are written; with
        ``item``, the one item ``work`` reads, only its writes (a call continuing a conversation
        does not wait for other calls' records)."""
        after = self._queued if item is None else self._last_write.get(item, 0)
        return await anyio.to_thread.run_sync(self._in_thread, work, after, limiter=self._limiter)

    def _in_thread(self, work: Callable[[sqlite3.Connection], _T], after: int = 0) -> _T:
        """``work`` on a pooled connection, once the first ``after`` queued writes are written."""
        import sqlite3

        if after > self._written:
            self._wait_written(after, None)
        try:
            connection = self._take()
        except (sqlite3.Error, OSError) as exc:
            raise self._unavailable(exc) from None
        try:
            result = work(connection)
        except (sqlite3.Error, OSError) as exc:
            connection.close()  # its state is unknown: the next use opens a new one
            raise self._unavailable(exc) from None
        except BaseException:
            connection.close()
            raise
        with self._lock:
            if self._closed:
                connection.close()
            else:
                self._idle.append(connection)
        return result

    # --- writes after the answer ------------------------------------------------------------
    async def _write_in_order(self, item: str, work: Callable[[sqlite3.Connection], _T], *, later: bool = False) -> _T:
        """``work`` done by the writer thread after every write queued before it; every statement
        issued after this call starts waits for it. Awaiting the outcome costs the event loop
        nothing meanwhile (a cancelled wait leaves the write queued). ``later``: no answer waits
        for it, so it is held back HOLD_SECONDS unless something needs it first."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[_T] = loop.create_future()

        def tell(result: Any) -> None:  # in the writer thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_resolve, outcome, result)

        self._queue_write(item, work, tell, hold=HOLD_SECONDS if later else 0.0)
        return await outcome

    def _write_later(self, item: str | None, work: Callable[[sqlite3.Connection], Any], what: str, *,
                     hold: float = HOLD_SECONDS) -> None:  # fmt: skip
        """``work`` queued for the writer thread; nobody waits for it, so a failure is logged."""

        def tell(result: Any) -> None:
            if isinstance(result, BaseException):
                logger.warning("%s could not be stored (%s)", what, result)

        self._queue_write(item, work, tell, hold=hold)

    def _queue_write(self, item: str | None, work: Callable[[sqlite3.Connection], Any], tell: Callable[[Any], None],
                     *, hold: float) -> None:  # fmt: skip
        with self._changed:
            self._writes.append((work, tell, time.monotonic() + hold if hold else 0.0, item))
            self._queued += 1
            if item is not None:  # None: a read of one item need not wait for it
                self._last_write[item] = self._queued
            self._urgent += not hold
            if self._writer is None:  # the first write, or the first since the store was closed
                if self._queued == 1:
                    atexit.register(_flush_at_exit, weakref.ref(self))
                self._writer = threading.Thread(target=self._write_queued, name="aitoearn-store-writer", daemon=True)
                self._writer.start()
            self._changed.notify_all()

    def _write_queued(self) -> None:
        """The writer thread: the queued writes in order, those queued by the time it starts in
        one transaction, until the store is closed (a write queued after that starts another)."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._writes or self._closed)
                if not self._writes:
                    self._writer = None
                    return
                while (
                    not (self._urgent or self._waiting or self._closed)
                    and (left := min(write[2] for write in self._writes) - time.monotonic()) > 0
                ):
                    self._changed.wait(left)
                group = [self._writes[i] for i in range(min(len(self._writes), GROUP))]
            results = self._outcomes(group)
            with self._changed:
                self._written += len(group)
                for _, _, hold, item in group:
                    self._writes.popleft()
                    self._urgent -= not hold
                    if item is not None and self._last_write.get(item, 0) <= self._written:
                        self._last_write.pop(item, None)
                self._changed.notify_all()
            for (_, tell, _, _), result in zip(group, results, strict=True):
                tell(result)

    def _outcomes(self, group: list[_Write]) -> list[Any]:
        """The writes of ``group`` in one transaction, and each one's result; when one fails (rare:
        a new id taken, the disk), each alone, so its error is its own result (told to whoever
        waits for it: the writer goes on)."""
        try:
            return self._in_thread(functools.partial(self._commit, group))
        except BaseException as exc:
            if len(group) == 1 or not isinstance(exc, Exception):
                return [exc] * len(group)
        results: list[Any] = []
        for write in group:
            try:
                results.extend(self._in_thread(functools.partial(self._commit, [write])))
            except Exception as exc:
                results.append(exc)
        return results

    def _commit(self, group: list[_Write], db: sqlite3.Connection) -> list[Any]:
        with _transaction(db):
            results = [work(db) for work, *_ in group]
            # After the writes: a renewal keeps an item read while it was live.
            db.execute("DELETE FROM items WHERE expires <= ?", (time.time(),))
            self._make_room(db, {item for *_, item in group if item is not None})
        return results

    def _flush(self, seconds: float | None) -> bool:
        """Wait until every write queued so far is written; False after ``seconds`` without."""
        return self._wait_written(self._queued, seconds)

    def _wait_written(self, count: int, seconds: float | None) -> bool:
        """Wait (in a thread other than the loop's) until ``count`` writes are written, none held back."""
        with self._changed:
            self._waiting += 1
            self._changed.notify_all()
            try:
                return self._changed.wait_for(lambda: self._written >= count, timeout=seconds)
            finally:
                self._waiting -= 1

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        connection = self._connect()
        if self._secret is None:
            try:
                self._secret = _prepare(connection, self.path)
            except BaseException:
                connection.close()
                raise
        return connection

    def _connect(self) -> sqlite3.Connection:
        import sqlite3

        if self._private_folder:
            private_dir(self.path.parent)
        else:
            make_dirs(self.path.parent)
        # Made (or narrowed to) 0600 before SQLite opens it: its -wal and -shm files copy this mode.
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(descriptor, 0o600)
        finally:
            os.close(descriptor)
        connection = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            _into_wal(connection)
            connection.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; a power cut may lose the last turn
        except BaseException:
            connection.close()
            raise
        return connection

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        import sqlite3

        if isinstance(exc, StoreUnavailableError):
            return exc
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, sqlite3.OperationalError) and "locked" in detail:
            return StoreUnavailableError(
                f"the store file {self.path} stayed locked by another process for {BUSY_SECONDS:g} s; try again"
            )
        if isinstance(exc, PermissionError) or "readonly" in detail or "unable to open" in detail:
            return StoreUnavailableError(
                f"the store file {self.path} cannot be written ({detail}); fix: make it and its folder writable by "
                "this user, or set AITOEARN_CONVERSATIONS to another file or to memory"
            )
        if isinstance(exc, sqlite3.DatabaseError):
            return StoreUnavailableError(
                f"the store file {self.path} is damaged or is not an aitoearn-mcp store ({detail}); fix: {_FIX}"
            )
        return StoreUnavailableError(f"the store file {self.path} cannot be used ({detail}); fix: {_FIX}")

    # --- the Store protocol ----------------------------------------------------------------
    async def owner_tag(self, key: SecretStr) -> str:
        if self._secret is None:
            await self._run(lambda _: None)  # opening the file reads the secret
        assert self._secret is not None
        return owner_hmac(self._secret, key)

    async def load(self, conversation_id: str, owner: str) -> Conversation | None:
        if not is_conversation_id(conversation_id):
            return None
        now = time.time()
        row = await self._run(lambda db: db.execute(
            "SELECT data FROM items WHERE id = ? AND kind = 'c' AND owner = ? AND expires > ?",
            (conversation_id, owner, now),
        ).fetchone(), item=conversation_id)  # fmt: skip
        if row is None:
            return None

        def renew(db: sqlite3.Connection) -> None:  # kept from the use on, as if renewed when it was read
            db.execute("UPDATE items SET expires = ?, used = ? WHERE id = ? AND owner = ?",
                       (now + self.ttl, now, conversation_id, owner))  # fmt: skip

        # Committed with the call's own writes: a read need not wait for it (it changes no data).
        self._write_later(None, renew, f"Conversation {conversation_id}'s use", hold=RENEW_SECONDS)
        return Conversation.from_json(conversation_id, row[0])

    def _use(self, db: sqlite3.Connection, item_id: str, kind: str, owner: str, *, cancel: bool = False) -> str | None:
        """A use: the owner's live record, its TTL renewed (and a cancel noted)."""
        now = time.time()
        with _transaction(db):
            row = db.execute(
                "SELECT data FROM items WHERE id = ? AND kind = ? AND owner = ? AND expires > ?",
                (item_id, kind, owner, now),
            ).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE items SET expires = ?, used = ?, cancel = cancel OR ? WHERE id = ?",
                    (now + self.ttl, now, cancel, item_id),
                )
        return None if row is None else row[0]

    async def save(self, conversation: Conversation, *, expected_turns: int) -> bool:
        """By the writer thread, which commits it with the writes queued before it (its TTL renewed)."""
        return await self._write_in_order(conversation.id, self._saving(conversation, expected_turns))

    async def save_new(self, conversation: Conversation) -> None:
        """Left to the writer thread: the call answers meanwhile (see the module's docstring)."""
        work = self._saving(conversation, 0)

        def written(db: sqlite3.Connection) -> None:
            if not work(db):  # a new id is never taken; said rather than lost without a word
                raise StoreUnavailableError(f"the conversation id {conversation.id} is taken")

        self._write_later(conversation.id, written, f"Conversation {conversation.id}")

    def _saving(self, conversation: Conversation, expected_turns: int) -> Callable[[sqlite3.Connection], bool]:
        """The statements storing ``conversation`` if the stored one has ``expected_turns`` turns
        (TooLargeToStoreError at once when it is over the cap)."""
        raw = conversation.to_json()
        size = self._fits(raw)
        summary = conversation_summary(conversation, 0).to_json()

        def work(db: sqlite3.Connection) -> bool:  # in the writer's transaction
            now = time.time()
            row = db.execute(
                "SELECT owner, turns FROM items WHERE id = ? AND expires > ?", (conversation.id, now)
            ).fetchone()
            if (row[1] if row else 0) != expected_turns or (row and row[0] != conversation.owner):
                return False
            # An upsert, not INSERT OR REPLACE: a replace would not run the delete trigger.
            db.execute(
                "INSERT INTO items (id, kind, owner, size, expires, used, turns, summary, data) "
                "VALUES (?, 'c', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET size = excluded.size, "
                "expires = excluded.expires, used = excluded.used, turns = excluded.turns, "
                "summary = excluded.summary, data = excluded.data",
                (conversation.id, conversation.owner, size, now + self.ttl, now, len(conversation.turns), summary,
                 raw),
            )  # fmt: skip
            return True

        return work

    def _fits(self, raw: str) -> int:
        size = len(raw.encode())
        if size > self.max_bytes:
            raise TooLargeToStoreError(size, self.max_bytes)
        return size

    def _make_room(self, db: sqlite3.Connection, keep: set[str]) -> None:
        """While over the cap, drop the least recently used item of the key holding the most
        bytes (never one of ``keep``, the items just written)."""
        total = db.execute("SELECT COALESCE(SUM(size), 0) FROM held").fetchone()[0]
        while total > self.max_bytes:
            victim, size = _victim(db, keep)
            db.execute("DELETE FROM items WHERE id = ?", (victim,))
            total -= size

    async def save_reply(self, reply_id: str, owner: str, record: str, *, later: bool = False) -> None:
        """By the writer thread, in order: a call answered before its record is stored (its
        delegation answers for it meanwhile) is stored before anything later reads the file."""
        size = self._fits(record)

        def work(db: sqlite3.Connection) -> None:  # in the writer's transaction
            summary = found.to_json() if (found := reply_summary(reply_id, record, 0)) else UNLISTED
            now = time.time()
            db.execute("DELETE FROM items WHERE id = ? AND expires <= ?", (reply_id, now))
            # Another owner's id is left alone; a cancel already asked for is kept.
            db.execute(
                "INSERT INTO items (id, kind, owner, size, expires, used, summary, data) "
                "VALUES (?, 'r', ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET size = excluded.size, "
                "expires = excluded.expires, used = excluded.used, summary = excluded.summary, "
                "data = excluded.data WHERE items.owner = excluded.owner AND items.kind = 'r'",
                (reply_id, owner, size, now + self.ttl, now, summary, record),
            )

        await self._write_in_order(reply_id, work, later=later)

    async def load_reply(self, reply_id: str, owner: str) -> str | None:
        if not is_reply_id(reply_id):
            return None
        return await self._run(lambda db: self._use(db, reply_id, "r", owner), item=reply_id)

    async def claim_reply(self, reply_id: str, owner: str, seen: str, record: str) -> bool:
        if not is_reply_id(reply_id):
            return False
        size = self._fits(record)
        summary = found.to_json() if (found := reply_summary(reply_id, record, 0)) else UNLISTED

        def work(db: sqlite3.Connection) -> bool:
            now = time.time()
            claimed = db.execute(  # one statement: its compare and its write are one transaction
                "UPDATE items SET data = ?, size = ?, expires = ?, used = ?, summary = ? "
                "WHERE id = ? AND kind = 'r' AND owner = ? AND expires > ? AND data = ?",
                (record, size, now + self.ttl, now, summary, reply_id, owner, now, seen),
            )
            return claimed.rowcount == 1

        return await self._run(work, item=reply_id)

    async def request_cancel(self, reply_id: str, owner: str) -> bool:
        if not is_reply_id(reply_id):
            return False
        return await self._run(lambda db: self._use(db, reply_id, "r", owner, cancel=True), item=reply_id) is not None

    async def cancels_requested(self, reply_ids: Sequence[str]) -> set[str]:
        def work(db: sqlite3.Connection) -> set[str]:
            asked: set[str] = set()
            for start in range(0, len(reply_ids), 500):  # under SQLite's limit on parameters
                some = reply_ids[start : start + 500]
                found = db.execute(f"SELECT id FROM items WHERE id IN ({', '.join('?' * len(some))}) AND cancel "
                                   "AND expires > ?", (*some, time.time()))  # fmt: skip
                asked.update(row[0] for row in found)
            return asked

        return await self._run(work)

    async def add_credits(self, owner: str, day: str, micro: int) -> int:
        def work(db: sqlite3.Connection) -> int:
            now = time.time()
            with _transaction(db):
                db.execute("DELETE FROM credits WHERE expires <= ?", (now,))
                db.execute(
                    "INSERT INTO credits (owner, day, micro, expires) VALUES (?, ?, ?, ?) ON CONFLICT (owner, day) "
                    "DO UPDATE SET micro = micro + excluded.micro, expires = excluded.expires",
                    (owner, day, micro, now + COUNT_SECONDS),
                )
                return db.execute("SELECT micro FROM credits WHERE owner = ? AND day = ?", (owner, day)).fetchone()[0]

        return await self._run(work)

    async def _recent(self, owner: str, kind: str, limit: int) -> list[tuple[str, float, str]]:
        return await self._run(
            lambda db: db.execute(
                "SELECT id, used, summary FROM items WHERE owner = ? AND kind = ? AND expires > ? AND summary != ? "
                "ORDER BY used DESC LIMIT ?",
                (owner, kind, time.time(), UNLISTED, limit),
            ).fetchall()
        )

    async def recent_conversations(self, owner: str, limit: int) -> list[ConversationSummary]:
        return [ConversationSummary.from_json(*row) for row in await self._recent(owner, "c", limit)]

    async def recent_replies(self, owner: str, limit: int) -> list[ReplySummary]:
        return [ReplySummary.from_json(*row) for row in await self._recent(owner, "r", limit)]

    async def ping(self) -> bool:
        try:
            await self._run(lambda db: db.execute("SELECT 1").fetchone())
        except StoreUnavailableError:
            return False
        return True

    async def aclose(self) -> None:
        """Write what is queued, then close."""
        await anyio.to_thread.run_sync(self._flush, None)
        with self._lock:
            self._closed = True
            self._changed.notify_all()
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _resolve(outcome: asyncio.Future[Any], result: Any) -> None:
    if outcome.done():  # the wait was cancelled
        return
    if isinstance(result, BaseException):
        outcome.set_exception(result)
    else:
        outcome.set_result(result)


def _flush_at_exit(store: weakref.ref[SQLiteStore]) -> None:
    """A process exiting without closing the store still writes what it queued (the writer is a
    daemon thread: it runs until the interpreter's end, after this)."""
    if (found := store()) is not None:
        found._flush(BUSY_SECONDS)  # pyright: ignore[reportPrivateUsage]


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: the write lock is taken before reading, so a
    compare-and-set cannot interleave with another process's."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


class _Crowded(Exception):
    """The items one transaction wrote are over the cap together: each is written alone instead
    (one alone is never over it: its size was checked)."""


def _victim(db: sqlite3.Connection, keep: set[str]) -> tuple[str, int]:
    others = f"id NOT IN ({', '.join('?' * len(keep))})"
    for (owner,) in db.execute("SELECT owner FROM held ORDER BY size DESC").fetchall():
        found = db.execute(f"SELECT id, size FROM items WHERE owner = ? AND {others} ORDER BY used LIMIT 1",
                           (owner, *keep)).fetchone()  # fmt: skip
        if found is not None:
            return found
    raise _Crowded


def _into_wal(db: sqlite3.Connection) -> None:
    """WAL mode, waiting up to BUSY_SECONDS for it: on a new file, while another connection (this
    process's or another's, starting at the same moment) is in a write transaction, the switch
    says "locked" at once instead of waiting as the busy timeout makes other statements wait."""
    import sqlite3

    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _prepare(db: sqlite3.Connection, path: Path) -> bytes:
    """Create the tables in a new file, refuse a file of another version or program; returns
    the owner secret (made once per file, so every process of the user agrees)."""
    with _transaction(db):
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            if tables:
                raise StoreUnavailableError(
                    f"the store file {path} is an SQLite database of another program; fix: {_FIX}, or name "
                    "another file in AITOEARN_CONVERSATIONS"
                )
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                [("schema", str(SCHEMA_VERSION)), ("owner-secret", secrets.token_hex(32))],
            )
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
    if meta.get("schema") != str(SCHEMA_VERSION):
        raise StoreUnavailableError(
            f"the store file {path} has schema version {meta.get('schema')!r}, written by another version of "
            f"aitoearn-mcp (this one reads version {SCHEMA_VERSION}); fix: upgrade aitoearn-mcp, or {_FIX}"
        )
    db.execute(_COUNTS)
    return bytes.fromhex(meta["owner-secret"])
