"""Keep secrets out of logs: the access log prints every request's query string, and the billing
feed (seed 004) takes its password there (``?login=...&password=...``), Kazoo clients their
``auth_token``. :class:`RedactSecrets` rewrites them to ``***`` in every record of the loggers it
is installed on (uvicorn's access and error logs, Airflow's API server's)."""

from __future__ import annotations

import logging
import re

SECRET_PARAMS = ("password", "auth_token", "api_key", "token")
_PATTERN = re.compile(r"((?:^|[?&;\s\"'])(?:" + "|".join(SECRET_PARAMS) + r")=)[^&\s\"';]*", re.IGNORECASE)
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "gunicorn.access", "airflow.api_fastapi", "fastapi")


def redact(text: str) -> str:
    return _PATTERN.sub(r"\1***", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install() -> None:
    """Install the filter on the access and server loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
