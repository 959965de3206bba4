"""Notifications: the one place that turns cdrflow's configuration into an Airflow notifier and
sends a message through it.

What is sent (each one message, never one per file): a processing run that left files failed or
rejected (:mod:`cdrflow.orchestration.processing`), a carrier that has not delivered by its
``deadline:`` (:mod:`cdrflow.orchestration.delivery_deadlines`), a billing run that could not
close (:mod:`cdrflow.orchestration.billing_dag`).

Which notifier, read at each message (so a deployment changes it without a restart):

- ``CDRFLOW_NOTIFIER=package.module:Class`` (any :class:`~airflow.sdk.BaseNotifier`, e.g.
  ``airflow.providers.slack.notifications.slack:SlackNotifier``), built with the keyword
  arguments of ``CDRFLOW_NOTIFIER_ARGS`` (a JSON object). Arguments are Airflow templates: the
  message is in the context as ``cdrflow_subject``, ``cdrflow_body`` (plain text),
  ``cdrflow_html``, ``cdrflow_kind`` (files | delivery | billing) and ``cdrflow_facts``, e.g.
  ``{"text": "{{ cdrflow_subject }}\\n{{ cdrflow_body }}"}``.
- else, when ``CDRFLOW_NOTIFY_TO`` is set (addresses, comma separated): the SMTP provider's
  ``SmtpNotifier`` through the connection ``CDRFLOW_SMTP_CONN_ID`` (default ``smtp_default``),
  from ``CDRFLOW_NOTIFY_FROM`` (default: the connection's ``from_email`` extra).
- else none: the message is only logged (said once per process that nothing is configured).

The message's text reaches a notifier through the context, never as a template of its own: a
rejection reason that contains ``{{`` is sent as it is, not rendered.
"""

from __future__ import annotations

import html
import importlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cdrflow.config.errors import CdrflowError

log = logging.getLogger("cdrflow.notify")

NOTIFIER_ENV = "CDRFLOW_NOTIFIER"
ARGS_ENV = "CDRFLOW_NOTIFIER_ARGS"
TO_ENV = "CDRFLOW_NOTIFY_TO"
FROM_ENV = "CDRFLOW_NOTIFY_FROM"
CONN_ENV = "CDRFLOW_SMTP_CONN_ID"
NOT_CONFIGURED = "none (no notifier configured)"

_said_none = False


class NotificationError(CdrflowError):
    """The notifier is misconfigured or could not send."""


@dataclass(frozen=True)
class Message:
    """One notification: ``kind`` (files | delivery | billing), a one-line subject, a plain-text
    body (the facts and what to do), and the facts as a small JSON-able dict."""

    kind: str
    subject: str
    body: str
    facts: dict[str, Any] = field(default_factory=dict)

    def html(self) -> str:
        """The body for an HTML mail: the plain text, escaped, kept as typed."""
        return f'<pre style="font-family: monospace">{html.escape(self.body)}</pre>'

    def context_values(self) -> dict[str, Any]:
        """What a notifier's templates see of the message."""
        return {
            "cdrflow_kind": self.kind,
            "cdrflow_subject": self.subject,
            "cdrflow_body": self.body,
            "cdrflow_html": self.html(),
            "cdrflow_facts": self.facts,
        }


def configured() -> str | None:
    """Which notifier the configuration names, in words (for logs and records), or None."""
    if spec := os.environ.get(NOTIFIER_ENV, "").strip():
        return spec
    if to := os.environ.get(TO_ENV, "").strip():
        return f"SmtpNotifier ({os.environ.get(CONN_ENV) or 'smtp_default'}) to {to}"
    return None


def build() -> Any | None:
    """A new notifier from the configuration (a new one per message: rendering its templates
    changes it), or None when nothing is configured."""
    spec = os.environ.get(NOTIFIER_ENV, "").strip()
    if spec:
        return _custom(spec, os.environ.get(ARGS_ENV, "").strip())
    to = [a.strip() for a in os.environ.get(TO_ENV, "").split(",") if a.strip()]
    if not to:
        return None
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return SmtpNotifier(
        to=to,
        from_email=os.environ.get(FROM_ENV, "").strip() or None,
        subject="{{ cdrflow_subject }}",
        html_content="{{ cdrflow_html }}",
        custom_headers={"X-Cdrflow-Notification": "{{ cdrflow_kind }}"},
        smtp_conn_id=os.environ.get(CONN_ENV, "").strip() or "smtp_default",
    )


def _custom(spec: str, raw_args: str) -> Any:
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise NotificationError(f"{NOTIFIER_ENV}={spec!r}: write package.module:Class")
    try:
        args = json.loads(raw_args) if raw_args else {}
    except json.JSONDecodeError as exc:
        raise NotificationError(f"{ARGS_ENV}: not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(args, dict):
        raise NotificationError(f'{ARGS_ENV}: a JSON object of keyword arguments, e.g. {{"text": "..."}}')
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise NotificationError(f"{NOTIFIER_ENV}={spec!r}: cannot import it ({exc})") from None
    try:
        return cls(**args)
    except TypeError as exc:
        raise NotificationError(f"{NOTIFIER_ENV}={spec!r}: {ARGS_ENV} does not fit it ({exc})") from None


def send(message: Message, context: Mapping[str, Any] | None = None) -> str:
    """Send ``message`` through the configured notifier with the task's ``context`` (plus the
    message's values); return which notifier sent it, or :data:`NOT_CONFIGURED`. Raises
    :class:`NotificationError` with one line when the notifier is misconfigured or fails."""
    global _said_none
    notifier = build()
    if notifier is None:
        if not _said_none:
            log.warning("no notifier configured (%s or %s): notifications are only logged", NOTIFIER_ENV, TO_ENV)
            _said_none = True
        log.info("notification not sent (no notifier): %s", message.subject)
        return NOT_CONFIGURED
    full = {**(context or {}), **message.context_values()}
    try:
        notifier(full)
    except Exception as exc:
        raise NotificationError(f"notification {message.subject!r} not sent by {configured()}: {exc}") from exc
    log.info("notification sent by %s: %s", configured(), message.subject)
    return configured() or NOT_CONFIGURED


def send_logged(message: Message, context: Mapping[str, Any] | None = None) -> str | None:
    """:func:`send`, a failure logged as an error instead of raised (for a task whose own outcome
    must not depend on the mail server); None when it failed."""
    try:
        return send(message, context)
    except NotificationError as exc:
        log.error("%s", exc)
        return None
