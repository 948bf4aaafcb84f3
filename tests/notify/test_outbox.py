"""Case actions fill the outbox for the people concerned; the worker delivers each message
exactly once, retrying with back-off."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.db import utcnow
from cityops.events.models import Case, CaseEvent
from cityops.notify import service as notify
from cityops.notify.channels import DeliveryError, InApp, Sink
from cityops.notify.models import Message
from cityops.org.models import Person, Unit

GRID = "500154024003001"
Headers = dict[str, str]


def report_and_dispatch(anon: TestClient, login: Callable[[str], Headers]) -> str:
    citizen, town = login("demo-citizen"), login("demo-town")
    body = {"description": "井盖缺失", "region_code": GRID, "reporter_phone": "13800001234"}
    code = anon.post("/api/v1/cases", json=body, headers=citizen).json()["code"]
    anon.post(f"/api/v1/cases/{code}/actions/register", json={"category": "GY01"}, headers=town)
    anon.post(
        f"/api/v1/cases/{code}/actions/dispatch", json={"unit": "TC-500154024-MS"}, headers=town
    )
    return str(code)


def test_dispatch_tells_the_unit_and_the_reporter(
    anon: TestClient, login: Callable[[str], Headers], session: Session
) -> None:
    code = report_and_dispatch(anon, login)
    case_id = session.scalar(select(Case.id).where(Case.code == code))
    unit_id = session.scalar(select(Unit.id).where(Unit.code == "TC-500154024-MS"))
    staff = set(session.scalars(select(Person.id).where(Person.unit_id == unit_id)))
    messages = session.scalars(select(Message).where(Message.case_id == case_id)).all()
    to_unit = [m for m in messages if m.template == "dispatch"]
    assert {m.person_id for m in to_unit if m.channel == "inapp"} == staff
    assert any(m.channel == "sms" for m in to_unit)  # dispatch also goes by SMS
    assert all(code in m.text and m.case_event_id for m in to_unit)
    follow = {(m.template, m.channel) for m in messages if m.template.startswith("follow_")}
    assert {("follow_register", "sms"), ("follow_dispatch", "sms")} <= follow
    assert {("follow_register", "inapp"), ("follow_dispatch", "inapp")} <= follow


def test_the_same_event_never_queues_twice(
    anon: TestClient, login: Callable[[str], Headers], session: Session
) -> None:
    code = report_and_dispatch(anon, login)
    case = session.scalars(select(Case).where(Case.code == code)).one()
    event = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action == "dispatch")
    ).one()
    before = session.scalar(select(func.count()).select_from(Message))
    notify.case_event(session, case, event)
    assert session.scalar(select(func.count()).select_from(Message)) == before


class Flaky:
    name = "sms"

    def __init__(self, failures: int) -> None:
        self.failures, self.sent = failures, 0

    def send(self, message: Message) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("gateway busy")
        self.sent += 1


def test_retries_with_back_off_and_delivers_once(
    anon: TestClient, login: Callable[[str], Headers], session: Session, connection: Connection
) -> None:
    report_and_dispatch(anon, login)
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    sms = Flaky(failures=2)
    sms_count = session.scalar(select(func.count()).where(Message.channel == "sms")) or 0
    assert sms_count >= 2
    now = utcnow()
    first = notify.deliver_due(factory, {"inapp": InApp(), "sms": sms}, now)
    assert first["retry"] == 2 and first["sent"] >= 1
    # Not due yet: nothing is retried before the back-off has passed.
    assert (
        notify.deliver_due(factory, {"inapp": InApp(), "sms": sms}, now + timedelta(seconds=10))[
            "sent"
        ]
        == 0
    )
    later = notify.deliver_due(factory, {"inapp": InApp(), "sms": sms}, now + timedelta(hours=2))
    assert later["sent"] == 2 and sms.sent == sms_count
    assert notify.deliver_due(factory, {"inapp": InApp(), "sms": sms}, now + timedelta(days=1)) == {
        "sent": 0,
        "retry": 0,
        "failed": 0,
    }
    states = dict(
        session.execute(select(Message.state, func.count()).group_by(Message.state)).all()
    )
    assert set(states) == {"sent"}


def test_gives_up_after_the_last_attempt(
    anon: TestClient, login: Callable[[str], Headers], session: Session, connection: Connection
) -> None:
    report_and_dispatch(anon, login)
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    dead = Flaky(failures=10**6)
    moment = utcnow()
    for _ in range(notify.MAX_ATTEMPTS):
        notify.deliver_due(factory, {"inapp": InApp(), "sms": dead}, moment)
        moment += timedelta(hours=2)
    failed = session.scalars(select(Message).where(Message.channel == "sms")).all()
    assert failed and all(m.state == "failed" and m.attempts == notify.MAX_ATTEMPTS for m in failed)
    assert all(m.last_error == "gateway busy" for m in failed)


def test_sink_records_and_my_notifications(
    anon: TestClient,
    login: Callable[[str], Headers],
    connection: Connection,
    client: TestClient,
    session: Session,
) -> None:
    report_and_dispatch(anon, login)
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    sink = Sink("sms")
    notify.deliver_due(factory, {"inapp": InApp(), "sms": sink})
    assert any(to == "13800001234" for to, _text in sink.sent)
    citizen = login("demo-citizen")
    mine = anon.get("/api/v1/notifications", headers=citizen).json()
    assert mine["unread"] >= 2 and any("已受理" in n["text"] for n in mine["items"])
    first = mine["items"][0]["id"]
    assert anon.post(f"/api/v1/notifications/{first}/read", headers=citizen).status_code == 204
    assert anon.get("/api/v1/notifications", headers=citizen).json()["unread"] == mine["unread"] - 1
    other = login("demo-grid")
    assert anon.post(f"/api/v1/notifications/{first}/read", headers=other).status_code == 404


def test_http_gateways_post_to_a_real_server(
    app: object,
    anon: TestClient,
    login: Callable[[str], Headers],
    connection: Connection,
    session: Session,
) -> None:
    """SMS gateway and work-app webhook through HTTP, against a server on 127.0.0.1."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from cityops import events
    from cityops.notify.channels import from_settings

    received: list[tuple[str, dict[str, object], str]] = []
    failures = {"left": 1}

    class Gateway(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if failures["left"]:
                failures["left"] -= 1
                self.send_response(503)
            else:
                received.append((self.path, body, self.headers.get("Authorization", "")))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    settings = app.state.settings.model_copy(update={"notify_webhook_url": f"{base}/hook"})  # type: ignore[attr-defined]
    try:
        events.configure(settings)
        report_and_dispatch(anon, login)
        channels = from_settings(f"{base}/sms", "s3cret", f"{base}/hook")
        factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
        first = notify.deliver_due(factory, channels)
        assert first["retry"] == 1  # the gateway's 503 is retried, not lost
        notify.deliver_due(factory, channels, utcnow() + timedelta(hours=1))
    finally:
        events.configure(app.state.settings)  # type: ignore[attr-defined]
        server.shutdown()
    paths = [p for p, _b, _a in received]
    assert "/hook" in paths and "/sms" in paths
    hook = next(b for p, b, _a in received if p == "/hook")
    assert hook["to"] == "TC-500154024-MS" and "派遣" in str(hook["text"])
    assert any(a == "Bearer s3cret" for p, _b, a in received if p == "/sms")
    webhooks = session.scalars(select(Message).where(Message.channel == "webhook")).all()
    assert webhooks and all(m.state == "sent" for m in webhooks)
    assert len(received) == session.scalar(
        select(func.count()).select_from(Message).where(Message.channel.in_(["sms", "webhook"]))
    )


def test_email_through_a_real_smtp_server(
    app: object,
    anon: TestClient,
    login: Callable[[str], Headers],
    connection: Connection,
    session: Session,
) -> None:
    import socket

    from aiosmtpd.controller import Controller

    from cityops import events
    from cityops.notify.channels import Email, from_settings

    class Inbox:
        def __init__(self) -> None:
            self.mails: list[tuple[list[str], bytes]] = []

        async def handle_DATA(self, server: object, smtp_session: object, envelope: object) -> str:
            self.mails.append((list(envelope.rcpt_tos), envelope.content))  # type: ignore[attr-defined]
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    unit = session.scalar(select(Unit.id).where(Unit.code == "TC-500154024-MS"))
    staff = session.scalars(select(Person).where(Person.unit_id == unit)).all()
    for i, person in enumerate(staff):
        person.email = f"ms{i}@kaizhou.example"
    session.flush()
    settings = app.state.settings.model_copy(update={"notify_smtp_host": "127.0.0.1"})  # type: ignore[attr-defined]
    try:
        events.configure(settings)
        report_and_dispatch(anon, login)
        channels = from_settings(
            None, email=Email("127.0.0.1", port, "cityops@kaizhou.example", starttls=False)
        )
        factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
        notify.deliver_due(factory, channels)
    finally:
        events.configure(app.state.settings)  # type: ignore[attr-defined]
        server.stop()
    to = sorted(r for rcpts, _ in inbox.mails for r in rcpts)
    assert to == sorted(p.email for p in staff if p.email)
    import email
    from email import policy

    for _rcpts, content in inbox.mails:
        mail = email.message_from_bytes(content, policy=policy.default)
        body = mail.get_body(preferencelist=("plain",))
        assert body is not None and "派遣" in body.get_content()  # type: ignore[union-attr]
        assert mail["From"] == "cityops@kaizhou.example"
        assert str(mail["Subject"]).startswith("[CityOps]")
    sent = session.scalars(select(Message).where(Message.channel == "email")).all()
    assert sent and all(m.state == "sent" for m in sent)
