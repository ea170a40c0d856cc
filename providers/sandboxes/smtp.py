"""A local SMTP server (aiosmtpd) that records every mail instead of delivering it.

It runs on the caller's event loop through ``loop.create_server`` rather than aiosmtpd's
threaded ``Controller``, so it can be started from inside a running loop (tests, the sandbox
stack) and needs no thread hand-off to read ``received``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import warnings
import weakref
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from providers.sandboxes.faults import FaultInjectable, FaultPlan, integer, pair

SmtpFault = tuple[int, str]  # (reply code, text), e.g. (550, "5.1.1 User unknown")


class SmtpSandbox(FaultInjectable[SmtpFault]):
    """SMTP on 127.0.0.1. ``received`` gets one record per accepted recipient.

    Faults (``plan``, see ``faults.py``; addresses in lower case) answer a recipient's RCPT TO
    with ``(code, text)``, e.g. ``(550, "5.1.1 User unknown")``, ``(450, ...)`` or
    ``(421, ...)``, after which the server closes the connection as a real one does; refused
    recipients land in ``rejected``. ``delays`` and ``latency_seconds`` stall RCPT TO (client
    timeouts). ``connections`` counts accepted TCP connections.
    With ``username``/``password`` set, AUTH (PLAIN/LOGIN, without TLS) is required.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.plan: FaultPlan[SmtpFault] = FaultPlan(pair(integer, str))
        self.received: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.connections = 0
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_connection, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self.plan.release()
        self.drop_connections()  # Server.close() leaves accepted connections open
        await self._server.wait_closed()
        self._server = None

    def next_id(self) -> int:
        """The next queue id the sandbox answers a DATA with."""
        return next(self._ids)

    def drop_connections(self) -> None:
        """Close every client connection abruptly, as a restarting mail server would."""
        for protocol in list(self._protocols):
            if protocol.transport is not None:
                protocol.transport.close()

    def settings_overrides(self) -> dict[str, object]:
        """The ``Settings`` fields an ``SmtpProvider`` needs to talk to this sandbox."""
        assert self._server is not None, "start() the sandbox first"
        overrides: dict[str, object] = {
            "smtp_host": self.host,
            "smtp_port": self.port,
            "smtp_start_tls": False,
        }
        if self.username is not None:
            overrides["smtp_username"] = self.username
            overrides["smtp_password"] = self.password or ""
        return overrides

    def backup_overrides(self) -> dict[str, object]:
        """The ``Settings`` fields that make this sandbox an ``SmtpProvider``'s backup relay."""
        assert self._server is not None, "start() the sandbox first"
        return {"smtp_backup_host": self.host, "smtp_backup_port": self.port}

    def _new_connection(self) -> SMTP:
        # One protocol per accepted connection, so this is where connections are counted.
        self.connections += 1
        auth = self.username is not None
        with warnings.catch_warnings():
            # aiosmtpd warns about AUTH without TLS; on a loopback sandbox that is the point.
            warnings.simplefilter("ignore")
            protocol = SMTP(
                _Handler(self, connection=self.connections),
                hostname="smtp.sandbox.local",
                ident="notify smtp sandbox",
                loop=asyncio.get_running_loop(),
                authenticator=self._authenticate if auth else None,
                auth_required=auth,
                auth_require_tls=False,
            )
        self._protocols.add(protocol)
        return protocol

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == (self.password or "")
        )
        if not ok:  # handled=False: aiosmtpd answers "535 5.7.8 ... credentials invalid"
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=data.login.decode())

    def record(
        self, envelope: Envelope, connection: int, login: str | None, arrived: dict[str, float]
    ) -> None:
        """Parse one accepted mail into a record per recipient (``arrived``: RCPT TO times)."""
        raw = envelope.original_content or envelope.content or b""
        raw = raw if isinstance(raw, bytes) else raw.encode()
        mail: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)
        text = mail.get_body(preferencelist=("plain",))
        markup = mail.get_body(preferencelist=("html",))
        title = str(mail.get("Subject", ""))
        # Parts arrive with SMTP's CRLF line endings; records use "\n" like the sender did.
        plain = text.get_content().replace("\r\n", "\n") if text is not None else ""
        html = markup.get_content().replace("\r\n", "\n") if markup is not None else ""
        for rcpt in envelope.rcpt_tos:
            self.received.append(
                {
                    "sandbox": "smtp",
                    "address": rcpt,
                    "title": title,
                    # The text part is "title\n\nbody"; the record carries the body alone.
                    "body": plain.removeprefix(f"{title}\n\n").rstrip("\n") if title else plain,
                    "notification_id": mail.get("X-Notification-ID"),
                    "delivery_id": mail.get("X-Delivery-ID"),
                    "received_at": arrived.get(rcpt, time.time()),
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": title,
                    "text": plain,
                    "html": html,
                    "content_type": mail.get_content_type(),
                    "headers": {k: str(v) for k, v in mail.items()},
                    "message": mail,
                    "raw": raw,
                    "connection": connection,
                    "login": login,
                }
            )


class _Handler:
    """aiosmtpd hooks for one connection; the sandbox holds the state."""

    def __init__(self, sandbox: SmtpSandbox, *, connection: int) -> None:
        self.sandbox = sandbox
        self.connection = connection
        # When each recipient of the current mail arrived: records say when the client asked,
        # not when an injected delay let the sandbox answer.
        self.arrived: dict[str, float] = {}

    async def handle_RCPT(  # aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        arrived, key = time.time(), address.lower()
        await self.sandbox.plan.pause(key)
        fault = self.sandbox.plan.choose(key)
        if fault is None:
            self.arrived[address] = arrived
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        code, text = fault
        self.sandbox.rejected.append(
            {
                "sandbox": "smtp",
                "address": address,
                "status": code,
                "code": code,
                "reason": text,
                "received_at": arrived,
                "connection": self.connection,
            }
        )
        if code == 421 and server.transport is not None:
            # RFC 5321 §3.8: 421 means the server is closing the channel. aiosmtpd writes the
            # reply as soon as this hook returns, before the loop runs callbacks, so the
            # client reads the 421 and then the connection ends.
            server.loop.call_soon(server.transport.close)
        return f"{code} {text}"

    async def handle_DATA(  # aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        login = session.auth_data if isinstance(session.auth_data, str) else None
        try:
            self.sandbox.record(envelope, self.connection, login, self.arrived)
        except Exception as exc:  # a mail we cannot parse is a test failure: say so over SMTP
            return f"554 5.6.0 sandbox could not parse the message: {exc}"
        finally:
            self.arrived = {}
        return f"250 2.0.0 OK queued as sandbox-{self.sandbox.next_id()}"
