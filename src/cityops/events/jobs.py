"""The clock worker: takes due ladder steps. Two workers never take the same step: a step is
claimed by a conditional UPDATE on (id, clock_step); on PostgreSQL candidates are also picked
with FOR UPDATE SKIP LOCKED so workers do not queue behind each other. Each case is handled in
its own transaction, by id, so a crash loses at most the step in flight and a restart resumes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from cityops.auth import audit
from cityops.db import transaction, utcnow
from cityops.events import clocks, lifecycle
from cityops.events.models import Case, State
from cityops.notify.channels import Channel

log = logging.getLogger("cityops.worker")
RUNNING = (State.dispatched.value, State.handling.value)


@dataclass
class Tally:
    steps: dict[str, int] = field(default_factory=dict)
    lost_races: int = 0

    @property
    def total(self) -> int:
        return sum(self.steps.values())


def _next_due(session: Session, now: datetime) -> tuple[int, int] | None:
    row = session.execute(
        select(Case.id, Case.clock_step)
        .where(Case.next_clock_at <= now, Case.state.in_(RUNNING))
        .order_by(Case.next_clock_at)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL; ignored by SQLite
    ).first()
    return (row[0], row[1]) if row else None


def _claim(session: Session, case_id: int, step: int, now: datetime) -> bool:
    result = session.execute(
        update(Case)
        .where(Case.id == case_id, Case.clock_step == step, Case.next_clock_at <= now)
        .values(clock_step=step + 1)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def run_due(
    factory: sessionmaker[Session],
    now: datetime | None = None,
    *,
    limit: int = 1000,
) -> Tally:
    """Take every ladder step due at ``now`` (at most ``limit``)."""
    tally = Tally()
    skipped: set[int] = set()
    while tally.total + tally.lost_races < limit:
        moment = now or utcnow()
        try:
            with transaction(factory) as session:
                audit.set_actor(session, audit.Actor("system", "worker", "时限监控 / clock"))
                due = _next_due(session, moment)
                if due is None or due[0] in skipped:
                    return tally
                case_id, step = due
                if step >= len(clocks.LADDER) or not _claim(session, case_id, step, moment):
                    tally.lost_races += 1
                    skipped.add(case_id)
                    continue
                case = session.get(Case, case_id, populate_existing=True)
                assert case is not None
                name = lifecycle.ladder_step(session, case, step, moment)
                if case.state in RUNNING:
                    clocks.reschedule(case)
                tally.steps[name] = tally.steps.get(name, 0) + 1
        except StaleDataError:
            # A person changed the case at the same moment; their change wins, the step is
            # retried on the next pass against the new state.
            tally.lost_races += 1
    return tally


def loop(
    factory: sessionmaker[Session],
    interval_s: float,
    stop: threading.Event,
    channels: Mapping[str, Channel] | None = None,
    retention_months: int = 13,
    settings: Any = None,
) -> None:
    """Run until ``stop`` is set: the body of ``cityops worker`` and of the demo's thread —
    clock steps, alarm duties (no-data rules, expired shelving, telemetry retention), the
    landslide analytics of risk points whose monitors reported, then delivery of the messages
    they and people's actions queued."""
    from cityops.alarms import jobs as alarm_jobs
    from cityops.config import get_settings
    from cityops.notify import service as notify
    from cityops.notify.channels import from_settings
    from cityops.warning import analysis

    channels = channels or from_settings(None)
    settings = settings or get_settings()
    while not stop.is_set():
        try:
            tally = run_due(factory)
            if tally.total:
                log.info("clock steps: %s", tally.steps)
            duties = alarm_jobs.run(factory, retention_months)
            if any(duties.values()):
                log.info("alarm duties: %s", duties)
            evaluated = analysis.job(factory, settings)
            if evaluated:
                log.info("risk points evaluated: %s", evaluated)
            sent = notify.deliver_due(factory, channels)
            if any(sent.values()):
                log.info("messages: %s", sent)
        except Exception:  # keep the worker alive; the next pass retries
            log.exception("worker pass failed")
        stop.wait(interval_s)
