"""The CDC relay (`manage.py outbox_relay`): committed outbox inserts, read from the binary log,
published to Kafka exactly as Debezium's outbox event router would publish them.

How it keeps its promises:
- **Nothing committed is lost.** The binlog holds only committed transactions. The relay saves its
  position (a `RelayCheckpoint` row) only up to the end of the last transaction whose messages the
  broker acknowledged, and every (re)start resumes from that checkpoint. A crash anywhere re-reads
  and republishes from there: consumers dedupe by event id.
- **Fast.** Messages are produced without waiting per transaction; delivery reports advance an
  in-order list of transactions, and the checkpoint follows the acknowledged prefix (written at most
  every OUTBOX_RELAY_CHECKPOINT_SECONDS when that prefix contains outbox rows, else once a minute:
  the checkpoint write is itself a binlog transaction and must not feed itself).
- **Position:** binlog file/position with `is_mariadb=False` (with `is_mariadb=True`
  the library ignores file/position and would replay the oldest binlog); works the same on MySQL.
- **First start** (no checkpoint): from the current end of the binlog (SHOW MASTER STATUS), saved at
  once. Older rows are not replayed from old binlogs: the fallback task applies any the consumer has
  not applied. The same when the checkpoint's binlog file was purged (error 1236), logged loudly.
- **Reconnects** on any database or broker failure (MariaDB restarted: 2003; connection killed:
  the library reconnects at its current position itself), with back-off, from the checkpoint.
- **Single active relay:** it relays only while holding `GET_LOCK('outbox_relay:<db>')` on a
  dedicated connection (checked every second); another relay waits as a standby and takes over
  when the lock is released or its connection dies. The database name is part of the lock name so
  a test database's relay never waits for the development one.
- **Graceful stop** on SIGTERM/SIGINT: stops reading, flushes the producer, saves the checkpoint.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pymysql
from confluent_kafka import KafkaError, KafkaException, Message
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connection
from django.utils import timezone
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import HeartbeatLogEvent, XidEvent
from pymysqlreplication.row_event import WriteRowsEvent

from common.kafka import GuardedProducer, OutgoingMessage
from common.mysql import BINLOG_GONE, error_code, lock_acquire, lock_held
from outbox.events import outbox_message
from outbox.metrics import RELAY_EVENTS, RELAY_LAG, RELAY_LEADER, RELAY_RESTARTS
from outbox.models import OutboxEvent, RelayCheckpoint

log = logging.getLogger(__name__)

LOCK_CHECK_SECONDS = 1.0
IDLE_CHECKPOINT_SECONDS = 60.0
# Delivery errors no retry can fix (a bad topic name, a message too large): the row is skipped and
# logged; the fallback applies it from the table.
PERMANENT_DELIVERY_ERRORS = {
    KafkaError.TOPIC_EXCEPTION,
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.INVALID_RECORD,
    KafkaError._INVALID_ARG,
}


class LostLeadership(Exception):
    """The single-relay lock is gone (its connection died): stop relaying, wait for it again."""


class DeliveryFailed(Exception):
    """The broker did not acknowledge a message: resume from the checkpoint."""


@dataclass(frozen=True)
class Position:
    log_file: str
    log_pos: int

    def __str__(self) -> str:
        return f"{self.log_file}:{self.log_pos}"


@dataclass(eq=False)
class Transaction:
    """One binlog transaction: its end position once its Xid is read, and its unacknowledged messages."""

    outstanding: int = 0
    rows: int = 0
    newest_created_at: dt.datetime | None = None
    end: Position | None = None


@dataclass
class Progress:
    """Acknowledged prefix of the stream, and what was saved of it."""

    pending: deque[Transaction] = field(default_factory=deque)
    acked: Position | None = None
    acked_created_at: dt.datetime | None = None
    acked_rows: bool = False  # the acknowledged prefix gained outbox rows since the last save
    saved: Position | None = None
    saved_at: float = 0.0

    def advance(self) -> None:
        while self.pending and self.pending[0].end is not None and self.pending[0].outstanding == 0:
            done = self.pending.popleft()
            self.acked = done.end
            if done.rows:
                self.acked_rows = True
                if done.newest_created_at and (
                    self.acked_created_at is None or done.newest_created_at > self.acked_created_at
                ):
                    self.acked_created_at = done.newest_created_at


class Relay:
    def __init__(self, *, server_id: int | None = None, heartbeat: float | None = None):
        db = settings.DATABASES["default"]
        self.db = db
        self.schema = db["NAME"]
        self.table = OutboxEvent._meta.db_table
        self.lock_name = f"outbox_relay:{self.schema}"[:64]
        self.server_id = server_id or settings.OUTBOX_RELAY_SERVER_ID or random.randint(1_000_000, 2**31 - 1)
        self.heartbeat = heartbeat or settings.OUTBOX_RELAY_HEARTBEAT_SECONDS
        self.checkpoint_every = settings.OUTBOX_RELAY_CHECKPOINT_SECONDS
        if settings.PRODUCTION and not settings.CDC_DB_PASSWORD:
            raise ImproperlyConfigured("CDC_DB_USER/CDC_DB_PASSWORD (the replication user) must be set in production")
        self.stopping = threading.Event()
        self.failure: KafkaError | None = None
        self.progress = Progress()

    def stop(self) -> None:
        self.stopping.set()

    # --- the outer loop ---------------------------------------------------------------------

    def run(self) -> None:
        """Until stopped: become the single active relay, relay, and resume after any failure."""
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                with self.leadership() as leading:
                    if leading:
                        self.relay()
                backoff = 0.5
            except LostLeadership as exc:
                RELAY_RESTARTS.labels("leadership").inc()
                log.warning("outbox relay: %s; back to standby", exc)
            except Exception as exc:  # noqa: BLE001 - a daemon: log, back off, resume from the checkpoint
                reason = _reason(exc)
                RELAY_RESTARTS.labels(reason).inc()
                if reason == "binlog_gone":
                    log.error(
                        "outbox relay: %s; restarting from the current binlog end (the fallback "
                        "applies what was not relayed)",
                        exc,
                    )
                    self._forget_checkpoint()
                else:
                    log.warning(
                        "outbox relay: %s: %s; resuming from the checkpoint in %.1f s",
                        type(exc).__name__,
                        exc,
                        backoff,
                        exc_info=reason == "error",
                    )
                connection.close()
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        log.info("outbox relay stopped")

    @contextmanager
    def leadership(self) -> Iterator[bool]:
        """Hold the single-relay lock on a dedicated connection; yields False if stopped while waiting."""
        lock_conn = self._connect(self.db["USER"], self.db["PASSWORD"], database=self.schema)
        try:
            announced = False
            while not self.stopping.is_set():
                if lock_acquire(self.lock_name, wait=1, conn=lock_conn):
                    break
                if not announced:
                    log.info("outbox relay: another relay holds %r; standing by", self.lock_name)
                    announced = True
            else:
                yield False
                return
            RELAY_LEADER.set(1)
            self.lock_conn, self.lock_checked = lock_conn, time.monotonic()
            log.info("outbox relay: active (lock %r, server_id %d)", self.lock_name, self.server_id)
            yield True
        finally:
            RELAY_LEADER.set(0)
            try:
                lock_conn.close()  # releases the lock
            except pymysql.Error:
                pass

    def check_leadership(self) -> None:
        if time.monotonic() - self.lock_checked < LOCK_CHECK_SECONDS:
            return
        self.lock_checked = time.monotonic()
        try:
            holds = lock_held(self.lock_name, conn=self.lock_conn)
        except pymysql.Error as exc:
            raise LostLeadership(f"lock connection failed: {exc}") from exc
        if not holds:
            raise LostLeadership("the single-relay lock is no longer ours")

    # --- one run from the checkpoint --------------------------------------------------------

    def relay(self) -> None:
        start = self.load_checkpoint() or self.start_at_binlog_end()
        self.progress = Progress(acked=start, saved=start, saved_at=time.monotonic())
        self.failure = None
        # A new producer for every run: the one of a failed run may hold a producer id the broker
        # forgot (a restarted tansu keeps none), and would never deliver again.
        self.producer = GuardedProducer(
            **{
                "message.timeout.ms": settings.OUTBOX_RELAY_DELIVERY_TIMEOUT_MS,
                "linger.ms": settings.OUTBOX_RELAY_LINGER_MS,
            }
        )
        self.producer.warm_up()  # a delivered warm-up lets it notice a broker restart while idle
        stream = BinLogStreamReader(
            connection_settings=self._cdc_settings(),
            server_id=self.server_id,
            blocking=True,
            resume_stream=True,
            log_file=start.log_file,
            log_pos=start.log_pos,
            only_events=[WriteRowsEvent, XidEvent, HeartbeatLogEvent],
            only_schemas=[self.schema],
            only_tables=[self.table],
            # Parse the outbox table's map event once per table id, not before every transaction (it
            # was 30 % of the relay's CPU). Safe: an ALTER TABLE gives the table a new id (seen in
            # MariaDB 10.11's binlog), and the reader forgets every id at each binlog rotation, which a
            # server restart causes.
            freeze_schema=True,
            slave_heartbeat=self.heartbeat,
            is_mariadb=False,
            enable_logging=False,
            pymysql_wrapper=_connect_and_log,
        )
        log.info("outbox relay: reading %s.%s from %s", self.schema, self.table, start)
        current = Transaction()
        try:
            for event in stream:
                if isinstance(event, WriteRowsEvent):
                    if event.schema == self.schema and event.table == self.table:
                        for row in event.rows:
                            self.publish(row["values"], current)
                elif isinstance(event, XidEvent):
                    current.end = Position(stream.log_file, stream.log_pos)
                    self.progress.pending.append(current)
                    current = Transaction()
                self.producer.poll(0)
                self.after_each_event()
                if self.stopping.is_set():
                    break
        finally:
            stream.close()
            self.finish()

    def publish(self, row: dict[str, Any], txn: Transaction) -> None:
        try:
            message = outbox_message(row)
        except Exception:  # noqa: BLE001 - one bad row must not wedge the relay; the fallback applies it
            RELAY_EVENTS.labels("skipped").inc()
            log.exception("outbox relay: cannot turn row %r into a message; the fallback will apply it", row.get("id"))
            return
        created_at = _aware(row.get("created_at"))
        txn.rows += 1
        if created_at and (txn.newest_created_at is None or created_at > txn.newest_created_at):
            txn.newest_created_at = created_at

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None and err.code() not in PERMANENT_DELIVERY_ERRORS:
                self.failure = self.failure or err
                return
            txn.outstanding -= 1
            if err is not None:
                _log_skipped(message, err)
                return
            RELAY_EVENTS.labels("published").inc()
            if created_at:
                RELAY_LAG.observe(max(0.0, (timezone.now() - created_at).total_seconds()))

        txn.outstanding += 1
        self._produce(message, on_delivery, txn)

    def _produce(self, message: OutgoingMessage, on_delivery, txn: Transaction) -> None:
        while True:
            try:
                self.producer.produce(
                    message.topic,
                    key=message.key,
                    value=message.value,
                    headers=message.headers,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:  # librdkafka's queue is full: let deliveries drain
                self.producer.poll(0.1)
            except KafkaException as exc:
                if exc.args[0].code() not in PERMANENT_DELIVERY_ERRORS:
                    raise
                txn.outstanding -= 1
                _log_skipped(message, exc.args[0])
                return

    def after_each_event(self) -> None:
        if self.failure is not None:
            raise DeliveryFailed(str(self.failure))
        if self.producer.stale:  # e.g. the broker went away after it delivered: it may come back without our id
            raise DeliveryFailed(self.producer.stale)
        self.progress.advance()
        self.save_checkpoint()
        self.check_leadership()

    def finish(self) -> None:
        """Flush what was produced and save the acknowledged prefix (always safe: it was acknowledged;
        best effort: after a database failure the next start re-reads from the older checkpoint).
        After a delivery failure nothing more is awaited: the producer is discarded (a stale one
        would only wait for its messages to time out) and the next run resumes from the checkpoint."""
        if self.failure is not None or self.producer.stale:
            self.producer.discard()
        else:
            try:
                self.producer.flush(10)
            except (KafkaException, SystemError) as exc:
                log.warning("outbox relay: flush failed: %s", exc)
        self.progress.advance()
        try:
            self.save_checkpoint(force=True)
        except Exception as exc:  # noqa: BLE001
            log.warning("outbox relay: could not save the checkpoint on the way out: %s", exc)

    # --- checkpoint ---------------------------------------------------------------------------

    def load_checkpoint(self) -> Position | None:
        close_old_connections()
        row = RelayCheckpoint.objects.filter(name=RelayCheckpoint.RELAY).first()
        return Position(row.log_file, row.log_pos) if row else None

    def start_at_binlog_end(self) -> Position:
        cdc = self._connect(settings.CDC_DB_USER, settings.CDC_DB_PASSWORD)
        try:
            status = _binlog_status(cdc)
        finally:
            cdc.close()
        if not status:
            raise RuntimeError("the binary log is off: the relay needs log_bin with binlog_format=ROW")
        position = Position(status[0], int(status[1]))
        RelayCheckpoint.objects.update_or_create(
            name=RelayCheckpoint.RELAY,
            defaults={
                "log_file": position.log_file,
                "log_pos": position.log_pos,
                "last_event_created_at": timezone.now(),
                "updated_at": timezone.now(),
            },
        )
        log.info("outbox relay: no checkpoint; starting at the binlog end %s", position)
        return position

    def save_checkpoint(self, *, force: bool = False) -> None:
        """Save the acknowledged position when it gained outbox rows (every `checkpoint_every` s at
        most), else every IDLE_CHECKPOINT_SECONDS if it moved (other tables' transactions; the save
        is one itself, so an idle relay writes once a minute), or, with `force`, whenever it moved."""
        p = self.progress
        if p.acked is None or p.acked == p.saved:
            return
        elapsed = time.monotonic() - p.saved_at
        due = (p.acked_rows and elapsed >= self.checkpoint_every) or elapsed >= IDLE_CHECKPOINT_SECONDS
        if not (force or due):
            return
        close_old_connections()
        defaults: dict[str, Any] = {
            "log_file": p.acked.log_file,
            "log_pos": p.acked.log_pos,
            "updated_at": timezone.now(),
        }
        if p.acked_created_at is not None:
            defaults["last_event_created_at"] = p.acked_created_at
        # One UPDATE in autocommit (update_or_create is a locked read and a write in a transaction):
        # the row exists from the first start (start_at_binlog_end) unless an operator deleted it.
        if not RelayCheckpoint.objects.filter(name=RelayCheckpoint.RELAY).update(**defaults):
            RelayCheckpoint.objects.update_or_create(name=RelayCheckpoint.RELAY, defaults=defaults)
        p.saved, p.saved_at, p.acked_rows = p.acked, time.monotonic(), False

    def _forget_checkpoint(self) -> None:
        try:
            RelayCheckpoint.objects.filter(name=RelayCheckpoint.RELAY).delete()
        except Exception as exc:  # noqa: BLE001
            log.warning("outbox relay: could not drop the stale checkpoint: %s", exc)

    # --- connections ----------------------------------------------------------------------

    def _cdc_settings(self) -> dict[str, Any]:
        return {
            "host": self.db["HOST"] or "127.0.0.1",
            "port": int(self.db["PORT"] or 3306),
            "user": settings.CDC_DB_USER,
            "passwd": settings.CDC_DB_PASSWORD,
            "connect_timeout": 3,
            # A silent server is noticed: heartbeats arrive every `heartbeat` s when idle.
            "read_timeout": max(5, int(self.heartbeat * 10)),
        }

    def _connect(self, user: str, password: str, *, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(
            host=self.db["HOST"] or "127.0.0.1",
            port=int(self.db["PORT"] or 3306),
            user=user,
            password=password,
            database=database,
            autocommit=True,
            connect_timeout=3,
            read_timeout=10,
            write_timeout=10,
        )


def _binlog_status(conn: pymysql.Connection) -> tuple | None:
    """The current binlog file and position. MySQL 8.4 removed SHOW MASTER STATUS for SHOW BINARY
    LOG STATUS; MariaDB knows only the former (and SHOW BINLOG STATUS)."""
    for statement in ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"):
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)
                return cursor.fetchone()
        except pymysql.err.ProgrammingError:
            continue
    return None


def _connect_and_log(**kwargs: Any) -> pymysql.Connection:
    """The replication library's connections, with their server ids in the log (to find them in
    SHOW PROCESSLIST)."""
    conn = pymysql.connect(**kwargs)
    role = "schema" if kwargs.get("db") == "information_schema" else "binlog"
    log.info("outbox relay: %s connection id %d", role, conn.thread_id())
    return conn


def _aware(value: Any) -> dt.datetime | None:
    """Binlog DATETIME values are naive; Django stores them in UTC."""
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _reason(exc: BaseException) -> str:
    if isinstance(exc, pymysql.err.OperationalError) and error_code(exc) == BINLOG_GONE:
        return "binlog_gone"
    if isinstance(exc, DeliveryFailed | KafkaException):
        return "broker"
    if isinstance(exc, pymysql.Error) or type(exc).__module__.startswith(("django.db", "MySQLdb")):
        return "database"
    return "error"


def _log_skipped(message: OutgoingMessage, err: KafkaError) -> None:
    RELAY_EVENTS.labels("skipped").inc()
    log.error(
        "outbox relay: cannot publish event %s to %r (%s); the fallback will apply it",
        dict(message.headers).get("eventId", b"?").decode(),
        message.topic,
        err,
    )
