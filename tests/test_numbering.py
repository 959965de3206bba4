"""Numbers normalised for billing (issue 10, item 4): E.164 and a number type beside each raw number.

The expectations follow the numbering plans as the carriers' switches dial them: Russia (trunk
prefix 8, international 810, and 00 on newer switches), Germany (0 and 00), North America
(1 and 011, ten-digit national numbers), '+' anywhere; short codes from phonenumbers'
short-number metadata (112, 911, 110); extensions and named endpoints of PBXs (2001, s, h,
ch1, client1); SIP and tel URIs; withheld numbers.
"""

from __future__ import annotations

import io
import re

import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tests.test_loader import q, register
from tests.test_record_identity import line

from cdrflow.config.carrier_file import parse
from cdrflow.config.errors import ConfigurationError
from cdrflow.formats import number_reading, numbering
from cdrflow.formats.base import ParseOptions
from cdrflow.formats.numbering import DialPlan, classify, normalise
from cdrflow.loading.chunks import options_for, parsed_chunks
from cdrflow.loading.small_files import prepare
from cdrflow.loading.transaction import load_file
from cdrflow.warehouse.carriers import Carrier
from conftest import add_carrier

RU = DialPlan("RU", international_prefixes=("810", "00"))
DE = DialPlan("DE")
US = DialPlan("US")


@pytest.mark.parametrize(
    "plan, raw, e164, kind",
    [
        # Russia: trunk prefix 8, international 810 (and 00 where the carrier says so)
        (RU, "89161234567", "+79161234567", "national"),
        (RU, "84951234567", "+74951234567", "national"),
        (RU, "9161234567", "+79161234567", "national"),
        (RU, "79161234567", "+79161234567", "e164"),
        (RU, "+79161234567", "+79161234567", "e164"),
        (RU, "810441234567890", "+441234567890", "e164"),
        (RU, "8104930123456", "+4930123456", "e164"),
        (RU, "004930123456", "+4930123456", "e164"),
        (RU, "112", None, "short"),
        (RU, "01", None, "short"),
        (RU, "2001", None, "extension"),
        (RU, "1234567", None, "national"),  # a local number without its area code: no E.164
        # Germany: 0 and 00
        (DE, "030123456", "+4930123456", "national"),
        (DE, "030123", "+4930123", "national"),
        (DE, "004930123", "+4930123", "e164"),
        (DE, "00442079460958", "+442079460958", "e164"),
        (DE, "+49 30 123456", "+4930123456", "e164"),
        (DE, "110", None, "short"),
        (DE, "116000", None, "short"),
        # North America: 1 and 011, ten-digit national numbers
        (US, "2125551234", "+12125551234", "national"),
        (US, "12125551234", "+12125551234", "national"),
        (US, "+1 (212) 555-1234", "+12125551234", "e164"),
        (US, "011442079460958", "+442079460958", "e164"),
        (US, "01179161234567", "+79161234567", "e164"),
        (US, "911", None, "short"),
        (US, "411", None, "short"),
        (US, "*72", None, "short"),
        (US, "301", None, "extension"),
        # '+' anywhere, with or without a plan
        (None, "+4930123", "+4930123", "e164"),
        (None, "+79161234567", "+79161234567", "e164"),
        (RU, "+12125551234", "+12125551234", "e164"),
        (None, "+999123", None, "unknown"),  # no such country code
        (None, "+4", None, "unknown"),
        # without a plan nothing else is guessed
        (None, "89161234567", None, "unknown"),
        (None, "004930123", None, "unknown"),
        (None, "2001", None, "extension"),
        (None, "112", None, "extension"),  # short codes need the country
        # extensions and named endpoints: typed, never errors
        (RU, "s", None, "extension"),
        (None, "h", None, "extension"),
        (DE, "ch1", None, "extension"),
        (None, "client1", None, "extension"),
        # SIP and tel URIs: a number in the user part is read like any number
        (None, "sip:alice@example.com", None, "sip_uri"),
        (None, "sip:+4930123456@carrier.example;user=phone", "+4930123456", "e164"),
        (DE, "<sip:030123456@pbx.example>", "+4930123456", "national"),
        (RU, "sip:2001@pbx.example", None, "extension"),
        (None, '"Alice" <sips:alice@example.com>', None, "sip_uri"),
        (None, "tel:+1-212-555-1234", "+12125551234", "e164"),
        (None, "2001@sip.example", None, "extension"),
        (RU, "sip:%2B79161234567@gw.example", "+79161234567", "e164"),
        # withheld
        (None, "anonymous", None, "anonymous"),
        (US, "Restricted", None, "anonymous"),
        (None, "PRIVATE", None, "anonymous"),
        (None, "sip:anonymous@anonymous.invalid", None, "anonymous"),
        # garbage
        (RU, "12345678901234567890123", None, "unknown"),
        (None, "@@@", None, "unknown"),
        (None, "Local/200@from-internal", None, "unknown"),
        (RU, "8", None, "extension"),
        (None, "", None, None),
        (None, "   ", None, None),
    ],
)
def test_examples(plan, raw, e164, kind):
    assert classify(raw, plan) == (e164, kind)


def test_a_national_prefix_of_the_carrier_and_the_countrys_international_prefix_that_begins_with_it():
    plan = DialPlan("RU", national_prefix="8")
    assert classify("89161234567", plan) == ("+79161234567", "national")
    assert classify("810441234567890", plan) == ("+441234567890", "e164")  # 810 is read first


# --- properties -----------------------------------------------------------------------------------

PLANS = st.sampled_from(
    [
        None,
        RU,
        DE,
        US,
        DialPlan("GB"),
        DialPlan("FR"),
        DialPlan("IT"),
        DialPlan("AU"),
        DialPlan("AR"),
        DialPlan("CN"),
        DialPlan("RU", national_prefix="8"),
        DialPlan("RU", extension_digits=7),
    ]
)
PREFIXES = st.sampled_from(["", "+", "8", "7", "0", "00", "810", "1", "011", "+7", "+49", "+1", "+44", "+39", "89"])
DIGITS = st.builds(lambda p, d: p + d, PREFIXES, st.text("0123456789", max_size=15))


@given(st.text(max_size=40), PLANS)
@example("sip:", None)
@example("tel:;", RU)
@example("<sip:@>", DE)
@example("+", US)
@example("\x00\ud7ff", RU)
@example("٣٣٣٣٣٣٣", RU)  # Arabic-Indic digits: str.isdigit() says yes
def test_garbage_never_raises_and_every_answer_is_in_the_vocabulary(value, plan):
    e164, kind = classify(value, plan)
    assert kind in numbering.TYPES or (kind is None and not value.strip())
    if e164 is not None:
        assert re.fullmatch(r"\+[1-9][0-9]{1,16}", e164), e164
        assert kind in ("e164", "national")


@settings(max_examples=2000)
@given(DIGITS, PLANS)
def test_the_fast_path_gives_what_phonenumbers_parser_gives(value, plan):
    """The fast path (metadata only) must agree with the parser's reading wherever it answers."""
    fast = number_reading._fast(value, plan) if value and value.lstrip("+").isdigit() and value.count("+") < 2 else None
    if fast is not None:
        try:
            slow = number_reading._read(value, plan)
        except phonenumbers.NumberParseException:
            slow = (None, "unknown")
        assert fast == slow


@given(st.integers(900_000_0000, 999_999_9999))
def test_every_way_a_russian_switch_writes_a_mobile_gives_one_e164_number(mobile):
    forms = [f"8{mobile}", f"+7{mobile}", f"7{mobile}", f"{mobile}", f"sip:8{mobile}@gw.example", f"+7 {mobile}"]
    assert {classify(form, RU)[0] for form in forms} == {f"+7{mobile}"}


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(st.none(), DIGITS, st.sampled_from(["s", "anonymous", "sip:bob@x.example", "+", "+0"])),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([None, RU, US, DE]),
)
def test_a_chunk_gets_per_row_what_each_value_gets_alone(values, plan):
    """Arrow decides some values alone (``+`` numbers; plain digits without a plan), the cache
    the others: each row must get what :func:`classify` gives its value."""
    frame = pd.DataFrame(
        {
            "caller_number": pd.array(values, dtype="str"),
            "callee_number": pd.array(list(reversed(values)), dtype="str"),
        }
    )
    for _ in range(2):  # the second time from the cache
        out = normalise(frame, plan)
        for column, raw in (("caller", values), ("callee", list(reversed(values)))):
            got = list(zip(out[f"{column}_e164"], out[f"{column}_number_type"]))
            want = [classify(v, plan) if v is not None else (None, None) for v in raw]
            assert [(None if pd.isna(e) else e, None if pd.isna(k) else k) for e, k in got] == want


def test_the_cache_stays_bounded_and_still_answers(monkeypatch):
    monkeypatch.setattr(numbering, "CACHE_SIZE", 100)
    numbering._caches.clear()
    for start in range(0, 1_000, 70):
        values = [f"8916{n:07d}" for n in range(start, start + 70)]
        frame = pd.DataFrame(
            {"caller_number": pd.array(values, dtype="str"), "callee_number": pd.array(values[::-1], dtype="str")}
        )
        out = normalise(frame, RU)
        assert list(out["caller_e164"]) == [f"+7916{n:07d}" for n in range(start, start + 70)]
        assert len(numbering._caches[RU].values) <= 100


def test_a_chunk_whose_values_are_partly_evicted_still_gets_all_of_them(monkeypatch):
    monkeypatch.setattr(numbering, "CACHE_SIZE", 100)
    numbering._caches.clear()
    oldest = [f"8916{n:07d}" for n in range(90)]
    normalise(
        pd.DataFrame({"caller_number": pd.array(oldest, dtype="str"), "callee_number": pd.array(oldest, dtype="str")}),
        RU,
    )
    values = oldest[:10] + [f"8495{n:07d}" for n in range(60)]  # hits among the oldest, and enough new to evict
    frame = pd.DataFrame(
        {"caller_number": pd.array(values, dtype="str"), "callee_number": pd.array(values, dtype="str")}
    )

    out = normalise(frame, RU)

    assert list(out["caller_e164"]) == ["+7" + v[1:] for v in values]
    assert len(numbering._caches[RU].values) == 50


# --- the carrier file ---------------------------------------------------------------------------


def carrier_file(dial_plan: str) -> str:
    return f"carriers:\n  - code: ru\n    file_type: asterisk_csv\n    dial_plan: {dial_plan}\n"


def test_the_dial_plan_is_kept_with_the_carrier_and_becomes_the_parse_options():
    (config,) = parse(carrier_file("{country: ru, international_prefixes: ['810', '00'], national_prefix: 8}"))
    assert config.carrier.config["dial_plan"] == {
        "country": "RU",
        "national_prefix": "8",
        "international_prefixes": ("810", "00"),
        "extension_digits": 5,
    }
    options = options_for(config.carrier, "asterisk_csv")
    assert options.dial_plan == DialPlan("RU", "8", ("810", "00"), 5)
    assert options_for(Carrier(code="x", name="x", file_type="asterisk_csv"), "asterisk_csv").dial_plan is None


@pytest.mark.parametrize(
    "dial_plan, message",
    [
        ("{country: XX}", "carrier ru: dial_plan.country: unknown country 'XX'"),
        ("{country: RU, contry: RU}", "carrier ru: dial_plan: unknown key(s) contry; allowed: country,"),
        ("{national_prefix: '8'}", "carrier ru: missing dial_plan.country"),
        (
            "{country: RU, national_prefix: '8a'}",
            "carrier ru: dial_plan.national_prefix: '8a' is not a dialling prefix",
        ),
        ("{country: RU, international_prefixes: [00]}", "carrier ru: dial_plan.international_prefixes.0:"),
        ("{country: RU, extension_digits: 12}", "carrier ru: dial_plan.extension_digits:"),
        ("RU", "carrier ru: dial_plan:"),
    ],
)
def test_a_wrong_dial_plan_is_one_line_naming_the_carrier_and_the_key(dial_plan, message):
    with pytest.raises(ConfigurationError) as caught:
        parse(carrier_file(dial_plan))
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


# --- through the loader ---------------------------------------------------------------------------

DAY_LINES = [
    line("1.1", "1", channel="SIP/a-1", dstchannel="SIP/b-1", disposition="ANSWERED", src="89161234567",
         dst="810441234567890", answer="10:00:05", billsec=25),
    line("1.2", "2", channel="SIP/a-2", dstchannel="SIP/b-2", disposition="ANSWERED", src="+79161234567",
         dst="84951234567", answer="10:00:05", billsec=25),
    line("1.3", "3", channel="SIP/a-3", dstchannel="SIP/b-3", disposition="ANSWERED", src="2001", dst="112",
         answer="10:00:05", billsec=25),
    line("1.4", "4", channel="SIP/a-4", dstchannel="SIP/b-4", disposition="NO ANSWER", src="anonymous",
         dst="004930123456"),
]  # fmt: skip
EXPECTED = [
    ("89161234567", "+79161234567", "national", "810441234567890", "+441234567890", "e164"),
    ("+79161234567", "+79161234567", "e164", "84951234567", "+74951234567", "national"),
    ("2001", None, "extension", "112", None, "short"),
    ("anonymous", None, "anonymous", "004930123456", "+4930123456", "e164"),
]
COLUMNS = "caller_number, caller_e164, caller_number_type, callee_number, callee_e164, callee_number_type"


def test_a_carrier_with_a_dial_plan_gets_e164_numbers_and_types_in_the_warehouse(engine, store):
    add_carrier(
        engine,
        "ru",
        file_type="asterisk_csv",
        config={"dial_plan": {"country": "RU", "international_prefixes": ["810", "00"]}},
    )
    f = register(engine, store, "".join(DAY_LINES).encode(), "Master.csv", carrier="ru").file_id

    result = load_file(engine, store, f)

    assert (result.status, result.loaded, result.rejected) == ("loaded", 4, 0), result.message
    rows = q(engine, f"SELECT {COLUMNS} FROM calls ORDER BY record_key")
    assert [tuple(r) for r in rows] == EXPECTED


def test_a_carrier_without_a_dial_plan_gets_e164_only_for_numbers_written_with_a_plus(engine, store):
    add_carrier(engine, "pbx", file_type="asterisk_csv")
    f = register(engine, store, "".join(DAY_LINES).encode(), "Master.csv", carrier="pbx").file_id

    assert load_file(engine, store, f).loaded == 4

    rows = q(
        engine, "SELECT caller_e164, caller_number_type, callee_e164, callee_number_type FROM calls ORDER BY record_key"
    )
    assert [tuple(r) for r in rows] == [
        (None, "unknown", None, "unknown"),
        ("+79161234567", "e164", None, "unknown"),
        (None, "extension", None, "extension"),
        (None, "anonymous", None, "unknown"),
    ]


def test_small_files_prepared_together_get_the_same_numbers_as_one_file():
    """Small Asterisk files are parsed as one stream (formats/joined.py), not by parsed_chunks."""
    options = ParseOptions(dial_plan=RU)
    alone = [
        tuple(r)
        for chunk in parsed_chunks(io.BytesIO("".join(DAY_LINES).encode()), "asterisk_csv", options)
        for r in chunk.calls[["caller_e164", "caller_number_type", "callee_e164", "callee_number_type"]].itertuples(
            index=False
        )
    ]
    files = [("".join(DAY_LINES[:2])).encode(), ("".join(DAY_LINES[2:])).encode()]
    prepared = prepare(files, ["ru", "ru"], [1, 2], "asterisk_csv", {"ru": options}, None)
    together = [
        tuple(r)
        for p in prepared
        for chunk in p.chunks or []
        for r in chunk.calls[["caller_e164", "caller_number_type", "callee_e164", "callee_number_type"]].itertuples(
            index=False
        )
    ]
    assert len(together) == 4
    assert [tuple(None if pd.isna(v) else v for v in r) for r in together] == [
        tuple(None if pd.isna(v) else v for v in r) for r in alone
    ]
    assert together[0][0] == "+79161234567"
