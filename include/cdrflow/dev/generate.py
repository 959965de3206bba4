"""Synthetic CDR traffic in real carrier layouts, for the demo, the tests and the benchmarks.

Deterministic for a given seed, so a re-run of the demo produces the same bytes (and the
registry shows them as duplicates).
"""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

GREGORIAN_OFFSET = 62167219200  # Gregorian seconds = Unix seconds + this

_DISPOSITIONS = ["ANSWERED"] * 8 + ["NO ANSWER", "BUSY", "FAILED"]


def _number(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice("0123456789") for _ in range(9))


def asterisk_rows(n: int, *, seed: int, day: datetime, accounts: tuple[str, ...] = ()):
    """Rows of Asterisk's cdr_csv Master.csv in its standard column order:
    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start,
    answer, end, duration, billsec, disposition, amaflags, uniqueid, userfield.
    ``accounts``: the accountcodes to use (drawn the same way; default ``acct000``..``acct099``)."""
    rng = random.Random(seed)
    for i in range(n):
        start = day + timedelta(seconds=rng.randrange(86_400))
        disposition = rng.choice(_DISPOSITIONS)
        ring = rng.randrange(1, 30)
        billsec = rng.randrange(1, 3_600) if disposition == "ANSWERED" else 0
        answer = start + timedelta(seconds=ring) if billsec else None
        end = start + timedelta(seconds=ring + billsec)
        src, dst = _number(rng, "+1"), _number(rng, "+44")
        fmt = "%Y-%m-%d %H:%M:%S"
        account = rng.randrange(100)
        yield [
            accounts[account % len(accounts)] if accounts else f"acct{account:03d}",
            src,
            dst,
            "from-trunk",
            f'"Caller {i}" <{src}>',
            f"SIP/trunk-{i:08x}",
            f"SIP/peer-{i:08x}",
            "Dial",
            f"SIP/{dst},60",
            start.strftime(fmt),
            answer.strftime(fmt) if answer else "",
            end.strftime(fmt),
            str(ring + billsec),
            str(billsec),
            disposition,
            "DOCUMENTATION",
            f"{int(start.timestamp())}.{seed}{i}",
            "",
        ]


def write_asterisk_csv(path: Path, n: int, *, seed: int, day: datetime, accounts: tuple[str, ...] = ()) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerows(asterisk_rows(n, seed=seed, day=day, accounts=accounts))
    return path


def kazoo_records(n: int, *, seed: int, day: datetime, account_id: str = "a1b2c3d4e5f6") -> list[dict]:
    """Kazoo (2600Hz) CDR documents as its API returns them (seed 003 structure)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        start = day + timedelta(seconds=rng.randrange(86_400))
        billing = rng.randrange(0, 1_800)
        ringing = rng.randrange(0, 20)
        duration = billing + ringing
        caller, callee = _number(rng, "+1"), _number(rng, "+1")
        call_id = f"{rng.getrandbits(64):016x}@kazoo.example"
        records.append(
            {
                "id": f"{start:%Y%m}-{call_id}",
                "call_id": call_id,
                "call_direction": rng.choice(["inbound", "outbound"]),
                "timestamp": int((start + timedelta(seconds=duration)).timestamp()) + GREGORIAN_OFFSET,
                "duration_seconds": duration,
                "billing_seconds": billing,
                "ringing_seconds": ringing,
                "hangup_cause": "NORMAL_CLEARING" if billing else "NO_ANSWER",
                "hangup_code": "sip:200" if billing else "sip:487",
                "disposition": "SUCCESS" if billing else "ORIGINATOR_CANCEL",
                "caller_id_number": caller,
                "caller_id_name": f"Caller {i}",
                "callee_id_number": callee,
                "from_uri": f"{caller}@sip.example",
                "to_uri": f"{callee}@sip.example",
                "custom_channel_vars": {
                    "account_id": account_id,
                    "realm": "sip.example",
                    "username": f"user{i % 7}",
                    "authorizing_id": f"dev{i % 5:04d}",
                },
                "rate": "0.0120",
                "rate_minimum": "60",
                "rate_increment": "6",
                "base_cost": "0",
                "surcharge": "0",
            }
        )
    return records


def write_kazoo_json(path: Path, n: int, *, seed: int, day: datetime) -> Path:
    path.write_text(json.dumps(kazoo_records(n, seed=seed, day=day), indent=1), encoding="utf-8")
    return path


def demo_day() -> datetime:
    """A fixed day for demo traffic (fixed so that re-runs produce the same bytes)."""
    return datetime(2026, 11, 1, tzinfo=UTC)


def asterisk_bytes(n: int, *, seed: int, day: datetime | None = None, accounts: tuple[str, ...] = ()) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
        asterisk_rows(n, seed=seed, day=day or demo_day(), accounts=accounts)
    )
    return out.getvalue().encode()


ORDERS = ("shuffled", "time")


def write_asterisk_csv_fast(
    path: Path,
    n: int,
    *,
    seed: int,
    day: datetime | None = None,
    first_index: int = 0,
    order: str = "shuffled",
    columns: int = 18,
) -> Path:
    """The same layout as :func:`write_asterisk_csv`, vectorised (millions of rows in seconds)
    for benchmarks; the values are random but well-formed, one day of calls. Call ids count
    from ``first_index``: files written with disjoint ranges hold distinct calls.

    ``order``: ``"shuffled"`` writes the calls in random order within the day (what this
    function always wrote); ``"time"`` writes them as a PBX appends its Master.csv, in order of
    their end, with the counter in ``uniqueid`` (and the channel names) rising with the start,
    as Asterisk numbers channels when it creates them. A seed gives the same start times and
    durations either way (ids and numbers are dealt in the file's order).

    ``columns``: 18 (``uniqueid`` and ``userfield``) or 21, the layout of current Asterisk
    versions, which adds ``peeraccount``, ``linkedid`` (here the call's own ``uniqueid``: one
    record per call) and ``sequence`` (a counter, as Asterisk numbers its CDRs)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if columns not in (18, 21):
        raise ValueError(f"columns must be 18 or 21, got {columns!r}")
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    day = day or demo_day()
    base = int(day.timestamp())
    start = base + rng.integers(0, 86_400, n)
    ring = rng.integers(1, 30, n)
    answered = rng.random(n) < 0.75
    billsec = np.where(answered, rng.integers(1, 3_600, n), 0)
    end = start + ring + billsec
    if order == "time":  # counters rise with the start: number the calls in that order
        by_start = np.argsort(start, kind="stable")
        start, ring, billsec, end = start[by_start], ring[by_start], billsec[by_start], end[by_start]
        answered = answered[by_start]

    def stamp(seconds):
        return pc.strftime(pa.array(seconds.astype("datetime64[s]")), format="%Y-%m-%d %H:%M:%S")

    def text(values):
        return pa.array(values).cast(pa.string())

    def numbers(prefix: str, low: int):
        """Numbers as a day of traffic has them: a pool of n/4, a few dialled all day (Zipf),
        the rest a few times each (real numbers repeat; every row its own number made each
        number-reading step look four times dearer than on real files)."""
        pool = text(rng.integers(low, 10**10, max(1, n // 4)))
        pick = np.where(rng.random(n) < 0.4, rng.zipf(1.3, n) % len(pool), rng.integers(0, len(pool), n))
        return pc.binary_join_element_wise(prefix, pool.take(pa.array(pick)), "")

    idx = text(np.arange(first_index, first_index + n))
    # North American area codes begin with 2-9; UK numbers after +44 are 10 digits, no leading 0
    src, dst = numbers("+1", 2 * 10**9), numbers("+44", 10**9)
    table = pa.table(
        {
            "accountcode": pc.binary_join_element_wise("acct", text(rng.integers(100, 999, n)), ""),
            "src": src,
            "dst": dst,
            "dcontext": pa.array(["from-trunk"] * n),
            "clid": pc.binary_join_element_wise('"Caller ', idx, '" <', src, ">", ""),
            "channel": pc.binary_join_element_wise("SIP/trunk-", idx, ""),
            "dstchannel": pc.binary_join_element_wise("SIP/peer-", idx, ""),
            "lastapp": pa.array(["Dial"] * n),
            "lastdata": pc.binary_join_element_wise("SIP/", dst, ",60", ""),
            "start": stamp(start),
            "answer": pc.if_else(pa.array(answered), stamp(start + ring), ""),
            "end": stamp(end),
            "duration": text(ring + billsec),
            "billsec": text(billsec),
            "disposition": pc.if_else(pa.array(answered), "ANSWERED", "NO ANSWER"),
            "amaflags": pa.array(["DOCUMENTATION"] * n),
            "uniqueid": pc.binary_join_element_wise(text(start), idx, "."),
            "userfield": pa.array([""] * n),
        }
    )
    if columns == 21:
        table = (
            table.append_column("peeraccount", pa.array([""] * n))
            .append_column("linkedid", table.column("uniqueid"))
            .append_column("sequence", idx)
        )
    if order == "time":  # a call's record is appended when it ends
        table = table.take(pa.array(np.argsort(end, kind="stable")))
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, quoting_style="all_valid"))
    return path


TELNYX_HEADER = [
    "Call Leg ID",
    "Start Time",
    "Answer Time",
    "End Time",
    "Duration",
    "Billed Sec",
    "Direction",
    "Record Type",
    "Connection ID",
    "CLI",
    "CLD",
    "Tags",
    "Hangup Cause",
    "Rate",
    "Cost",
    "Currency",
]


def telnyx_rows(n: int, *, seed: int, day: datetime):
    """Rows of a Telnyx-style CDR report (seed 001 vocabulary), header first."""
    rng = random.Random(seed)
    yield TELNYX_HEADER
    for i in range(n):
        start = day + timedelta(seconds=rng.randrange(86_400))
        answered = rng.random() < 0.8
        ring = rng.randrange(1, 25)
        billed = rng.randrange(1, 2_400) if answered else 0
        answer = start + timedelta(seconds=ring) if answered else None
        end = start + timedelta(seconds=ring + billed)
        iso = "%Y-%m-%dT%H:%M:%SZ"
        rate = rng.choice(["0.0045", "0.0090", "0.0120"])
        yield [
            f"{rng.getrandbits(64):016x}-{seed}-{i}",
            start.strftime(iso),
            answer.strftime(iso) if answer else "",
            end.strftime(iso),
            str(ring + billed),
            str(billed),
            rng.choice(["inbound", "outbound"]),
            "complete" if answered else "incomplete",
            f"conn-{rng.randrange(5)}",
            _number(rng, "+1"),
            _number(rng, "+33"),
            rng.choice(["", "wholesale", "wholesale;priority"]),
            "NORMAL_CLEARING" if answered else "NO_ANSWER",
            rate,
            f"{float(rate) * billed / 60:.6f}",
            "USD",
        ]


def write_telnyx_csv(path: Path, n: int, *, seed: int, day: datetime) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out, lineterminator="\r\n").writerows(telnyx_rows(n, seed=seed, day=day))
    return path
