"""A small server-sent-events client over a plain socket: reads with deadlines, so a test
waits exactly as long as it allows and never hangs on a quiet stream."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit


@dataclass(frozen=True)
class Event:
    id: int
    topic: str
    data: dict[str, Any]
    received: float  # time.perf_counter() when it arrived


class Stream:
    """GET an event stream; ``status`` and ``headers`` are read at once; events as they come."""

    def __init__(
        self,
        base: str,
        path: str = "/api/v1/stream",
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        url = urlsplit(base)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=5)
        target = path + ("?" + urlencode(params) if params else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {url.netloc}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._raw = b""  # bytes as received (chunked)
        self._text = ""  # the decoded body not yet parsed
        self.done = False  # the server ended the response
        self.comments: list[str] = []
        self.retry: int | None = None
        head = self._until(b"\r\n\r\n", time.monotonic() + 5)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {
            k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines if h)
        }
        self.chunked = self.headers.get("transfer-encoding", "") == "chunked"
        if not self.chunked:  # an error response: the whole (JSON) body
            length = int(self.headers.get("content-length", "0"))
            deadline = time.monotonic() + 5
            while len(self._raw) < length and self._recv(deadline):
                pass
            self.body = json.loads(self._raw[:length] or b"null")
            self.close()

    def _recv(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.done:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.done = True
            return False
        self._raw += data
        return True

    def _until(self, marker: bytes, deadline: float) -> bytes:
        while marker not in self._raw:
            if not self._recv(deadline):
                raise TimeoutError(f"no {marker!r} from the server")
        head, self._raw = self._raw.split(marker, 1)
        return head

    def _decode(self) -> None:
        while True:
            line_end = self._raw.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self._raw[:line_end].split(b";")[0], 16)
            if len(self._raw) < line_end + 2 + size + 2:
                return
            chunk = self._raw[line_end + 2 : line_end + 2 + size]
            self._raw = self._raw[line_end + 2 + size + 2 :]
            if size == 0:
                self.done = True
                return
            self._text += chunk.decode()

    def next(self, timeout: float = 1.0) -> Event | None:
        """The next event within ``timeout`` seconds, or None (quiet, or the stream ended)."""
        deadline = time.monotonic() + timeout
        while True:
            self._decode()
            while "\n\n" in self._text:
                block, self._text = self._text.split("\n\n", 1)
                fields: dict[str, str] = {}
                for line in block.split("\n"):
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    elif ":" in line:
                        name, value = line.split(":", 1)
                        fields[name] = value[1:] if value.startswith(" ") else value
                if "retry" in fields:
                    self.retry = int(fields["retry"])
                if "data" in fields:
                    return Event(
                        int(fields["id"]),
                        fields.get("event", "message"),
                        json.loads(fields["data"]),
                        time.perf_counter(),
                    )
            if self.done or not self._recv(deadline):
                return None

    def take(self, count: int, timeout: float) -> list[Event]:
        """Up to ``count`` events, arriving within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        found: list[Event] = []
        while len(found) < count:
            event = self.next(max(0.0, deadline - time.monotonic()))
            if event is None:
                break
            found.append(event)
        return found

    def ended(self, timeout: float) -> bool:
        """Whether the server ends the response within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.done and time.monotonic() < deadline:
            self.next(max(0.0, deadline - time.monotonic()))
        return self.done

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
