"""The MQTT ingest worker (``cityops ingest``): broker → batches → ``ingest()`` → acknowledge.

Devices publish readings to ``cityops/{device or group}/telemetry`` (a JSON object or an
array of them, see :mod:`cityops.telemetry.validate`). Workers share one subscription
(``$share/{group}/{topic}``, QoS 1), so several of them split the load. Each keeps a
persistent MQTT 5 session under a stable client id and acknowledges by hand: the messages of a
batch (up to ``batch`` of them, or whatever arrived within ``window_s``) are stored in one
database transaction, and only after its commit are they acknowledged. A worker killed at any
moment therefore loses nothing — the broker sends the unacknowledged messages again when the
same client id comes back — and repeats nothing, because ``ingest()`` stores a reading once
per (device, metric, ts) and rules only look at readings newer than the series had.

A reading without ``"device"`` belongs to the topic's device; a reading may name another
device only when the topic names that device's group (a gateway). A message that cannot be
read (not UTF-8, not JSON, not an object or array, too large) is counted, logged and
acknowledged, so it cannot come back for ever; it and every rejected reading are reported on
``cityops/{segment}/rejected`` (QoS 0) as ``{"rejected": [...]}`` for the device's owner.

Broker notes (Mosquitto 2.0): a shared subscriber with a persistent session keeps receiving
its share while it is away (the messages wait for it), and the broker keeps at most
``max_queued_messages`` (default 1000) per client and drops the rest — size it for the
longest outage a worker should survive, and give every worker its own client id.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from msgspec import UNSET
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic_core import from_json
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cityops import sqlite_turns
from cityops.auth import audit
from cityops.db import readers_of, transaction, utcnow, writer_turns
from cityops.telemetry import wire
from cityops.telemetry.directory import DIRECTORY, DeviceInfo
from cityops.telemetry.ingest import Policy, Result, check_readings, store_checked
from cityops.telemetry.validate import Rejection, device_code, rejection

log = logging.getLogger("cityops.ingest")

ACTOR = audit.Actor("system", "ingest", "MQTT 接入 / ingest")
MAX_PAYLOAD = 1024 * 1024  # bytes
MAX_REPORTED = 1000  # rejections per message reported back

_PAYLOAD_MESSAGES = {
    "too_large": "消息超过 1 MB / message larger than 1 MB",
    "not_utf8": "消息不是 UTF-8 文本 / message is not UTF-8 text",
    "not_json": "消息不是有效的 JSON / message is not valid JSON",
    "not_object_or_array": "消息须为 JSON 对象或数组 / message must be a JSON object or array",
    "too_many": "一条消息中的读数过多 / too many readings in one message",
    # Left in a persistent session by an earlier configuration; not answered.
    "wrong_topic": "主题不符合订阅 / topic does not match the configured filter",
}


# --- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:  # never shows the password
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_url(url: str) -> Broker:
    """``mqtt://[user:password@]host[:port]`` (1883) or ``mqtts://…`` (TLS, 8883)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a broker address ({exc})") from None
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError("must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError("names no host (mqtt://host:1883)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be mqtt://host:port only (no path or query)")
    tls = parts.scheme in ("mqtts", "ssl")
    return Broker(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def check_topic(topic: str) -> int:
    """The level of ``topic`` that names the device or group: its one ``+``. The last level
    must be a plain word (``telemetry``); rejections go to the same topic ending ``rejected``."""
    levels = topic.split("/")
    if "#" in topic or levels.count("+") != 1:
        raise ValueError("must hold exactly one '+' (the device or group) and no '#'")
    if levels[-1] in ("+", "", "rejected") or topic.startswith("$"):
        raise ValueError("must end with a plain level such as 'telemetry'")
    if any(("+" in level and level != "+") for level in levels):
        raise ValueError("'+' must stand for a whole level")
    return levels.index("+")


@dataclass(frozen=True)
class Config:
    url: str = "mqtt://127.0.0.1:1883"
    topic: str = "cityops/+/telemetry"
    group: str = "cityops"
    client_id: str = ""  # default: cityops-ingest-{host name}
    batch: int = 20
    window_s: float = 0.05
    session_expiry_s: int = 7 * 86_400
    stats_every_s: float = 60.0
    retries: int = 5
    keepalive_s: int = 30
    max_payload: int = MAX_PAYLOAD

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> Config:
        values = {
            "url": settings.mqtt_url,
            "topic": settings.mqtt_topic,
            "group": settings.mqtt_share_group,
            "batch": settings.mqtt_batch,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{self.topic}"

    def resolved_client_id(self) -> str:
        return self.client_id or f"cityops-ingest-{socket.gethostname()}"


# --- counters -------------------------------------------------------------------------------


@dataclass
class Stats:
    connects: int = 0  # successful connections to the broker (more than one: reconnected)
    received: int = 0  # messages taken from the broker (redelivered ones included)
    redelivered: int = 0  # of which the broker marked as sent before
    readings: int = 0  # readings in well-formed messages
    stored: int = 0
    duplicates: int = 0  # readings stored before (redelivery, retries, repeats)
    rejected: int = 0  # readings rejected, with their reasons reported back
    malformed: int = 0  # messages rejected whole
    alarms: int = 0  # alarm changes
    batches: int = 0  # transactions committed
    acked: int = 0
    retries: int = 0  # transactions retried after a transient database error
    failed: int = 0  # batches given up for now (not acknowledged)
    last_error: str | None = None
    last_error_at: datetime | None = None

    def error(self, message: str) -> None:
        self.last_error = message[:500]
        self.last_error_at = utcnow()

    def line(self) -> str:
        text = (
            f"connects {self.connects}, "
            f"received {self.received} (redelivered {self.redelivered}), "
            f"stored {self.stored}, duplicates {self.duplicates}, rejected {self.rejected}, "
            f"malformed {self.malformed}, alarms {self.alarms}, batches {self.batches}, "
            f"retries {self.retries}, failed {self.failed}"
        )
        return text + (f"; last error: {self.last_error}" if self.last_error else "")


# --- messages -------------------------------------------------------------------------------


@dataclass
class Inbound:
    mid: int
    qos: int
    topic: str
    payload: bytes
    dup: bool
    generation: int  # the connection it arrived on: only that one may acknowledge it


@dataclass
class Parsed:
    message: Inbound
    segment: str
    items: list[Any] = field(default_factory=list)
    problem: str | None = None  # a reason from _PAYLOAD_MESSAGES: the message is rejected whole


def parse(message: Inbound, topic: str, max_payload: int, max_items: int) -> Parsed:
    levels = message.topic.split("/")
    level = topic.split("/").index("+")
    out = Parsed(message, levels[level] if level < len(levels) else "")
    if not mqtt.topic_matches_sub(topic, message.topic):
        out.problem = "wrong_topic"
        return out
    if len(message.payload) > max_payload:
        out.problem = "too_large"
        return out
    typed = wire.decode(message.payload)
    if typed is not None:
        if len(typed) > max_items:
            out.problem = "too_many"
            return out
        for reading in typed:
            if reading.device is UNSET:
                reading.device = out.segment
        out.items = typed
        return out
    try:
        data = from_json(message.payload)
    except ValueError:  # the standard library decides what pydantic-core's parser refuses
        try:
            text = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            out.problem = "not_utf8"
            return out
        try:
            data = json.loads(text, parse_int=_number)
        except (ValueError, RecursionError):
            out.problem = "not_json"
            return out
    if isinstance(data, dict):
        items: list[Any] = [data]
    elif isinstance(data, list):
        items = data
    else:
        out.problem = "not_object_or_array"
        return out
    if len(items) > max_items:
        out.problem = "too_many"
        return out
    out.items = [
        {**item, "device": out.segment} if isinstance(item, dict) and "device" not in item else item
        for item in items
    ]
    return out


def _number(digits: str) -> int | float:
    """JSON integers too long for a float become ±inf, rejected as not finite — ``validate``
    would raise OverflowError on them (``math.isfinite(10**400)``)."""
    return int(digits) if len(digits) <= 300 else float(digits)


def may_speak_for(segment: str, device: DeviceInfo) -> bool:
    """A topic may carry its own device's readings, or those of its group's devices."""
    return device.code == segment or device.group == segment


def rejected_topic(topic: str) -> str:
    return topic.rsplit("/", 1)[0] + "/rejected"


@dataclass
class Call:
    """The one ``ingest()`` of a batch: its readings, where each came from, and the gateway
    topic each came on (None: its own device's topic)."""

    items: list[Any] = field(default_factory=list)
    where: list[tuple[Parsed, int]] = field(default_factory=list)  # message, index in it
    gateways: list[str | None] = field(default_factory=list)
    result: Result | None = None

    def codes(self) -> set[str]:
        return {code for i in self.items if isinstance(code := device_code(i), str)}


def plan(parsed: list[Parsed]) -> Call | None:
    """Every well-formed message's readings, in one call; a reading naming a device other
    than its topic's keeps the topic as its gateway (whose group decides whether it may)."""
    call = Call()
    for p in parsed:
        if p.problem is not None:
            continue
        for index, item in enumerate(p.items):
            code = device_code(item)
            mine = code is None or code == p.segment
            call.items.append(item)
            call.where.append((p, index))
            call.gateways.append(None if mine else p.segment)
    return call if call.items else None


def screen(call: Call, devices: Mapping[str, DeviceInfo]) -> tuple[list[int], list[Rejection]]:
    """Which readings go on to ``ingest()`` (their positions in the call), and the rejections
    of the others: a reading a gateway topic carries for an active device outside its group
    (``may_speak_for``). ``ingest()`` itself rejects unknown and deactivated devices, before
    asking whether a topic may speak for them — as it does here."""
    keep: list[int] = []
    refused: list[Rejection] = []
    for position, (item, gateway) in enumerate(zip(call.items, call.gateways, strict=True)):
        if gateway is not None:
            code = device_code(item)
            device = devices.get(code) if isinstance(code, str) else None
            if device is not None and device.active and not may_speak_for(gateway, device):
                refused.append(rejection(position, "device", "forbidden_device", device.code))
                continue
        keep.append(position)
    return keep, refused


TRANSIENT = (OperationalError, IntegrityError, InterfaceError)


def is_transient(exc: BaseException) -> bool:
    """Worth trying again: lock timeouts, deadlocks, serialisation failures, a lost
    connection, and a unique key taken by a concurrent worker a moment before us."""
    if isinstance(exc, TRANSIENT):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class TransientFailure(Exception):
    """A batch that kept failing on transient errors: kept, not acknowledged, tried later."""


# --- the worker -----------------------------------------------------------------------------


class IngestWorker:
    """One consumer of the shared subscription. ``run()`` blocks until ``stop()``; tests and
    embedders may call ``start()`` / ``step()`` / ``close()`` themselves."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        config: Config,
        *,
        policy: Policy | None = None,
        clock: Callable[[], datetime] = utcnow,
        fold: bool = True,
        on_stored: Callable[[], object] | None = None,
    ) -> None:
        """``fold=False``: leave the roll-ups and latest values to a folder running beside
        the worker (``cityops ingest`` starts one; see ``cityops.telemetry.fold``), which
        ``on_stored`` tells of each batch that stored readings (``Folder.stored``)."""
        self.factory = factory
        self.config = config
        self.policy = policy or Policy()
        self.clock = clock
        self.fold = fold
        self.on_stored = on_stored
        self.broker = parse_url(config.url)
        check_topic(config.topic)
        self.client_id = config.resolved_client_id()
        self.stats = Stats()
        self.subscribed = threading.Event()  # the broker granted the subscription
        self._stop = threading.Event()
        self._inbox: queue.Queue[Inbound] = queue.Queue()
        self._held: deque[Inbound] = deque()  # a failed batch, tried again first
        self._lock = threading.Lock()  # generation and connected, read when acknowledging
        self._generation = 0
        self._connected = False
        self._failures = 0  # consecutive failed batches, for the pause before the next try
        self._next_stats = time.monotonic() + config.stats_every_s
        self._turns_since = (time.monotonic(), writer_turns(self.factory) or sqlite_turns.Usage())
        self._started = False
        self.client = self._make_client()

    # --- connection (the network thread runs the callbacks) --------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self.broker.tls:
            client.tls_set()
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.stats.error(f"broker refused the connection: {reason}")
            log.error("ingest %s: broker %s refused: %s", self.client_id, self.broker, reason)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
        self.stats.connects += 1
        log.info(
            "ingest %s: connected to %s (session %s)",
            self.client_id,
            self.broker,
            "resumed" if flags.session_present else "new",
        )
        # Subscribing again on a resumed session is harmless and covers a lost one.
        client.subscribe(self.config.subscription, qos=1)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        with self._lock:
            self._connected = False
        self.subscribed.clear()
        if not self._stop.is_set():
            self.stats.error(f"disconnected from the broker: {reason}")
            log.warning("ingest %s: disconnected (%s); reconnecting", self.client_id, reason)

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        if any(r.is_failure for r in reasons):
            self.stats.error(f"subscription refused: {reasons}")
            log.error(
                "ingest %s: %s refused: %s", self.client_id, self.config.subscription, reasons
            )
            return
        if any(r.value < 1 for r in reasons):
            log.warning("ingest %s: broker granted QoS 0 only", self.client_id)
        self.subscribed.set()
        log.info("ingest %s: subscribed to %s", self.client_id, self.config.subscription)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Nothing may escape: an exception here would end the network thread.
        self.stats.received += 1
        if msg.dup:
            self.stats.redelivered += 1
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = "(topic not UTF-8)"  # matches no filter: acknowledged as a wrong topic
        self._inbox.put(
            Inbound(msg.mid, msg.qos, topic, bytes(msg.payload), bool(msg.dup), self._generation)
        )

    def start(self) -> None:
        """Connect (in the background, retrying until the broker answers) and subscribe."""
        if self._started:
            return
        self._started = True
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        self.client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=self.config.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Ask ``run()`` to finish the batch in hand and return (safe from signal handlers)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        """Disconnect, keeping the session: unacknowledged messages wait for this client id."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            self._connected = False

    def run(self) -> Stats:
        log.info(
            "ingest %s: %s %s, batches of up to %d",
            self.client_id,
            self.broker,
            self.config.subscription,
            self.config.batch,
        )
        self.start()
        try:
            while not self._stop.is_set():
                self.step(timeout=0.2)
        finally:
            self.close()
            log.info(
                "ingest %s: stopped; %s%s", self.client_id, self.stats.line(), self._writer_line()
            )
        return self.stats

    # --- batches (the caller's thread) ------------------------------------------------------

    def step(self, timeout: float = 0.2) -> int:
        """Take one batch (waiting up to ``timeout`` for its first message), store it and
        acknowledge it; the number of messages handled."""
        if self._failures:
            pause = min(30.0, 0.5 * 2 ** (self._failures - 1))
            if self._stop.wait(pause):
                return 0
        batch = self._take(timeout)
        handled = self.process(batch) if batch else 0
        if time.monotonic() >= self._next_stats:
            self._next_stats = time.monotonic() + self.config.stats_every_s
            log.info("ingest %s: %s%s", self.client_id, self.stats.line(), self._writer_line())
        return handled

    def _writer_line(self) -> str:
        """On SQLite, this process's share of the single write lock since the last figures:
        held nearly all the time, the writer is the limit (PostgreSQL has none)."""
        now, usage = time.monotonic(), writer_turns(self.factory)
        if usage is None:
            return ""
        span, last = now - self._turns_since[0], self._turns_since[1]
        self._turns_since = (now, usage)
        u = usage.since(last)
        return (
            f"; SQLite write lock: held {u.held_s:.1f} s ({u.held_s / max(span, 1e-9):.0%}),"
            f" waited {u.waited_s:.1f} s, {u.turns} turns in {span:.0f} s"
        )

    def _take(self, timeout: float) -> list[Inbound]:
        limit = max(1, self.config.batch)
        batch: list[Inbound] = []
        while self._held and len(batch) < limit:
            batch.append(self._held.popleft())
        if not batch:
            try:
                batch.append(self._inbox.get(timeout=timeout))
            except queue.Empty:
                return []
        deadline = time.monotonic() + self.config.window_s
        while len(batch) < limit:
            try:
                batch.append(self._inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._inbox.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def process(self, batch: list[Inbound]) -> int:
        parsed = [
            parse(m, self.config.topic, self.config.max_payload, self.policy.batch_max)
            for m in batch
        ]
        try:
            results = self._commit(parsed)
        except Exception as exc:
            if isinstance(exc, TransientFailure) and not isinstance(exc.__cause__, IntegrityError):
                # The database is away or overloaded: keep the batch, pause, try again.
                self._failures += 1
                self.stats.failed += 1
                self.stats.error(str(exc))
                log.error(
                    "ingest %s: batch of %d messages not stored, kept for another try: %s",
                    self.client_id,
                    len(batch),
                    exc,
                )
                self._held.extendleft(reversed(batch))
                return 0
            if len(batch) > 1:  # find the message that breaks it and store the others
                log.warning("ingest %s: batch failed (%s); one at a time", self.client_id, exc)
                handled = 0
                for i, m in enumerate(batch):
                    failures = self._failures
                    handled += self.process([m])
                    if self._failures > failures:  # the database went away: keep the rest
                        self._held.extend(batch[i + 1 :])
                        break
                return handled
            self.stats.failed += 1
            self.stats.error(f"{type(exc).__name__}: {_short(exc)}")
            log.exception(
                "ingest %s: message on %s not stored and not acknowledged "
                "(the broker sends it again when this worker reconnects)",
                self.client_id,
                batch[0].topic,
            )
            return 0
        self._failures = 0
        self._acknowledge(batch)
        self._account(parsed, results)
        self._report(parsed, results)
        return len(batch)

    def _commit(self, parsed: list[Parsed]) -> list[Call]:
        """Everything well-formed in one transaction and one ``ingest()``; a gateway's reading
        for a device outside its group is rejected first (``screen``)."""
        call = plan(parsed)
        if call is None:
            return []
        attempt = 0
        while True:
            try:
                now = self.clock()
                # Checked in a transaction that only reads (on SQLite: without the write lock),
                # so that one worker checks its batch while another writes.
                with transaction(readers_of(self.factory)) as session:
                    keep, refused = screen(call, DIRECTORY.lookup(session, call.codes()))
                    checked = check_readings(
                        session, [call.items[i] for i in keep], now, policy=self.policy
                    )
                with transaction(self.factory) as session:
                    audit.set_actor(session, ACTOR)
                    result = store_checked(session, checked, now, fold=self.fold)
                if result.stored and self.on_stored is not None:
                    self.on_stored()
                result.received = len(call.items)
                result.rejected = sorted(
                    refused + [replace(r, index=keep[r.index]) for r in result.rejected],
                    key=lambda r: r.index,
                )
                call.result = result
                return [call]
            except Exception as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                if attempt > self.config.retries:
                    raise TransientFailure(
                        f"{type(exc).__name__} after {attempt} tries: {_short(exc)}"
                    ) from exc
                self.stats.retries += 1
                delay = min(2.0, 0.05 * 2 ** (attempt - 1)) * (0.5 + random.random())
                log.info(
                    "ingest %s: transient database error (%s); retry %d in %.2f s",
                    self.client_id,
                    _short(exc),
                    attempt,
                    delay,
                )
                time.sleep(delay)

    def _acknowledge(self, batch: list[Inbound]) -> None:
        """In the order received, and only on the connection each message came on (after a
        reconnect the broker sends the rest again, and they are stored once)."""
        with self._lock:
            for m in batch:
                if m.qos > 0 and self._connected and m.generation == self._generation:
                    self.client.ack(m.mid, m.qos)
                    self.stats.acked += 1

    def _account(self, parsed: list[Parsed], calls: list[Call]) -> None:
        s = self.stats
        s.batches += 1
        for p in parsed:
            if p.problem is not None:
                s.malformed += 1
                log.warning(
                    "ingest %s: %s on %s (%d bytes): %s",
                    self.client_id,
                    p.problem,
                    p.message.topic,
                    len(p.message.payload),
                    _PAYLOAD_MESSAGES[p.problem],
                )
            else:
                s.readings += len(p.items)
        for call in calls:
            if call.result is not None:
                s.stored += call.result.stored
                s.duplicates += call.result.duplicates
                s.rejected += len(call.result.rejected)
                s.alarms += len(call.result.alarms)

    def _report(self, parsed: list[Parsed], calls: list[Call]) -> None:
        """Tell each device's owner what was rejected and why: one report per message, with
        each reading's index in that message."""
        reports: dict[int, list[dict[str, Any]]] = {}
        for p in parsed:
            if p.problem is not None and p.problem != "wrong_topic":
                reports[id(p)] = [
                    {
                        "index": None,
                        "device": p.segment,
                        "field": "payload",
                        "reason": p.problem,
                        "message": _PAYLOAD_MESSAGES[p.problem],
                    }
                ]
        for call in calls:
            for r in call.result.rejected if call.result else []:
                p, index = call.where[r.index]
                reports.setdefault(id(p), []).append(replace(r, index=index).as_dict())
        for p in parsed:
            rejected = reports.get(id(p))
            if rejected:
                body = {"rejected": rejected[:MAX_REPORTED], "rejected_count": len(rejected)}
                self.client.publish(
                    rejected_topic(p.message.topic), json.dumps(body, ensure_ascii=False), qos=0
                )


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0][:300]
