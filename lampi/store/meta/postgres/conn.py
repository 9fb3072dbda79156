"""Connections of the PostgreSQL MetaStore: a psycopg 3 connection pool, the
transaction runner with retries, and the adapter that lets the shared transaction
bodies (written against sqlite3's ``execute``) run on a PostgreSQL connection.

Transactions: ``_tx`` runs a body in one SERIALIZABLE transaction and retries it (from
the start, on a fresh snapshot) when PostgreSQL reports a serialization failure or a
deadlock: the bodies read, decide and write (the current object, then the counters) as
they do under SQLite's single writer, and SERIALIZABLE makes concurrent gateways'
transactions behave as if they had run one after the other, so counters stay exact
(the counter updates themselves are ``SET n = n + $1``). Acknowledged means committed:
the caller hears back after COMMIT returned (``synchronous_commit`` as the server has it,
on by default).

The bodies are synchronous (shared with the SQLite store, one implementation of the
semantics the contract suite checks): they run on a thread pool as large as the
connection pool, each on a pooled connection; the store's methods are coroutines that
await them, so the event loop never blocks on the database.

A database that cannot be reached (down, restarting, failing over) is answered with
``DataUnavailable`` (503) rather than a 500: the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import adapt as _adapt
from psycopg import errors as pgerrors
from psycopg._queries import PostgresQuery as _PostgresQuery  # _Lean: the query conversion a cursor uses
from psycopg.pq import ExecStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from lampi.core import errors
from lampi.store.meta import arrival, memo
from lampi.store.meta.postgres import schema
from lampi.store.meta.postgres.dialect import plain_insert, translate

T = TypeVar("T")
_TUPLES_OK, _FATAL_ERROR = ExecStatus.TUPLES_OK, ExecStatus.FATAL_ERROR
log = logging.getLogger("lampi.store")

POOL_SIZE = 16
READ_POOL_SIZE = 8  # connections of the event loop's point reads (PGBase._read), per process and loop
_REPLAYS = 8  # statements a point read may make on the event loop (more: on a thread)
CONNECT_TIMEOUT = 5  # seconds to wait for a (new) database connection before answering 503
# how long the pool keeps retrying one failed connection attempt (psycopg_pool's backoff:
# 1 s, then doubling) before it gives up; the next request then starts a new attempt at
# once. psycopg_pool's own default (5 min), or any long one, lets the backoff grow with an
# outage: after 20 s down the next attempt came 8-16 s after the database was back, and
# every request until then was a 503.
RECONNECT_GIVE_UP = 2.0
_RETRIES = 30
BATCH_MAX = 32  # writes of one container's line in one transaction (see PGBase._tx)
_RETRYABLE = (pgerrors.SerializationFailure, pgerrors.DeadlockDetected)


class Cursor:
    """What the shared bodies use of a sqlite3 cursor: one statement's result."""

    __slots__ = ("_res", "_tx")

    def __init__(self, res: Any, tx: Any) -> None:
        self._res, self._tx = res, tx

    def fetchone(self) -> Any:
        res = self._res
        if res.status != _TUPLES_OK or not res.ntuples:
            return None
        self._tx.set_pgresult(res)
        return self._tx.load_row(0, tuple)

    def fetchall(self) -> list[Any]:
        res = self._res
        if res.status != _TUPLES_OK:
            return []
        self._tx.set_pgresult(res)
        return self._tx.load_rows(0, res.ntuples, tuple)  # type: ignore[no-any-return]

    def __iter__(self) -> Any:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        res = self._res
        if res.status == _TUPLES_OK:
            return res.ntuples  # type: ignore[no-any-return]
        n = res.command_tuples
        return n if n is not None else -1


class _Statements:
    """A connection's statements prepared by ``_lean_execute`` (blocking) or ``_Lean``
    (event loop), and its Transformer: each statement prepared once per connection,
    keyed by its text and parameter types."""

    __slots__ = ("encoding", "names", "prefix", "tx")

    def __init__(self, conn: Any, prefix: bytes) -> None:
        self.tx = _adapt.Transformer(conn)
        self.names: dict[tuple[bytes, Any], bytes] = {}
        self.encoding = conn.info.encoding
        self.prefix = prefix

    def bind(self, sql: str, params: Any) -> tuple[Any, bytes, bool]:
        """(the converted query, its statement name, whether it must be prepared first)."""
        pgq = _PostgresQuery(self.tx)
        pgq.convert(sql, params)
        name = self.names.get((pgq.query, pgq.types))
        if name is not None:
            return pgq, name, False
        return pgq, self.prefix + b"%d" % len(self.names), True

    def prepared(self, pgq: Any, name: bytes) -> None:
        """``name`` was prepared for ``pgq`` (recorded only once the server said so)."""
        self.names[(pgq.query, pgq.types)] = name


_PREPARED: weakref.WeakKeyDictionary[Any, _Statements] = weakref.WeakKeyDictionary()


def _lean_execute(conn: psycopg.Connection[Any], pg: str, params: Any) -> Cursor:
    """One statement of a transaction body on a pooled (blocking) connection, as libpq
    calls (``exec_prepared``: the GIL is released while it waits), with psycopg's own
    query conversion, row loading and errors, as ``_Lean`` does on the event loop: a
    write's statement through ``conn.execute`` cost the gateway ~150 µs of CPU, most of
    it the cursor's Python. The connection's transaction state stays psycopg's to keep
    (``conn.transaction()``): this only runs statements in it."""
    prep = _PREPARED.get(conn)
    if prep is None:
        prep = _PREPARED[conn] = _Statements(conn, b"lampi_w")
    pgconn = conn.pgconn
    pgq, name, new = prep.bind(pg, params)
    if new:
        _checked(pgconn, pgconn.prepare(name, pgq.query, param_types=pgq.types), prep.encoding)
        prep.prepared(pgq, name)
    return Cursor(_checked(pgconn, pgconn.exec_prepared(name, pgq.params, param_formats=pgq.formats),
                           prep.encoding), prep.tx)


def _checked(pgconn: Any, res: Any, encoding: str) -> Any:
    """``res``, or the error it holds raised: an OperationalError when the connection is
    gone (a result without an SQLSTATE would otherwise be a bare DatabaseError, which the
    callers' retry and 503 paths do not take for a lost connection)."""
    if res.status == _FATAL_ERROR:
        if pgconn.status != psycopg.pq.ConnStatus.OK:  # the connection is lost, not the statement wrong
            raise psycopg.OperationalError(pgconn.get_error_message(encoding))
        raise pgerrors.error_from_result(res, encoding=encoding)
    return res


class Adapter:
    """A psycopg connection seen through sqlite3's ``execute``/``executemany``: SQLite
    statements are translated (lampi.store.meta.postgres.dialect), constraint failures
    raised as ``sqlite3.IntegrityError`` (what the shared bodies catch). In a
    transaction, a plain INSERT runs under a savepoint so a caught failure leaves the
    transaction usable, as in SQLite."""

    __slots__ = ("conn", "in_tx")

    def __init__(self, conn: psycopg.Connection[Any], in_tx: bool) -> None:
        self.conn, self.in_tx = conn, in_tx

    @staticmethod
    def _args(named: bool, args: Any) -> Any:
        if named:
            return {f"p{i + 1}": v for i, v in enumerate(args)}
        return tuple(args) if args is not None else None

    def execute(self, sql: str, args: Any = ()) -> Cursor:
        pg, named = translate(sql)
        params = self._args(named, args) if args else None
        if params and not named and any(isinstance(a, str) and "\0" in a for a in params):
            pg, params = _without_nul(pg, params)
        try:
            if self.in_tx and plain_insert(pg):
                with self.conn.transaction():
                    return _lean_execute(self.conn, pg, params)
            return _lean_execute(self.conn, pg, params)
        except pgerrors.IntegrityError as exc:
            raise sqlite3.IntegrityError(str(exc)) from exc

    def executemany(self, sql: str, rows: Any) -> None:
        pg, named = translate(sql)
        try:
            with self.conn.cursor() as cur:
                cur.executemany(pg, [self._args(named, r) for r in rows])
        except pgerrors.IntegrityError as exc:
            raise sqlite3.IntegrityError(str(exc)) from exc


_COMPARED = re.compile(r"(>=|<=|>|<|=)\s*%s|%s")
# a bound holding NUL (PostgreSQL text cannot) compared with names, which never hold one:
# cut at the NUL, the comparison adjusted (name >= "ab\0x" is name > "ab")
_CUT_OP = {">=": ">", ">": ">", "<": "<=", "<=": "<="}


def _without_nul(pg: str, params: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """``pg`` and ``params`` with each text parameter holding NUL (a listing's marker,
    end_marker or prefix: Swift compares them as any other character) cut at its first
    NUL and its comparison operator adjusted; InvalidArgument where that cannot be."""
    out: list[Any] = []
    pieces: list[str] = []
    pos = 0
    for i, m in enumerate(_COMPARED.finditer(pg)):
        value = params[i]
        if isinstance(value, str) and "\0" in value:
            op = m.group(1)
            if op not in _CUT_OP:
                raise errors.InvalidArgument("NUL is not allowed here")
            pieces.append(pg[pos:m.start()] + f"{_CUT_OP[op]} %s")
            value = value[:value.index("\0")]
        else:
            pieces.append(pg[pos:m.end()])
        pos = m.end()
        out.append(value)
    pieces.append(pg[pos:])
    return "".join(pieces), tuple(out)


def _serializable(conn: psycopg.Connection[Any]) -> None:
    """Each pooled connection's transactions begin SERIALIZABLE: in the BEGIN itself, one
    round trip fewer per write than a SET TRANSACTION after it. (Reads are autocommit
    statements, outside transactions.) psycopg prepares no statement on it."""
    conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
    # statements are prepared by _lean_execute, never by psycopg: psycopg answers a
    # ROLLBACK on a connection it has prepared statements on with DEALLOCATE ALL, which
    # would drop _lean_execute's too
    conn.prepare_threshold = None


def _unlock(conn: psycopg.Connection[Any], queue: str) -> None:
    """Release ``_tx``'s queue lock; a connection that cannot is closed (a session's
    advisory locks end with it), never handed out again still holding it."""
    try:
        _lean_execute(conn, "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (queue,))
    except psycopg.Error:
        conn.close()


def _in_savepoint(conn: psycopg.Connection[Any], fn: Callable[[Any], Any]) -> tuple[bool, Any]:
    """One body of a batch (``_call_batch``) under a savepoint: (True, its result), or
    (False, its exception) with what it did rolled back. A serialization failure, a
    unique violation (PostgreSQL's way of reporting some serialization conflicts) or a
    broken connection aborts the whole batch (retried whole)."""
    try:
        with conn.transaction():  # SAVEPOINT ... RELEASE (ROLLBACK TO on an exception)
            return True, fn(Adapter(conn, in_tx=True))
    except (_RETRYABLE + (psycopg.OperationalError,)):
        raise
    except sqlite3.IntegrityError as exc:
        if isinstance(exc.__cause__, pgerrors.UniqueViolation):
            raise
        return False, exc
    except Exception as exc:  # noqa: BLE001 - the body's own error, for its caller
        return False, exc


class _Careful(Exception):
    """A body of a batch run without savepoints raised: roll back, run them each under one."""


def _all_or_careful(conn: psycopg.Connection[Any], fns: list[Callable[[Any], Any]]) -> list[tuple[bool, Any]]:
    """The bodies of a batch one after the other in the caller's transaction; _Careful
    (which rolls it back) when one raises an error of its own. Serialization failures,
    unique violations and broken connections go up as they are (the batch is retried)."""
    adapter = Adapter(conn, in_tx=True)
    out: list[tuple[bool, Any]] = []
    for fn in fns:
        try:
            out.append((True, fn(adapter)))
        except (_RETRYABLE + (psycopg.OperationalError,)):
            raise
        except sqlite3.IntegrityError as exc:
            if isinstance(exc.__cause__, pgerrors.UniqueViolation):
                raise
            raise _Careful() from exc
        except Exception as exc:  # noqa: BLE001 - rolled back, then run under savepoints
            raise _Careful() from exc
    return out


class _Need(BaseException):
    """A point read's body asked for a statement not run yet (``PGBase._read``); a
    BaseException, so that no body's ``except Exception`` takes it for its own."""

    def __init__(self, sql: str, args: Any) -> None:
        self.sql, self.args = sql, args


class _Rows:
    """The fetched rows of one statement, as the shared bodies read a cursor."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows

    def __iter__(self) -> Any:
        return iter(self.rows)


class _Replay:
    """The connection a point read's body runs on in ``PGBase._read``: statements the
    body made in an earlier run are answered with their rows, the next one stops it."""

    __slots__ = ("i", "results")

    def __init__(self, results: list[list[Any]]) -> None:
        self.results, self.i = results, 0

    def execute(self, sql: str, args: Any = ()) -> _Rows:
        if self.i < len(self.results):
            self.i += 1
            return _Rows(self.results[self.i - 1])
        raise _Need(sql, args)


class _Lean:
    """One connection of the point reads, with the statements it has prepared.

    A read through psycopg's cursor (``AsyncConnection.execute`` + ``fetchall``) cost
    the gateway ~90 µs of CPU, most of it the cursor's own Python (its reset, the
    prepare manager's bookkeeping, the ``description``'s Column objects); the same read
    as libpq calls cost ~35 µs (measured on this machine, one process, uvloop). So the
    reads go to libpq here with psycopg's own parts for what matters: its query
    conversion and parameter dumping (``PostgresQuery``), its row loading
    (``Transformer.load_rows``) and its error classes (``error_from_result``) — the rows
    and errors are those a cursor gives; a connection lost mid-statement is an
    OperationalError whatever the result says (``_checked``), so the read is retried.
    Each statement is prepared once per connection (psycopg prepares a statement after
    its fifth execution; these run thousands of times)."""

    __slots__ = ("conn", "stmts")

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.stmts = _Statements(conn, b"lampi_r")

    async def rows(self, sql: str, params: Any) -> list[Any]:
        pgconn = self.conn.pgconn
        stmts = self.stmts
        pgq, name, new = stmts.bind(sql, params)
        if new:
            pgconn.send_prepare(name, pgq.query, param_types=pgq.types)
            self._check(await _results(pgconn))
            stmts.prepared(pgq, name)
        pgconn.send_query_prepared(name, pgq.params, param_formats=pgq.formats)
        results = await _results(pgconn)
        self._check(results)
        return Cursor(results[-1], stmts.tx).fetchall()

    def _check(self, results: list[Any]) -> None:
        for res in results:
            _checked(self.conn.pgconn, res, self.stmts.encoding)


async def _results(pgconn: Any) -> list[Any]:
    """The results of the statement just sent on ``pgconn`` (non-blocking, as psycopg's
    async connections are), waiting on the event loop for the socket.

    psycopg's ``wait_async`` does the same for any generator, at a cost a point read
    notices (~10% of the gateway's CPU in a small PUT): a zero-timeout poll of the
    socket per wait, a timer set and cancelled per wait, a generator driven by
    ``send``. A statement this small is sent whole by ``send_query_prepared`` (libpq
    flushes; what it could not send is flushed here), so only reading remains: a
    future per wait for readability, nothing else."""
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    try:
        while pgconn.flush():  # 1: data left to send (the socket's buffer was full)
            await _ready(loop, fd, True)
        results: list[Any] = []
        while True:
            pgconn.consume_input()
            while not pgconn.is_busy():
                res = pgconn.get_result()
                if res is None:
                    return results
                results.append(res)
            await _ready(loop, fd, False)
    except OSError as exc:  # the socket went away under the loop
        raise psycopg.OperationalError(f"connection socket closed: {exc}") from exc


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, write: bool) -> None:
    fut = loop.create_future()

    def wake() -> None:
        if not fut.done():  # level-triggered: may be called again before the waiter runs
            fut.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


class _LoopReads:
    """The connections of the point reads (``PGBase._read``) of one process and event
    loop: idle ones kept for the next read, one made when none is idle, at most
    READ_POOL_SIZE in use (more reads wait). No background task: a connection that
    turns out broken (the database restarted) is dropped with every idle one, which
    are as old, and the read tried once more on a new connection; one that cannot be
    made is a 503 (``_unavailable``) after CONNECT_TIMEOUT."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pid = os.getpid()
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Lean] = []
        self.slots = asyncio.Semaphore(READ_POOL_SIZE)

    async def run(self, pg: str, params: Any) -> list[Any]:
        async with self.slots:
            for attempt in (0, 1):
                lean = self.idle.pop() if self.idle else None
                new = lean is None
                try:
                    if lean is None:
                        lean = _Lean(await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                                           connect_timeout=CONNECT_TIMEOUT))
                    rows = await lean.rows(pg, params)
                except psycopg.OperationalError as exc:
                    _finish(lean)
                    self.hang_up()
                    if attempt or new:
                        raise _unavailable(exc) from exc
                    continue
                except psycopg.Error:
                    conn = lean.conn if lean is not None else None
                    if conn is not None and not conn.closed and not conn.broken and _idle(conn):
                        self.idle.append(lean)  # the statement's own error; in autocommit still usable
                    else:
                        _finish(lean)
                    raise
                except BaseException:  # cancelled mid-statement: the connection's state is unknown
                    _finish(lean)
                    raise
                self.idle.append(lean)
                return rows
        raise AssertionError("unreachable")

    def hang_up(self) -> None:
        """Close the idle connections (without the loop: it may have ended)."""
        idle, self.idle = self.idle, []
        for lean in idle:
            _finish(lean)


def _idle(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether the connection waits for a statement (after an error's result was read)."""
    return conn.pgconn.status == psycopg.pq.ConnStatus.OK and \
        conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE


def _finish(conn: Any) -> None:
    if isinstance(conn, _Lean):
        conn = conn.conn
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.pgconn.finish()


def _unavailable(exc: Exception) -> errors.DataUnavailable:
    log.error("metadata database unavailable: %s", exc)
    return errors.DataUnavailable("The metadata database is unavailable; try again.")


class PGBase:
    """Pool, threads and transactions; the record-family mixins build on it (in place
    of ``SQLiteBase``)."""

    def __init__(self, url: str, data_dir: str | Path, *, create: bool = False, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        # the data dir: where a master key made at the first start goes (master.key), and
        # keys/ files of a store from before keys moved into the database are imported from
        self.path = Path(data_dir) / "meta.postgresql"  # never created: its parent is what counts
        self.reserve = None  # a full local disk does not concern the metadata
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                schema.check(conn, _safe(url), create)  # messages never show a password
        except psycopg.OperationalError as exc:
            raise schema.SchemaError(f"cannot connect to {_safe(url)}: {exc}") from None
        # at most ``pool_size`` threads ask for a connection, so a wait for one is a wait for
        # the database (down, restarting): short, then 503 (``_unavailable``)
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size,
                                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                                    configure=_serializable, open=True, timeout=CONNECT_TIMEOUT,
                                    reconnect_timeout=RECONNECT_GIVE_UP, name="lampi-meta")
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="pg")
        self._revoked: set[str] = set()
        self._revoke_version: int | None = None
        self._revoke_lock = threading.Lock()
        self._shared = memo.Shared()  # container and account reads requests share (memo.Shared)
        self._reads: _LoopReads | None = None  # the point reads' connections (_read)
        self._waiting: dict[str, list[tuple[Callable[[Any], Any], asyncio.Future[Any]]]] = {}
        self._drains: set[asyncio.Future[None]] = set()

    # -- running bodies ---------------------------------------------------------------

    def _drop_broken(self) -> None:
        """After a pooled connection turned out broken (the database restarted since it
        was last used): test the pool's idle connections and drop every broken one, so
        the retry does not meet the next of them (after a restart all are)."""
        try:
            self._pool.check()
        except Exception:  # noqa: BLE001 - a check that fails leaves the retry to fail
            log.debug("pool check failed", exc_info=True)

    def _call_read(self, fn: Callable[[Any], T]) -> T:
        # reads are autocommit statements: after a broken pooled connection once more, on
        # a connection that works
        for attempt in (0, 1):
            try:
                with self._pool.connection() as conn:
                    return fn(Adapter(conn, in_tx=False))
            except PoolTimeout as exc:
                raise _unavailable(exc) from exc
            except psycopg.OperationalError as exc:
                if attempt:
                    raise _unavailable(exc) from exc
                self._drop_broken()
        raise AssertionError("unreachable")

    def _call_tx(self, fn: Callable[[Any], T], queue: str | None = None) -> T:
        ok, value = self._call_batch([fn], queue)[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def _call_batch(self, fns: list[Callable[[Any], Any]], queue: str | None = None) -> list[tuple[bool, Any]]:
        """Run ``fns`` one after the other in one SERIALIZABLE transaction, retried whole
        on a serialization failure; (True, result) or (False, exception) for each. One
        body runs as it is. Several run first one after the other (``_all_or_careful``);
        if one raises, the whole transaction is rolled back and run again with each body
        under a savepoint, so a body that raises is rolled back alone, as if it had run
        in a transaction of its own. (A savepoint costs two round trips per body, as many
        as a write's one statement, lampi_put_object; bodies that fail are rare: a
        missing container, a failed condition, object lock.)"""
        delay = 0.002
        reconnected = False
        careful = False
        try:
            for attempt in range(_RETRIES + 1):  # + 1: the careful run after _Careful
                with self._pool.connection() as conn:
                    started = False
                    queued = False
                    try:
                        if queue is not None:
                            # before the transaction, so its snapshot is taken after the
                            # previous writer of the queue committed (see _tx)
                            _lean_execute(conn, "SELECT pg_advisory_lock(hashtextextended(%s, 0))", (queue,))
                            queued = True
                        with conn.transaction():  # BEGIN ISOLATION LEVEL SERIALIZABLE (_serializable)
                            started = True
                            if len(fns) == 1:
                                return [(True, fns[0](Adapter(conn, in_tx=True)))]
                            if careful:
                                return [_in_savepoint(conn, fn) for fn in fns]
                            return _all_or_careful(conn, fns)
                    except _Careful:
                        careful = True  # rolled back: again, each body under a savepoint
                        continue
                    except sqlite3.IntegrityError as exc:
                        # a serialization conflict PostgreSQL reported as a unique violation
                        cause = exc.__cause__
                        if not isinstance(cause, pgerrors.UniqueViolation) or attempt == _RETRIES - 1:
                            if len(fns) == 1:
                                return [(False, exc)]
                            raise
                    except _RETRYABLE:
                        if attempt == _RETRIES - 1:
                            raise
                    except psycopg.OperationalError:
                        # a broken pooled connection, before the transaction did anything:
                        # once more on another (the pool drops this one)
                        if started or reconnected:
                            raise
                        reconnected = True
                        self._drop_broken()
                        continue
                    except Exception as exc:  # noqa: BLE001 - the one body's own error, its caller's
                        if len(fns) == 1:
                            return [(False, exc)]
                        raise
                    finally:
                        if queued:
                            _unlock(conn, queue)
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.2)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise _unavailable(exc) from exc
        raise AssertionError("unreachable")

    async def _run(self, fn: Callable[[Any], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call_read, fn)

    async def _read(self, fn: Callable[[Any], T]) -> T:
        """A point read (a record by its key: container, account, object, a generation
        row) on the event loop, over connections of its own (``_LoopReads``).

        Speed: a read through ``_run`` (a thread of the pool, psycopg's blocking calls)
        cost the gateway ~290 µs of CPU; on the loop ~100 µs (the thread hop, the GIL
        hand-offs, the blocking pool's locks; measured on this machine). The bodies are
        the shared synchronous ones: ``fn`` runs against ``_Replay``, which stops it at
        its first statement; the statement runs here, and ``fn`` runs again with that
        statement's rows, until it returns (it reads, decides and returns; running it
        again is harmless). Each statement is one autocommit read, as on ``_run``."""
        results: list[list[Any]] = []
        for _ in range(_REPLAYS):
            try:
                return fn(_Replay(results))
            except _Need as need:
                rows = await self._read_rows(need.sql, need.args)
                if rows is None:
                    break
                results.append(rows)
        return await self._run(fn)

    async def _read_rows(self, sql: str, args: Any) -> list[Any] | None:
        """The rows of one autocommit statement on this loop's connections; None for a
        statement that needs ``_run`` (a parameter holding NUL, see ``_without_nul``)."""
        pg, named = translate(sql)
        params = Adapter._args(named, args) if args else None
        if params and not named and any(isinstance(a, str) and "\0" in a for a in params):
            return None
        reads = self._reads
        if reads is None or reads.pid != os.getpid() or reads.loop is not asyncio.get_running_loop():
            if reads is not None:
                reads.hang_up()
            reads = self._reads = _LoopReads(self.url)
        return await reads.run(pg, params)

    async def _tx(self, fn: Callable[[Any], T], frees: bool = False, queue: str | None = None) -> T:
        """Run ``fn`` in a SERIALIZABLE transaction, retried on a serialization failure.

        ``queue`` (a container key, for the writes of its objects): writers of the same
        queue, on every gateway, run one after the other, each waiting on a session
        advisory lock taken before its transaction begins. Without it, concurrent PUTs
        and DELETEs in one container all update its counter row and insert next to each
        other in the objects index (SSI's page-level predicate locks): PostgreSQL aborted
        them by the thousand ("could not serialize access": ~3 retries per write at 16
        concurrent writers in one container), and the retries with their back-off cost
        more than waiting in line. Correctness does not rest on the lock: every
        transaction is still SERIALIZABLE.

        Within this process the writers of a queue wait in a line of their own: one task
        (``_drain``) runs them, holding one pooled connection (16 writers each waiting
        for the advisory lock on a connection of their own took the whole pool, and a
        login then got a 503 after the pool's timeout). And it runs the writes that came
        while a transaction ran together, in the next transaction (``_call_batch``), each
        under a savepoint: one line costs one commit, one WAL flush, per batch instead of
        per write, as the SQLite store's group commit. Each writer still hears back only
        after the COMMIT that made its write durable, and a body that fails is rolled back
        alone. (16 writers into one container: 3,993 WAL flushes for 4,000 writes one
        transaction each, 1,292 batched; docs/benchmarks.md, session 6.)"""
        memo.forget()  # the request's remembered reads (lampi.store.meta.memo): before and after
        try:
            if queue is None:
                return await asyncio.get_running_loop().run_in_executor(self._executor, self._call_tx, fn)
            fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            waiting = self._waiting.get(queue)
            if waiting is None:  # none in line: this writer drains the line
                self._waiting[queue] = [(fn, fut)]
                task = asyncio.ensure_future(self._drain(queue))
                self._drains.add(task)
                task.add_done_callback(self._drains.discard)
            else:
                waiting.append((fn, fut))
            return await fut
        finally:
            memo.forget()

    async def _drain(self, queue: str) -> None:
        """Run the writes waiting in ``queue``'s line, those that came while a batch ran
        as the next batch (at most BATCH_MAX), until none is left."""
        loop = asyncio.get_running_loop()
        while True:
            waiting = self._waiting[queue]
            if not waiting:
                del self._waiting[queue]
                return
            batch, self._waiting[queue] = waiting[:BATCH_MAX], waiting[BATCH_MAX:]
            try:
                results = await loop.run_in_executor(self._executor, self._call_batch, [f for f, _ in batch], queue)
            except BaseException as exc:  # noqa: BLE001 - the batch's failure is each writer's
                results = [(False, exc)] * len(batch)
            for (_, fut), (ok, value) in zip(batch, results):
                if not fut.done():
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)

    def run_sync(self, fn: Callable[[Any], T]) -> T:
        return self._executor.submit(self._call_read, fn).result()

    # the keys table (lampi.store.meta.sqlite.keys): on this thread, on a pooled connection
    _sync_read = _call_read
    _sync_tx = _call_tx
    shares_keys = True
    # -- whole tables (lampi.store.meta.sqlite.rows) ------------------------------------
    _UPSERT = True  # INSERT ... ON CONFLICT DO UPDATE (RowsMixin._imported)


    async def _rows_read(self, table: str | None, fn: Callable[[Any], T]) -> T:
        return await self._run(fn)

    async def _rows_write(self, table: str, fn: Callable[[Any], T]) -> T:
        def body(c: Any) -> T:
            result = fn(c)
            if table == "revoked":  # gateways re-read the revocations when this moved
                c.execute("UPDATE revoke_gen SET gen = gen + 1 WHERE id = 0")
            return result

        return await self._tx(body)

    @staticmethod
    def _list_tables(c: Any) -> list[str]:
        return [r[0] for r in c.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE'").fetchall()]

    @staticmethod
    def _list_columns(c: Any, table: str) -> list[str]:
        return [r[0] for r in c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ? ORDER BY ordinal_position", (table,)).fetchall()]

    async def ping(self) -> None:
        """Readiness: a query on a pooled connection (DataUnavailable while the database
        cannot be reached)."""
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        reads, self._reads = self._reads, None
        if reads is not None:
            reads.hang_up()
        self._executor.shutdown(wait=True)
        self._pool.close()


def _safe(url: str) -> str:
    """``url`` without its password."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        d = conninfo_to_dict(url)
        if "password" in d:
            d["password"] = "***"
        return make_conninfo(**{k: v for k, v in d.items() if v is not None})
    except Exception:  # noqa: BLE001 - only for a message
        return "the metadata database"
