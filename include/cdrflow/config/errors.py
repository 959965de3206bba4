"""The exceptions cdrflow raises on purpose: each carries a message meant for an operator."""

from urllib.parse import urlsplit


class CdrflowError(Exception):
    """Base class: a problem cdrflow recognised and can explain."""


class ConfigurationError(CdrflowError):
    """Settings or connections are missing or inconsistent."""


class MigrationError(CdrflowError):
    """A warehouse migration could not be applied or was changed after it was applied."""


class SourceUnreadable(CdrflowError):
    """The bytes of a file to register could not be read; nothing was recorded."""


class RawStoreUnavailable(CdrflowError):
    """The raw store cannot take bytes (missing or unwritable, disk full, S3 refused or no
    credentials): no file can be registered until it is fixed, so the task fails."""


class UnknownCarrier(CdrflowError):
    """A file names a carrier that is not in the carriers table."""


class FileNotRegistered(CdrflowError):
    """No row in cdr_files has the given id."""


class IllegalTransition(CdrflowError):
    """A status change that the file registry's state machine does not allow."""


class SourceUnavailable(CdrflowError):
    """A collector could not reach or read its server (refused, timed out, bad login, no such
    folder). Nothing was registered from the part that failed; the next run tries again."""


def one_line(exc: BaseException) -> str:
    """``exc`` as one line for an operator: its type, then its message with white space folded
    (a server's multi-line answer, a path with a newline). The one spelling used everywhere."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if isinstance(exc, CdrflowError):
        return text or name
    return f"{name}: {text}" if text else name


def shown_url(url: str) -> str:
    """``url`` for a message or a log line: a password in its user part is never shown."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
