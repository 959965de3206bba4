"""A real Asterisk day, as one Master.csv (issue 10, "Done when").

One 21-column ``cdr_csv`` file (``accountcode, src, dst, dcontext, clid, channel, dstchannel,
lastapp, lastdata, start, answer, end, duration, billsec, disposition, amaflags, uniqueid,
userfield, peeraccount, linkedid, sequence``), written in time order the way Asterisk 12+
writes CDRs (docs.asterisk.org, Configuration > Reporting > Call Detail Records > CDR
Specification, and ``cdr/cdr_csv.c``):

- every channel has a ``uniqueid`` (``<epoch>.<channel counter>``, prefixed ``<systemname>-``
  once ``systemname`` is set in asterisk.conf) and carries the ``linkedid`` of the channel
  that started the call; every CDR Asterisk writes gets the next ``sequence`` (a counter that
  starts again at a restart);
- ``Dial(SIP/301&SIP/200@trunk)`` (a parallel dial) writes one CDR per dialled peer, all with
  the dialling channel as Party A: one ``uniqueid``, one ``start``, different ``dstchannel``,
  ``disposition``, ``duration`` and ``sequence``;
- a ``Local/`` channel has two halves (``;1`` and ``;2``), each a channel with its own
  ``uniqueid``; the ``;2`` half runs the dialplan (``dst`` is its extension: ``ch1``, ``s``) and
  writes CDRs of its own with the caller's ``linkedid``; the caller's record gets ``dst`` ``h``
  when the ``h`` extension ran at hang-up;
- ``Queue()`` writes one CDR of the caller's channel per agent it rang (ringall, then a retry);
- an attended transfer: A calls B, B consults C on a second channel, B completes the transfer,
  and A's channel, now bridged to C, starts a new CDR;
- internal calls between named SIP endpoints (``client1`` -> ``client2``);
- ``systemname`` set mid-day (a restart): ``uniqueid``/``linkedid`` gain ``pbx1-`` and the
  channel and sequence counters start again;
- a caller name in Latin-1 (not UTF-8) in an otherwise UTF-8 file;
- one true repeat (a line written twice) and one broken line (an end time that does not parse).

Loaded through the real loader with the carrier's default settings, every record but the broken
line and the repeat must be a row of ``calls`` and every call a row of ``call_summaries`` with
its legs, answered leg and billable leg (``answered_longest``, Asterisk's default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from tests.test_loader import q, register

from cdrflow.intake.claims import requeue
from cdrflow.loading.batches import process_file
from cdrflow.loading.transaction import load_file
from conftest import add_carrier

DAY = "2026-11-16"
CARRIER = "pbx"
CALLER = "expect_column_values_to_match_regex(caller_number)"
CALLEE = "expect_column_values_to_match_regex(callee_number)"
RULE = "answered_longest"


@dataclass
class Rec:
    """One CDR, as cdr_csv writes it."""

    case: str
    uniqueid: str
    sequence: int
    linkedid: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: str
    answer: str
    end: str
    duration: int
    billsec: int
    disposition: str
    accountcode: str = ""
    end_text: str | None = None  # what is written in the end column, when not ``DAY end``
    encoding: str = "utf-8"

    @property
    def key(self) -> str:
        return f"{self.uniqueid}#{self.sequence}"

    def fields(self) -> list[str]:
        return [
            self.accountcode,
            self.src,
            self.dst,
            self.dcontext,
            self.clid,
            self.channel,
            self.dstchannel,
            self.lastapp,
            self.lastdata,
            f"{DAY} {self.start}",
            f"{DAY} {self.answer}" if self.answer else "",
            self.end_text if self.end_text is not None else f"{DAY} {self.end}",
            str(self.duration),
            str(self.billsec),
            self.disposition,
            "DOCUMENTATION",
            self.uniqueid,
            "",
            "",
            self.linkedid,
            str(self.sequence),
        ]

    def line(self) -> bytes:
        text = ",".join('"' + f.replace('"', '""') + '"' for f in self.fields()) + "\n"
        return text.encode(self.encoding)


def _secs(t: str) -> int:
    h, m, s = (int(x) for x in t.split(":"))
    return h * 3600 + m * 60 + s


def _at(t: str, plus: int) -> str:
    s = _secs(t) + plus
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class Pbx:
    """Hands out uniqueids and sequence numbers as Asterisk does, and keeps the records."""

    prefix: str = ""
    channels: int = 0
    sequence: int = 0
    records: list[Rec] = field(default_factory=list)

    def restart(self, systemname: str) -> None:
        """``systemname`` set in asterisk.conf, Asterisk restarted: the counters start again."""
        self.prefix, self.channels, self.sequence = f"{systemname}-", 0, 0

    def uid(self, at: str) -> str:
        epoch = int(datetime.fromisoformat(f"{DAY}T{at}").replace(tzinfo=UTC).timestamp())
        self.channels += 1
        return f"{self.prefix}{epoch}.{self.channels - 1}"

    def name(self, tech: str) -> str:
        """A channel name: ``SIP/301-0000001a``."""
        self.channels += 1
        return f"{tech}-{self.channels:08x}"

    def cdr(self, case: str, uniqueid: str, linkedid: str, **kw) -> Rec:
        self.sequence += 1
        rec = Rec(case=case, uniqueid=uniqueid, sequence=self.sequence, linkedid=linkedid, **kw)
        self.records.append(rec)
        return rec


@dataclass
class Call:
    """What the warehouse should make of one call."""

    case: str
    call_key: str
    records: list[Rec]
    answered: Rec | None  # the answered leg by answered_longest (None: nobody answered)
    billable: Rec
    talk: int


@dataclass
class Day:
    records: list[Rec]  # every line, in file order (repeat and broken line included)
    calls: list[Call]
    repeat: Rec
    broken: Rec
    latin: Rec

    def content(self) -> bytes:
        return b"".join(r.line() for r in self.records)

    @property
    def good(self) -> list[Rec]:
        seen, out = set(), []
        for r in self.records:
            if r is self.broken or r.key in seen:
                continue
            seen.add(r.key)
            out.append(r)
        return out

    def call(self, case: str) -> Call:
        (found,) = [c for c in self.calls if c.case == case]
        return found


def trunk_call(pbx: Pbx, i: int, at: str, disposition: str) -> Call:
    """An ordinary call over the trunk: even ``i`` outbound from an extension to a London number,
    odd ``i`` inbound from a UK mobile to the DID 5000 (ringing extension 20x)."""
    uid = pbx.uid(at)
    outbound = i % 2 == 0
    src = f"10{i % 5}" if outbound else f"+447700900{i:03d}"
    dst = f"+44207946{i:04d}" if outbound else "5000"
    chan = pbx.name(f"SIP/{src}" if outbound else "SIP/trunk")
    dstchan = pbx.name("SIP/trunk" if outbound else f"SIP/20{i % 4}")
    answered = disposition == "ANSWERED"
    ring = 3 + i % 7 if answered else (20 if disposition == "NO ANSWER" else 1)
    talk = 30 + 17 * i if answered else 0
    rec = pbx.cdr(
        "trunk",
        uid,
        uid,
        src=src,
        dst=dst,
        dcontext="from-internal" if outbound else "from-trunk",
        clid=f'"Desk {src}" <{src}>' if outbound else f'"{src}" <{src}>',
        channel=chan,
        dstchannel=dstchan,
        lastapp="Dial",
        lastdata=f"SIP/trunk/{dst[1:]},60" if outbound else f"SIP/20{i % 4},30",
        start=at,
        answer=_at(at, ring) if answered else "",
        end=_at(at, ring + talk),
        duration=ring + talk,
        billsec=talk,
        disposition=disposition,
        accountcode="sales" if outbound else "",
    )
    return Call("trunk", uid, [rec], rec if answered else None, rec, talk)


DISPOSITIONS = ["ANSWERED", "ANSWERED", "NO ANSWER", "ANSWERED", "BUSY", "ANSWERED", "NO ANSWER"]


def build_day() -> Day:
    pbx = Pbx()
    calls: list[Call] = []
    n = 0

    def trunk(at: str) -> Call:
        nonlocal n
        call = trunk_call(pbx, n, at, DISPOSITIONS[n % len(DISPOSITIONS)])
        n += 1
        calls.append(call)
        return call

    for k in range(12):  # 08:00 .. 09:50
        trunk(_at("08:00:00", 600 * k))

    # 10:00 Dial(SIP/301&SIP/200@trunk): one channel, one start, a record per dialled peer
    uid = pbx.uid("10:00:00")
    chan = pbx.name("SIP/100")
    base = {"src": "100", "dst": "301", "dcontext": "from-internal", "clid": '"Reception" <100>', "channel": chan,
                "lastapp": "Dial", "lastdata": "SIP/301&SIP/200@trunk,30", "start": "10:00:00"}  # fmt: skip
    f1 = pbx.cdr("fork", uid, uid, dstchannel=pbx.name("SIP/301"), answer="10:00:06", end="10:02:06",
                 duration=126, billsec=120, disposition="ANSWERED", **base)  # fmt: skip
    f2 = pbx.cdr("fork", uid, uid, dstchannel=pbx.name("SIP/trunk"), answer="", end="10:00:06",
                 duration=6, billsec=0, disposition="NO ANSWER", **base)  # fmt: skip
    calls.append(Call("fork", uid, [f1, f2], f1, f1, 120))

    trunk("10:15:00")

    # 10:30 Local/ chain: the DID's ring group is Local/ch1@ringgroups; its ;2 half dials 301 and
    # 302 in parallel (302 answers). 180 s of talk on both sides: the tie goes to the earliest
    # start, the caller's record (the ;2 half starts a second later).
    caller = pbx.uid("10:30:00")
    trunk_chan = pbx.name("SIP/trunk")
    pbx.uid("10:30:01")  # the ;1 half: Party B of the caller's record, no CDR of its own
    local = pbx.uid("10:30:01")  # the ;2 half
    local_chan = f"Local/ch1@ringgroups-{pbx.channels:08x}"
    c1 = pbx.cdr("local_ch1", caller, caller, src="+442079460501", dst="5100", dcontext="from-trunk",
                 clid='"+442079460501" <+442079460501>', channel=trunk_chan, dstchannel=f"{local_chan};1",
                 lastapp="Dial", lastdata="Local/ch1@ringgroups,60", start="10:30:00", answer="10:30:09",
                 end="10:33:09", duration=189, billsec=180, disposition="ANSWERED")  # fmt: skip
    half = {"src": "+442079460501", "dst": "ch1", "dcontext": "ringgroups", "clid": '"+442079460501" <+442079460501>',
                "channel": f"{local_chan};2", "lastapp": "Dial", "lastdata": "SIP/301&SIP/302,20", "start": "10:30:01"}  # fmt: skip
    c2 = pbx.cdr("local_ch1", local, caller, dstchannel=pbx.name("SIP/301"), answer="", end="10:30:09",
                 duration=8, billsec=0, disposition="NO ANSWER", **half)  # fmt: skip
    c3 = pbx.cdr("local_ch1", local, caller, dstchannel=pbx.name("SIP/302"), answer="10:30:09", end="10:33:09",
                 duration=188, billsec=180, disposition="ANSWERED", **half)  # fmt: skip
    calls.append(Call("local_ch1", caller, [c1, c2, c3], c1, c1, 180))

    # 11:00 Local/s@ivr: the ;2 half plays the menu (dst s) and hangs up; the caller's record
    # ends a second later, after its h extension ran (dst h)
    caller = pbx.uid("11:00:00")
    trunk_chan = pbx.name("SIP/trunk")
    pbx.uid("11:00:00")
    local = pbx.uid("11:00:00")
    local_chan = f"Local/s@ivr-welcome-{pbx.channels:08x}"
    s1 = pbx.cdr("local_s_h", caller, caller, src="+447700900777", dst="h", dcontext="from-trunk",
                 clid='"+447700900777" <+447700900777>', channel=trunk_chan, dstchannel=f"{local_chan};1",
                 lastapp="Dial", lastdata="Local/s@ivr-welcome,60", start="11:00:00", answer="11:00:01",
                 end="11:00:41", duration=41, billsec=40, disposition="ANSWERED")  # fmt: skip
    s2 = pbx.cdr("local_s_h", local, caller, src="+447700900777", dst="s", dcontext="ivr-welcome",
                 clid='"+447700900777" <+447700900777>', channel=f"{local_chan};2", dstchannel="",
                 lastapp="BackGround", lastdata="custom/welcome-menu", start="11:00:00", answer="11:00:01",
                 end="11:00:40", duration=40, billsec=39, disposition="ANSWERED")  # fmt: skip
    calls.append(Call("local_s_h", caller, [s1, s2], s1, s1, 40))

    for k in range(5):  # 11:15 .. 11:55
        trunk(_at("11:15:00", 600 * k))

    # 12:00 Queue(support): ringall rings 201 and 202 (no answer), the retry rings 203 (no
    # answer) and 202 again, who answers
    uid = pbx.uid("12:00:00")
    chan = pbx.name("SIP/trunk")
    qbase = {"src": "+447700900555", "dst": "600", "dcontext": "from-trunk", "clid": '"+447700900555" <+447700900555>',
                 "channel": chan, "lastapp": "Queue", "lastdata": "support,t,,,300", "start": "12:00:00"}  # fmt: skip
    q1 = pbx.cdr("queue", uid, uid, dstchannel=pbx.name("SIP/201"), answer="", end="12:00:20", duration=20,
                 billsec=0, disposition="NO ANSWER", **qbase)  # fmt: skip
    q2 = pbx.cdr("queue", uid, uid, dstchannel=pbx.name("SIP/202"), answer="", end="12:00:20", duration=20,
                 billsec=0, disposition="NO ANSWER", **qbase)  # fmt: skip
    q3 = pbx.cdr("queue", uid, uid, dstchannel=pbx.name("SIP/203"), answer="", end="12:00:45", duration=45,
                 billsec=0, disposition="NO ANSWER", **qbase)  # fmt: skip
    q4 = pbx.cdr("queue", uid, uid, dstchannel=pbx.name("SIP/202"), answer="12:00:47", end="12:06:47",
                 duration=407, billsec=360, disposition="ANSWERED", **qbase)  # fmt: skip
    calls.append(Call("queue", uid, [q1, q2, q3, q4], q4, q4, 360))

    for k in range(4):  # 12:15 .. 12:45
        trunk(_at("12:15:00", 600 * k))

    # 13:00 .. 13:30 internal calls between named SIP endpoints
    for k, (disp, talk) in enumerate([("ANSWERED", 95), ("NO ANSWER", 0), ("BUSY", 0), ("ANSWERED", 12)]):
        at = _at("13:00:00", 600 * k)
        uid = pbx.uid(at)
        ring = 4 if disp == "ANSWERED" else (25 if disp == "NO ANSWER" else 1)
        rec = pbx.cdr("named", uid, uid, src="client1", dst="client2", dcontext="internal",
                      clid='"client1" <client1>', channel=pbx.name("SIP/client1"),
                      dstchannel=pbx.name("SIP/client2"), lastapp="Dial", lastdata="SIP/client2,25", start=at,
                      answer=_at(at, ring) if talk else "", end=_at(at, ring + talk), duration=ring + talk,
                      billsec=talk, disposition=disp)  # fmt: skip
        calls.append(Call("named", uid, [rec], rec if talk else None, rec, talk))

    # 13:50 a caller name in Latin-1 (the trunk sends ISO-8859-1; Asterisk writes the bytes)
    uid = pbx.uid("13:50:00")
    latin = pbx.cdr("latin1", uid, uid, src="+34912345678", dst="5000", dcontext="from-trunk",
                    clid='"Jos\u00e9 Mu\u00f1oz" <+34912345678>', channel=pbx.name("SIP/trunk"),
                    dstchannel=pbx.name("SIP/201"), lastapp="Dial", lastdata="SIP/201,30", start="13:50:00",
                    answer="13:50:05", end="13:52:05", duration=125, billsec=120, disposition="ANSWERED",
                    encoding="latin-1")  # fmt: skip
    calls.append(Call("latin1", uid, [latin], latin, latin, 120))

    # 14:00 systemname = pbx1, Asterisk restarted: uniqueid/linkedid gain the prefix, counters restart
    pbx.restart("pbx1")
    for k in range(3):  # 14:05 .. 14:25
        trunk(_at("14:05:00", 600 * k))

    # 14:30 a parallel dial again, now with the prefix: 301 rings out, 302 is busy, the trunk answers
    uid = pbx.uid("14:30:00")
    chan = pbx.name("SIP/100")
    base = {"src": "100", "dst": "301", "dcontext": "from-internal", "clid": '"Reception" <100>', "channel": chan,
                "lastapp": "Dial", "lastdata": "SIP/301&SIP/302&SIP/200@trunk,30", "start": "14:30:00"}  # fmt: skip
    g1 = pbx.cdr("fork_prefixed", uid, uid, dstchannel=pbx.name("SIP/301"), answer="", end="14:30:12",
                 duration=12, billsec=0, disposition="NO ANSWER", **base)  # fmt: skip
    g2 = pbx.cdr("fork_prefixed", uid, uid, dstchannel=pbx.name("SIP/302"), answer="", end="14:30:02",
                 duration=2, billsec=0, disposition="BUSY", **base)  # fmt: skip
    g3 = pbx.cdr("fork_prefixed", uid, uid, dstchannel=pbx.name("SIP/trunk"), answer="14:30:12", end="14:31:47",
                 duration=107, billsec=95, disposition="ANSWERED", **base)  # fmt: skip
    calls.append(Call("fork_prefixed", uid, [g1, g2, g3], g3, g3, 95))

    trunk("14:45:00")

    # 15:00 attended transfer: the caller reaches 201; 201 consults 205 on a second channel and
    # completes the transfer at 15:01:30; the caller's channel, bridged to 205, starts a new CDR
    caller = pbx.uid("15:00:00")
    trunk_chan = pbx.name("SIP/trunk")
    b_chan = pbx.name("SIP/201")
    pbx.uid("15:00:00")  # 201's first channel (Party B of the caller's first record)
    consult = pbx.uid("15:00:50")  # 201's consultation channel
    consult_chan = pbx.name("SIP/201")
    c_chan = pbx.name("SIP/205")
    pbx.uid("15:00:50")  # 205's channel
    tbase = {"src": "+442079460999", "dst": "5000", "dcontext": "from-trunk", "clid": '"+442079460999" <+442079460999>',
                 "channel": trunk_chan, "lastapp": "Dial", "lastdata": "SIP/201,30"}  # fmt: skip
    t1 = pbx.cdr("transfer", caller, caller, dstchannel=b_chan, start="15:00:00", answer="15:00:05",
                 end="15:01:30", duration=90, billsec=85, disposition="ANSWERED", **tbase)  # fmt: skip
    t2 = pbx.cdr("transfer", consult, caller, src="201", dst="205", dcontext="from-internal",
                 clid='"Agent 201" <201>', channel=consult_chan, dstchannel=c_chan, lastapp="Dial",
                 lastdata="SIP/205,30", start="15:00:50", answer="15:00:55", end="15:01:30", duration=40,
                 billsec=35, disposition="ANSWERED")  # fmt: skip
    t3 = pbx.cdr("transfer", caller, caller, dstchannel=c_chan, start="15:01:30", answer="15:01:30",
                 end="15:05:30", duration=240, billsec=240, disposition="ANSWERED", **tbase)  # fmt: skip
    calls.append(Call("transfer", caller, [t1, t2, t3], t3, t3, 240))

    for k in range(3):  # 15:15 .. 15:35
        trunk(_at("15:15:00", 600 * k))
    # a CDR batch flushed twice: the same line again, right after itself
    repeated = trunk("15:45:00").records[0]
    pbx.records.append(repeated)

    # 16:00 a broken line: its end time does not parse
    uid = pbx.uid("16:00:00")
    broken = pbx.cdr("broken", uid, uid, src="104", dst="+442079460404", dcontext="from-internal",
                     clid='"Desk 104" <104>', channel=pbx.name("SIP/104"), dstchannel=pbx.name("SIP/trunk"),
                     lastapp="Dial", lastdata="SIP/trunk/442079460404,60", start="16:00:00", answer="16:00:04",
                     end="16:01:04", duration=64, billsec=60, disposition="ANSWERED",
                     end_text=f"{DAY} 24:61:04")  # fmt: skip

    for k in range(16):  # 16:10 .. 18:40
        trunk(_at("16:10:00", 600 * k))
    return Day(pbx.records, calls, repeated, broken, latin)


DAY_FILE = build_day()

SUMMARY = (
    "SELECT call_key, legs, record_keys, answered_record_key, billable_record_key, talk_seconds, billable_rule "
    "FROM call_summaries WHERE carrier = :c"
)


def summaries(engine) -> list[tuple]:
    """One tuple per call (its legs' record keys sorted), sorted in Python (not by collation)."""
    return sorted((r[0], r[1], sorted(r[2]), *r[3:]) for r in q(engine, SUMMARY, c=CARRIER))


def expected_summaries(day: Day) -> list[tuple]:
    return sorted(
        (
            c.call_key,
            len(c.records),
            sorted(r.key for r in c.records),
            c.answered.key if c.answered else None,
            c.billable.key,
            c.talk,
            RULE,
        )
        for c in day.calls
    )


def file_row(engine, file_id: int):
    (row,) = q(
        engine,
        "SELECT status, lines, calls_loaded, calls_flagged, calls_rejected, calls_duplicate, processing_log "
        "FROM cdr_files WHERE id = :i",
        i=file_id,
    )
    return row


def warehouse_keys(engine) -> set[tuple[str, str]]:
    rows = q(engine, "SELECT carrier_call_id, extras ->> 'sequence' FROM calls WHERE carrier = :c", c=CARRIER)
    return {(r[0], r[1]) for r in rows}


def snapshot(engine) -> list[tuple]:
    return [
        tuple(r)
        for r in q(
            engine,
            "SELECT record_key, call_key, file_id, line_number, quality::text, caller_name FROM calls ORDER BY 1",
        )
    ]


def load_day(engine, store, name: str = "Master.csv") -> int:
    add_carrier(engine, CARRIER, file_type="asterisk_csv")
    file_id = register(engine, store, DAY_FILE.content(), name, carrier=CARRIER).file_id
    result = process_file(engine, store, file_id)
    assert result.status == "loaded", result.message
    return file_id


# --- the file itself ----------------------------------------------------------------------------


def test_the_day_is_what_the_issue_describes():
    day = DAY_FILE
    lines = day.content().split(b"\n")[:-1]
    assert 60 <= len(lines) <= 90
    assert all(line.count(b'","') == 20 for line in lines)  # 21 quoted columns each
    first_starts = [min(_secs(x.start) for x in c.records) for c in day.calls]
    assert first_starts == sorted(first_starts) and len(day.records) == len(lines)
    assert {c.case for c in day.calls} >= {"trunk", "fork", "local_ch1", "local_s_h", "queue", "transfer", "named",
                                           "latin1", "fork_prefixed"}  # fmt: skip
    assert {r.disposition for c in day.calls if c.case == "trunk" for r in c.records} == {
        "ANSWERED",
        "NO ANSWER",
        "BUSY",
    }
    # the prefix appears mid-file and stays
    prefixed = [r.uniqueid.startswith("pbx1-") for r in day.records]
    assert prefixed[0] is False and prefixed[-1] is True and prefixed == sorted(prefixed)
    # the sequence counter restarted with it: the same sequence numbers on both sides
    before = {r.sequence for r in day.records if not r.uniqueid.startswith("pbx1-")}
    after = {r.sequence for r in day.records if r.uniqueid.startswith("pbx1-")}
    assert before & after
    # the Latin-1 line is not UTF-8; every other line is
    bad = [i for i, line in enumerate(lines) if not _utf8(line)]
    assert [lines[i] for i in bad] == [day.latin.line().rstrip(b"\n")]
    assert lines.count(day.repeat.line().rstrip(b"\n")) == 2


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- loading it -------------------------------------------------------------------------------


def test_every_record_of_the_day_is_in_the_warehouse_and_nothing_else(engine, store):
    day = DAY_FILE
    file_id = load_day(engine, store)
    n = len(day.records)
    row = file_row(engine, file_id)

    assert row.status == "loaded"
    assert row.lines == n
    assert row.calls_loaded + row.calls_rejected + row.calls_duplicate == n
    assert (row.calls_loaded, row.calls_rejected, row.calls_duplicate) == (n - 2, 1, 1)
    assert f"records: {n} read = {n - 2 - row.calls_flagged} loaded + {row.calls_flagged} flagged + 1 rejected " \
           f"+ 1 repeats" in row.processing_log  # fmt: skip
    # exactly the broken line is rejected, with its reason
    broken_line = day.records.index(day.broken) + 1
    rejected = q(engine, "SELECT line_number, reasons FROM rejected_rows WHERE file_id = :i", i=file_id)
    assert [r.line_number for r in rejected] == [broken_line]
    assert any(reason.startswith("parse:end_time:unparseable") for reason in rejected[0].reasons), rejected[0].reasons
    # exactly the repeat is the duplicate
    first, second = [i + 1 for i, r in enumerate(day.records) if r is day.repeat]
    assert f"repeats: line {second} repeats line {first}" in row.processing_log
    # every other record is a row of calls, and nothing else is
    written = {(r.uniqueid, str(r.sequence)) for r in day.good}
    assert len(written) == n - 2
    assert warehouse_keys(engine) == written
    assert q(engine, "SELECT count(*), count(DISTINCT record_key) FROM calls")[0] == (n - 2, n - 2)
    # and each at its own line
    lines = {r.key: day.records.index(r) + 1 for r in day.good}
    assert {r.record_key: r.line_number for r in q(engine, "SELECT record_key, line_number FROM calls")} == lines


def test_odd_rows_load_flagged_and_clean_trunk_rows_do_not(engine, store):
    day = DAY_FILE
    file_id = load_day(engine, store)
    quality = {r.record_key: r.quality for r in q(engine, "SELECT record_key, quality FROM calls")}

    for call in day.calls:
        for rec in call.records:
            got = quality[rec.key]
            if rec.case == "named":
                assert got == [CALLER, CALLEE], (rec.key, got)
            elif rec.dst in ("s", "h", "ch1"):
                assert got == [CALLEE], (rec.key, rec.dst, got)
            elif rec is day.latin:
                assert got is not None and len(got) == 1 and got[0].startswith("parse:encoding:"), got
            else:
                assert got is None, (rec.case, rec.key, got)
    dialplan = [r for c in day.calls for r in c.records if r.dst in ("s", "h", "ch1")]
    assert sorted(r.dst for r in dialplan) == ["ch1", "ch1", "h", "s"]
    flagged = 4 + len(dialplan) + 1  # named endpoints, dialplan extensions, the Latin-1 line
    assert file_row(engine, file_id).calls_flagged == flagged
    assert q(engine, "SELECT count(*) FROM calls WHERE quality IS NOT NULL")[0][0] == flagged
    # the analysts' filter of the README
    assert q(engine, "SELECT count(*) FROM calls WHERE quality ? :c", c=CALLEE)[0][0] == 4 + len(dialplan)


def test_the_latin1_caller_name_is_read_as_latin1_and_flagged(engine, store):
    day = DAY_FILE
    load_day(engine, store)
    (row,) = q(
        engine,
        "SELECT caller_name, caller_number, extras ->> 'clid' AS clid, quality FROM calls WHERE record_key = :k",
        k=day.latin.key,
    )
    assert row.caller_name == "Jos\u00e9 Mu\u00f1oz"
    assert row.clid == '"Jos\u00e9 Mu\u00f1oz" <+34912345678>'
    assert row.caller_number == "+34912345678"
    line = day.latin.line()
    at = line.index(b"\xe9") + 1
    assert row.quality == [f"parse:encoding:not valid utf-8 (byte 0xe9 at {at}), read as latin-1"]


def test_every_call_has_its_legs_and_the_answered_longest_leg(engine, store):
    day = DAY_FILE
    load_day(engine, store)
    got = summaries(engine)

    assert got == expected_summaries(day)
    by_key = {r[0]: r for r in got}
    # the cases, spelled out
    fork = day.call("fork")
    assert by_key[fork.call_key][1:4] == (2, sorted(r.key for r in fork.records), fork.records[0].key)
    chain = day.call("local_ch1")
    # three legs, two uniqueids (the caller's channel, the ;2 half), one linkedid
    assert len({r.uniqueid for r in chain.records}) == 2 and by_key[chain.call_key][1] == 3
    assert by_key[chain.call_key][3] == chain.records[0].key  # tie on 180 s: the earliest start
    assert by_key[day.call("local_s_h").call_key][1] == 2
    queue = day.call("queue")
    assert by_key[queue.call_key][1:4] == (4, sorted(r.key for r in queue.records), queue.records[3].key)
    transfer = day.call("transfer")
    assert by_key[transfer.call_key][1] == 3 and by_key[transfer.call_key][3] == transfer.records[2].key
    prefixed = day.call("fork_prefixed")
    assert prefixed.call_key.startswith("pbx1-") and by_key[prefixed.call_key][1:4] == (
        3,
        sorted(r.key for r in prefixed.records),
        prefixed.records[2].key,
    )
    # the broken line is no call at all
    assert day.broken.uniqueid not in by_key
    # every loaded leg is in exactly one call
    assert sum(r[1] for r in got) == len(day.good)
    assert q(engine, "SELECT count(*) FROM call_legs WHERE carrier = :c", c=CARRIER)[0][0] == len(day.good)
    billable = q(engine, "SELECT record_key FROM call_legs WHERE carrier = :c AND billable ORDER BY 1", c=CARRIER)
    assert [r[0] for r in billable] == sorted(c.billable.key for c in day.calls)
    # the transfer's call spans the whole of it, billed on the record after the transfer
    (call,) = q(
        engine,
        "SELECT first_start, last_end, caller_number, callee_number FROM call_summaries "
        "WHERE carrier = :c AND call_key = :k",
        c=CARRIER,
        k=transfer.call_key,
    )
    assert [v.isoformat() for v in call[:2]] == [f"{DAY}T15:00:00+00:00", f"{DAY}T15:05:30+00:00"]
    assert tuple(call[2:]) == ("+442079460999", "5000")


def test_number_types_of_named_endpoints_and_e164_numbers(engine, store):
    day = DAY_FILE
    load_day(engine, store)
    rows = {
        r.record_key: r
        for r in q(
            engine,
            "SELECT record_key, caller_number, callee_number, caller_number_type, callee_number_type, "
            "caller_e164, callee_e164 FROM calls",
        )
    }
    named = [r for c in day.calls if c.case == "named" for r in c.records]
    for rec in named:
        row = rows[rec.key]
        assert (row.caller_number_type, row.callee_number_type) == ("extension", "extension"), row
        assert (row.caller_e164, row.callee_e164) == (None, None)
    for rec in day.good:
        row = rows[rec.key]
        if rec.src.startswith("+44"):
            assert (row.caller_number_type, row.caller_e164) == ("e164", rec.src), row
        if rec.dst.startswith("+44"):
            assert (row.callee_number_type, row.callee_e164) == ("e164", rec.dst), row
        if rec.dst in ("s", "h", "ch1"):
            assert row.callee_number_type == "extension", row
    assert sum(r.src.startswith("+44") for r in day.good) > 10 and sum(r.dst.startswith("+44") for r in day.good) > 10


# --- loading it again -------------------------------------------------------------------------


def test_reprocessing_the_day_leaves_the_same_rows_and_calls(engine, store):
    file_id = load_day(engine, store)
    before_rows, before_calls = snapshot(engine), summaries(engine)
    before_counts = tuple(file_row(engine, file_id))[:6]

    assert requeue(engine, [file_id], "operator re-run") == [file_id]
    result = process_file(engine, store, file_id)

    assert result.status == "loaded", result.message
    assert snapshot(engine) == before_rows
    assert summaries(engine) == before_calls
    assert tuple(file_row(engine, file_id))[:6] == before_counts


def test_the_day_under_another_name_or_with_one_more_record_loads_nothing_twice(engine, store):
    day = DAY_FILE
    first = load_day(engine, store)
    before_rows, before_calls = snapshot(engine), summaries(engine)

    # the same bytes under another name: a duplicate file, never loaded
    again = register(engine, store, day.content(), "Master-copy.csv", carrier=CARRIER)
    assert again.is_duplicate
    assert q(engine, "SELECT status FROM cdr_files WHERE id = :i", i=again.file_id)[0][0] == "duplicate"
    assert snapshot(engine) == before_rows

    # the same records in a new file with one more: only that record loads
    pbx = Pbx(prefix="pbx1-", channels=900, sequence=900)
    extra = trunk_call(pbx, 3, "18:55:00", "ANSWERED").records[0]
    bigger = register(engine, store, day.content() + extra.line(), "Master.csv.1", carrier=CARRIER).file_id
    result = load_file(engine, store, bigger)
    n = len(day.records) + 1
    assert (result.status, result.loaded, result.rejected, result.duplicates) == ("loaded", 1, 1, n - 2)
    row = file_row(engine, bigger)
    assert (row.lines, row.calls_loaded, row.calls_rejected, row.calls_duplicate) == (n, 1, 1, n - 2)
    assert q(engine, "SELECT record_key FROM calls WHERE file_id = :i", i=bigger)[0][0] == extra.key
    assert q(engine, "SELECT count(*), count(DISTINCT record_key) FROM calls")[0] == (n - 2, n - 2)
    new_call = (extra.key.split("#")[0], 1, [extra.key], extra.key, extra.key, extra.billsec, RULE)
    assert summaries(engine) == sorted(before_calls + [new_call])

    # re-running the first file: no record lost or doubled, the calls unchanged
    requeue(engine, [first], "operator re-run")
    assert process_file(engine, store, first).status == "loaded"
    assert {r[0] for r in snapshot(engine)} == {r[0] for r in before_rows} | {extra.key}
    assert q(engine, "SELECT count(*), count(DISTINCT record_key) FROM calls")[0] == (n - 2, n - 2)
    assert summaries(engine) == sorted(before_calls + [new_call])
    files = q(
        engine, "SELECT id, lines, calls_loaded, calls_rejected, calls_duplicate FROM cdr_files WHERE id IN (:a, :b)",
        a=first, b=bigger,
    )  # fmt: skip
    for f in files:
        assert f.lines == f.calls_loaded + f.calls_rejected + f.calls_duplicate, tuple(f)
    assert sum(f.calls_loaded for f in files) == n - 2
    assert q(engine, "SELECT sum(calls) FROM call_days WHERE carrier = :c", c=CARRIER)[0][0] == n - 2


def test_calls_flagged_follows_calls_handed_over_by_a_rerun(engine, store):
    """sql/011: calls_flagged is the file's calls loaded with quality flags, a subset of
    calls_loaded. After file 1 is re-run, its 68 calls (9 flagged) belong to file 2."""
    day = DAY_FILE
    first = load_day(engine, store)
    second = register(engine, store, day.content() + b"\n", "Master.csv.1", carrier=CARRIER).file_id
    assert load_file(engine, store, second).status == "loaded"
    requeue(engine, [first], "operator re-run")
    assert process_file(engine, store, first).status == "loaded"

    held = q(
        engine,
        "SELECT f.id, f.calls_loaded, f.calls_flagged, count(c.*) AS calls, count(c.quality) AS flagged "
        "FROM cdr_files f LEFT JOIN calls c ON c.file_id = f.id WHERE f.id IN (:a, :b) GROUP BY f.id ORDER BY f.id",
        a=first,
        b=second,
    )
    assert [(r.calls_loaded, r.calls) for r in held] == [(0, 0), (len(day.good), len(day.good))]
    assert [(r.id, r.calls_flagged) for r in held] == [(r.id, r.flagged) for r in held]  # file 2: 0 != 9
