"""SMTP sending, with the smtp section's security and timeout."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from config import settings


def send(to: str, subject: str, body: str) -> None:
    """Send one plain-text mail; raises smtplib.SMTPException or OSError on failure."""
    cfg = settings.smtp
    message = EmailMessage()
    message["From"] = cfg.sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if cfg.security == "ssl":
        connection = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout,
                                      context=ssl.create_default_context())
    else:
        connection = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
    with connection:
        if cfg.security == "starttls":
            connection.starttls(context=ssl.create_default_context())
        if cfg.username:
            connection.login(cfg.username, cfg.password)
        connection.send_message(message)
