"""The files a closed billrun leaves: one invoice CSV per account and a billrun summary (JSON).

:func:`write_artifacts` writes them to the artifact store (``CDRFLOW_ARTIFACT_STORE``; a local
folder, ``<state>/artifacts``, by default; ``s3://[conn_id@]bucket/prefix`` or any fsspec URL
through Airflow's ``ObjectStoragePath``, as the raw store) and records each in
``billrun_artifacts`` (uri, bytes, sha1). Keys::

    billruns/<kind>/<period_start>/<scope>/billrun-<id>/invoice-<account>.csv
    billruns/<kind>/<period_start>/<scope>/billrun-<id>/summary.json

Each version of a billrun (an adjustment for late files) has its own folder. The content is a
function of the warehouse only (no "written at" inside), so writing again gives the same bytes
at the same key: a retried task or a re-run is harmless. A local file is written to a ``.part``
beside it and renamed when complete; an S3 object appears whole when its upload ends.

An invoice CSV (header line first) holds, for one account of the billrun: its invoice lines
(``record`` = ``line``: destination, call type, calls, billed seconds, amount), one ``total``
row per currency (the sum of its lines, which are sums of the rounded call costs), then every
sell charge of the billrun for the account (``record`` = ``charge``: start, carrier, number,
prefix, billing and billed seconds, cost; an unrated call has no cost and its
``unrated_reason``). Charges are streamed from a server-side cursor, one account file at a time:
memory stays flat however many calls a billrun has.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, text

from cdrflow.config import settings
from cdrflow.config.errors import CdrflowError, one_line, shown_url
from cdrflow.intake.rawstore import storage_path

log = logging.getLogger(__name__)

INVOICE_COLUMNS = (
    "record",
    "billrun_id",
    "account_id",
    "currency",
    "destination",
    "call_type",
    "call_sub_type",
    "calls",
    "billed_seconds",
    "amount",
    "start_time",
    "carrier",
    "call_id",
    "number",
    "prefix",
    "billing_seconds",
    "unrated_reason",
)
BATCH = 5000


class ArtifactStoreUnavailable(CdrflowError):
    """The artifact store cannot take a file (missing, unwritable, S3 refusing)."""


@dataclass(frozen=True)
class Artifact:
    billrun_id: int
    kind: str  # invoice | summary
    account_id: str | None
    uri: str
    bytes: int
    sha1: str


def safe_name(value: str) -> str:
    """An account id as a file-name part: letters, digits, ``.``, ``-``, ``_``; others ``_``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", value).strip(".") or "_"
    return cleaned[:100]


class ArtifactStore:
    """A folder or bucket prefix that takes whole files, addressed by key."""

    def __init__(self, base_url: str | None = None):
        self.base_url = (base_url or settings.artifact_store_url()).rstrip("/")
        self.base = storage_path(self.base_url)  # a local folder without importing Airflow
        self.local = urlsplit(self.base_url).scheme in ("", "file", "local")

    def url_for(self, key: str) -> str:
        return f"{self.base_url}/{key}"

    def describe(self) -> str:
        return shown_url(self.base_url)

    def put(self, key: str, chunks: Iterable[bytes]) -> tuple[str, int, str]:
        """Write ``chunks`` as the file ``key``; returns (url, bytes, sha1)."""
        final = self.base / key
        target = final.parent / f".{final.name}.{uuid.uuid4().hex}.part" if self.local else final
        digest, size = hashlib.sha1(), 0
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if self.local:
                target.rename(final)
        except Exception as exc:
            if self.local:
                try:
                    target.unlink(missing_ok=True)
                except Exception:  # the store is what failed
                    pass
            raise ArtifactStoreUnavailable(
                f"artifact store {self.describe()} is unavailable: cannot write {key}: {one_line(exc)}"
            ) from exc
        return self.url_for(key), size, digest.hexdigest()

    def read(self, uri: str) -> bytes:
        """The bytes of a file this store wrote (by its full URL)."""
        if not uri.startswith(self.base_url + "/"):
            raise CdrflowError(f"{uri} is not in the artifact store {self.describe()}")
        return (self.base / uri[len(self.base_url) + 1 :]).read_bytes()


# -- reading the billrun -------------------------------------------------------------------------


def _billrun(conn: Connection, billrun_id: int):
    row = conn.execute(
        text(
            "SELECT id, kind, period_start, period_end, scope, version, status, started_at, finished_at, calls, "
            "rated, unrated, totals, buy_rated, buy_unrated, buy_totals, missing_carriers FROM billruns "
            "WHERE id = :id"
        ),
        {"id": billrun_id},
    ).one_or_none()
    if row is None:
        raise CdrflowError(f"no billrun {billrun_id}")
    if row.status != "closed":
        raise CdrflowError(f"billrun {billrun_id} is {row.status}: only a closed billrun has invoice files")
    return row


def _folder(run) -> str:
    return f"billruns/{run.kind}/{run.period_start.isoformat()}/{safe_name(run.scope)}/billrun-{run.id}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _csv_line(values: Iterable[Any]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_text(v) for v in values])
    return buf.getvalue().encode()


def _row(record: str, billrun_id: int, account: str, **values: Any) -> bytes:
    full = {"record": record, "billrun_id": billrun_id, "account_id": account, **values}
    return _csv_line(full.get(c) for c in INVOICE_COLUMNS)


_CHARGES = """
SELECT ch.id, ch.account_id, ch.start_time, ch.carrier, ch.call_id, coalesce(c.callee_e164, c.callee_number) AS number,
       ch.prefix, ch.destination, ch.call_type, ch.call_sub_type, ch.billing_seconds, ch.billed_seconds, ch.cost,
       ch.currency, ch.unrated_reason
FROM charges ch
LEFT JOIN calls c ON c.carrier = ch.carrier AND c.record_key = ch.record_key AND c.start_time = ch.start_time
WHERE ch.billrun_id = :id AND ch.side = 'sell' AND ch.account_id = ANY(:accounts)
ORDER BY ch.account_id COLLATE "C", ch.start_time, ch.id  -- C: the order of Python's sorted()
"""


def _invoice_lines(conn: Connection, billrun_id: int) -> dict[str, list]:
    lines: dict[str, list] = {}
    for r in conn.execute(
        text(
            "SELECT account_id, currency, destination, call_type, calls, billed_seconds, amount FROM invoice_lines "
            "WHERE billrun_id = :id ORDER BY account_id, currency, destination, call_type"
        ),
        {"id": billrun_id},
    ):
        lines.setdefault(r.account_id, []).append(r)
    return lines


def _invoice_head(billrun_id: int, account: str, lines: list) -> Iterator[bytes]:
    yield _csv_line(INVOICE_COLUMNS)
    totals: dict[str, list] = {}
    for r in lines:
        yield _row(
            "line",
            billrun_id,
            account,
            currency=r.currency,
            destination=r.destination,
            call_type=r.call_type,
            calls=r.calls,
            billed_seconds=r.billed_seconds,
            amount=r.amount,
        )
        t = totals.setdefault(r.currency, [0, 0, Decimal(0)])
        t[0] += r.calls
        t[1] += r.billed_seconds
        t[2] += r.amount
    for currency, (calls, seconds, amount) in sorted(totals.items()):
        yield _row("total", billrun_id, account, currency=currency, calls=calls, billed_seconds=seconds, amount=amount)


def _charge_row(billrun_id: int, c) -> bytes:
    return _row(
        "charge",
        billrun_id,
        c.account_id,
        currency=c.currency,
        destination=c.destination,
        call_type=c.call_type,
        call_sub_type=c.call_sub_type,
        billed_seconds=c.billed_seconds,
        amount=c.cost,
        start_time=c.start_time,
        carrier=c.carrier,
        call_id=c.call_id,
        number=c.number,
        prefix=c.prefix,
        billing_seconds=c.billing_seconds,
        unrated_reason=c.unrated_reason,
    )


def _record(conn: Connection, a: Artifact) -> None:
    conn.execute(
        text(
            "INSERT INTO billrun_artifacts (billrun_id, account_id, kind, uri, bytes, sha1) "
            "VALUES (:b, :a, :k, :u, :n, :s) "
            "ON CONFLICT (billrun_id, kind, coalesce(account_id, '')) DO UPDATE SET uri = EXCLUDED.uri, "
            "bytes = EXCLUDED.bytes, sha1 = EXCLUDED.sha1, created_at = now()"
        ),
        {"b": a.billrun_id, "a": a.account_id, "k": a.kind, "u": a.uri, "n": a.bytes, "s": a.sha1},
    )


def recorded(conn: Connection, billrun_id: int) -> list[Artifact]:
    """The artifacts recorded for a billrun: the summary first, then the invoices by account."""
    return [
        Artifact(r.billrun_id, r.kind, r.account_id, r.uri, r.bytes, r.sha1)
        for r in conn.execute(
            text(
                "SELECT billrun_id, kind, account_id, uri, bytes, sha1 FROM billrun_artifacts WHERE billrun_id = :id "
                "ORDER BY kind DESC, account_id"
            ),
            {"id": billrun_id},
        )
    ]


def write_artifacts(
    engine: Engine, billrun_id: int, store: ArtifactStore | None = None, *, again: bool = False
) -> list[Artifact]:
    """Write (or, with ``again=False``, find already written) the invoice CSVs and the summary of
    closed billrun ``billrun_id``; returns them, the summary first."""
    store = store or ArtifactStore()
    with engine.connect() as conn:
        if not again:
            found = recorded(conn, billrun_id)
            if any(a.kind == "summary" for a in found):
                return found
        run = _billrun(conn, billrun_id)
        folder = _folder(run)
        lines = _invoice_lines(conn, billrun_id)
        configured = {
            r.account_id: r
            for r in conn.execute(text("SELECT account_id, name, currency, billing_group FROM accounts"))
        }
        per_account = {
            r.account_id: r
            for r in conn.execute(
                text(
                    "SELECT coalesce(account_id, '') AS account_id, count(*) AS calls, "
                    "count(*) FILTER (WHERE unrated_reason IS NULL) AS rated FROM charges "
                    "WHERE billrun_id = :id AND side = 'sell' GROUP BY 1 ORDER BY 1"
                ),
                {"id": billrun_id},
            )
        }
        invoiced = sorted(a for a in per_account if a in configured)
        written: list[Artifact] = []
        stream = conn.execute(
            text(_CHARGES),
            {"id": billrun_id, "accounts": invoiced},
            execution_options={"stream_results": True, "max_row_buffer": BATCH},
        )
        charges = iter(stream)
        pending = next(charges, None)
        for account in invoiced:

            def content(account: str = account) -> Iterator[bytes]:
                nonlocal pending
                yield from _invoice_head(billrun_id, account, lines.get(account, []))
                buf: list[bytes] = []
                while pending is not None and pending.account_id == account:
                    buf.append(_charge_row(billrun_id, pending))
                    if len(buf) >= 1000:
                        yield b"".join(buf)
                        buf = []
                    pending = next(charges, None)
                if buf:
                    yield b"".join(buf)

            uri, size, sha1 = store.put(f"{folder}/invoice-{safe_name(account)}.csv", content())
            written.append(Artifact(billrun_id, "invoice", account, uri, size, sha1))
        stream.close()
        summary = _summary(
            run, lines, configured, per_account, {a.account_id: a for a in written if a.account_id}, conn
        )
        body = (json.dumps(summary, indent=1, sort_keys=False) + "\n").encode()
        uri, size, sha1 = store.put(f"{folder}/summary.json", [body])
        written.insert(0, Artifact(billrun_id, "summary", None, uri, size, sha1))
    with engine.begin() as conn:
        for a in written:
            _record(conn, a)
    log.info(
        "billrun %s: %d invoice file(s) and the summary written to %s/%s",
        billrun_id,
        len(written) - 1,
        store.describe(),
        folder,
    )
    return written


def _summary(run, lines, configured, per_account, invoices: dict[str, Artifact], conn: Connection) -> dict:
    files = conn.execute(
        text("SELECT id FROM cdr_files WHERE billrun = CAST(:id AS text) ORDER BY id"), {"id": run.id}
    ).scalars()
    accounts = []
    for account, counts in per_account.items():
        if account not in configured:
            continue
        totals: dict[str, Decimal] = {}
        for r in lines.get(account, []):
            totals[r.currency] = totals.get(r.currency, Decimal(0)) + r.amount
        inv = invoices.get(account)
        accounts.append(
            {
                "account_id": account,
                "name": configured[account].name,
                "billing_group": configured[account].billing_group,
                "calls": counts.calls,
                "rated": counts.rated,
                "unrated": counts.calls - counts.rated,
                "totals": {c: format(a, "f") for c, a in sorted(totals.items())},
                "invoice": None if inv is None else {"uri": inv.uri, "bytes": inv.bytes, "sha1": inv.sha1},
            }
        )
    return {
        "billrun": {
            "id": run.id,
            "kind": run.kind,
            "period_start": run.period_start.isoformat(),
            "period_end": run.period_end.isoformat(),
            "scope": run.scope,
            "version": run.version,
            "status": run.status,
            "started_at": _text(run.started_at),
            "finished_at": _text(run.finished_at),
            "calls": run.calls,
            "rated": run.rated,
            "unrated": dict(sorted(run.unrated.items())),
            "totals": dict(sorted(run.totals.items())),
            "buy_rated": run.buy_rated,
            "buy_unrated": dict(sorted(run.buy_unrated.items())),
            "buy_totals": dict(sorted(run.buy_totals.items())),
            "missing_carriers": run.missing_carriers,
        },
        "accounts": accounts,
        # sell charges of calls whose account_id is no configured account: all unrated ("no deck
        # for the account"), so on no invoice; by account_id ("" for none)
        "unassigned_calls": {a: c.calls for a, c in per_account.items() if a not in configured},
        "files": list(files),
    }
