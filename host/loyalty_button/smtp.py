"""Sending one e-mail through the site's mail server: the store's alerts
and the central service's scheduled reports."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage


class MailError(Exception):
    """The server could not be reached or refused the message."""


def send(msg: EmailMessage, host: str, port: int, timeout_s: float = 20.0,
         starttls: bool = False, user: str | None = None, password: str | None = None) -> None:
    try:
        with smtplib.SMTP(host, port, timeout=timeout_s) as smtp:
            if starttls:
                smtp.starttls(context=ssl.create_default_context())
            if user:
                smtp.login(user, password or "")
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as e:
        raise MailError(f"smtp {host}:{port}: {e}") from None
