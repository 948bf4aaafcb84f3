"""Delivery channels. Each takes a message and either returns (delivered) or raises
``DeliveryError`` (to be retried). Real gateways are configured; the demo records messages."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

from cityops.notify.models import Message


class DeliveryError(Exception):
    pass


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> None: ...


@dataclass
class InApp:
    """Shown in the apps from the outbox itself; delivering only marks it available."""

    name: str = "inapp"

    def send(self, message: Message) -> None:
        return None


@dataclass
class Sink:
    """Records what would have been sent (demo and tests)."""

    name: str
    sent: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: Message) -> None:
        with self._lock:
            self.sent.append((message.address, message.text))


@dataclass
class HttpGateway:
    """A JSON POST to an SMS gateway or a work-app (WeCom / 渝快政) webhook."""

    name: str
    url: str
    token: str = ""
    timeout_s: float = 10.0

    def send(self, message: Message) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body: dict[str, Any] = {
            "to": message.address,
            "text": message.text,
            "template": message.template,
            "params": message.params,
            "id": message.dedupe_key,
        }
        try:
            r = requests.post(self.url, json=body, headers=headers, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise DeliveryError(str(exc)) from exc
        if r.status_code >= 300:
            raise DeliveryError(f"{self.name} gateway answered {r.status_code}")


@dataclass
class Email:
    """E-mail through an SMTP server (STARTTLS and log-in when configured)."""

    host: str
    port: int = 587
    sender: str = "cityops@localhost"
    starttls: bool = True
    user: str = ""
    password: str = ""
    name: str = "email"
    timeout_s: float = 15.0

    def send(self, message: Message) -> None:
        import smtplib
        from email.message import EmailMessage

        mail = EmailMessage()
        mail["From"], mail["To"] = self.sender, message.address
        mail["Subject"] = f"[CityOps] {message.text[:40]}"
        mail["Message-ID"] = f"<{message.dedupe_key.replace(':', '.')}@cityops>"
        mail.set_content(message.text)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"smtp: {exc}") from exc


def from_settings(
    sms_url: str | None,
    sms_token: str = "",
    webhook_url: str | None = None,
    webhook_token: str = "",
    email: Email | None = None,
) -> dict[str, Channel]:
    """In-app always; SMS through the configured gateway (recorded only when none is set); the
    work-app webhook when configured."""
    sms: Channel = HttpGateway("sms", sms_url, sms_token) if sms_url else Sink("sms")
    channels: dict[str, Channel] = {"inapp": InApp(), "sms": sms}
    if webhook_url:
        channels["webhook"] = HttpGateway("webhook", webhook_url, webhook_token)
    if email is not None:
        channels["email"] = email
    return channels


def email_from(settings: object) -> Email | None:
    host = getattr(settings, "notify_smtp_host", None)
    if not host:
        return None
    return Email(
        host=host,
        port=getattr(settings, "notify_smtp_port", 587),
        sender=getattr(settings, "notify_smtp_from", "cityops@localhost"),
        starttls=getattr(settings, "notify_smtp_starttls", True),
        user=getattr(settings, "notify_smtp_user", ""),
        password=getattr(settings, "notify_smtp_password", ""),
    )
