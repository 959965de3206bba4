"""Numbers normalised for billing: an E.164 number and a number type beside each raw number.

Carriers write numbers as their switches dial them: ``+4930123``, ``004930123`` and
``030123`` are one German number, ``89161234567`` and ``+79161234567`` one Russian mobile.
Rating matches rate prefixes on one form, so :func:`normalise` fills ``caller_e164`` and
``callee_e164`` (``+`` and digits, or NA when the value is not a telephone number of the
public network) and ``caller_number_type`` / ``callee_number_type`` (:data:`TYPES`) from the
raw ``caller_number`` / ``callee_number``, which stay as the carrier wrote them.

How a value is read depends on the carrier's :class:`DialPlan` (``dial_plan`` in the carrier
file): its country, whose national (trunk) and international prefixes come from phonenumbers'
metadata (Google's libphonenumber) unless the plan overrides them, and how long an internal
extension may be. Without a dial plan nothing is guessed: only values already written in
international form (``+...``) get an E.164 number; the others are still typed.

phonenumbers reads one number at a time (some 10-15 microseconds each), while a chunk holds
tens of thousands of calls whose numbers repeat. So each chunk's caller and callee columns are
dictionary-encoded together and only their distinct values are read: Arrow alone settles the
``+`` numbers whose calling code, length and first digit settle them (and, without a dial plan,
plain digits); the others go through a bounded cache that lives across chunks and files
(:data:`CACHE_SIZE` values per dial plan, looked up by Arrow), and the usual forms there take a
fast path through phonenumbers' metadata that gives the parser's results without its cost.
``bench/numbering.py`` measures it; ``tests/test_numbering.py`` checks that every path gives
what :func:`classify` gives. The plan and the types are :mod:`cdrflow.formats.dial_plan`, the
reading of one value :mod:`cdrflow.formats.number_reading`; this module is the chunk.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from cdrflow.formats.dial_plan import E164, EXTENSION, EXTENSION_DIGITS, TYPES, UNKNOWN, DialPlan
from cdrflow.formats.number_reading import classify, country_of

__all__ = ["TYPES", "DialPlan", "classify", "normalise"]

CACHE_SIZE = 500_000  # distinct values remembered per dial plan, in Arrow arrays: about 20 MB when full


# --- a chunk -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Known:
    """Values read before under one plan (Arrow arrays, oldest first): looked up for a whole
    chunk at once by Arrow's hash join, so a value seen before costs no Python at all."""

    values: pa.Array
    e164: pa.Array
    kinds: pa.Array


_EMPTY = _Known(pa.array([], pa.string()), pa.array([], pa.string()), pa.array([], pa.string()))
_caches: dict[DialPlan | None, _Known] = {}
_lock = threading.Lock()  # loading threads share the caches: each update swaps a whole _Known


def normalise(frame: pd.DataFrame, plan: DialPlan | None) -> pd.DataFrame:
    """``frame`` (canonical calls) with ``caller_e164``, ``callee_e164``, ``caller_number_type``
    and ``callee_number_type`` filled from ``caller_number`` and ``callee_number`` under
    ``plan`` (None: the carrier has no dial plan). A missing number stays NA in both."""
    n = len(frame)
    if not n:
        return frame
    both = pa.chunked_array(
        [pa.array(frame["caller_number"], pa.string()), pa.array(frame["callee_number"], pa.string())]
    ).combine_chunks()
    encoded = both.dictionary_encode()  # the distinct values, and each row's position among them
    distinct = encoded.dictionary
    e164_of, kinds_of, rest = _vectorised(distinct, plan)
    if rest is None:  # none decided by Arrow alone: all through the cache
        known, at = _known(distinct, plan)
        e164_of, kinds_of = known.e164.take(at), known.kinds.take(at)
    elif pc.any(rest).as_py():
        known, at = _known(distinct.filter(rest), plan)
        e164_of = pc.replace_with_mask(e164_of, rest, known.e164.take(at))
        kinds_of = pc.replace_with_mask(kinds_of, rest, known.kinds.take(at))
    e164 = e164_of.take(encoded.indices)  # NA numbers have NA indices: NA out
    kinds = kinds_of.take(encoded.indices)
    return frame.assign(
        caller_e164=_strings(e164.slice(0, n)),
        callee_e164=_strings(e164.slice(n)),
        caller_number_type=_strings(kinds.slice(0, n)),
        callee_number_type=_strings(kinds.slice(n)),
    )


_PLUS = r"^\+[1-9][0-9]{1,19}$"
_PLAIN = r"^[0-9]{1,20}$"


def _vectorised(values: pa.Array, plan: DialPlan | None) -> tuple[pa.Array, pa.Array, pa.Array | None]:
    """The values Arrow can read alone, as :func:`classify` reads them: ``+`` and digits whose
    country code, length and first digit after it :func:`_fast_international` accepts and,
    without a dial plan, plain digits (an extension or unknown). Returns E.164 numbers and
    types (NA where undecided) and the mask of the undecided; None for the mask when nothing
    could be decided (then the first two are meaningless)."""
    plus = pc.match_substring_regex(values, _PLUS)
    if plan is not None and not pc.any(plus).as_py():
        return values, values, None
    digits = pc.utf8_slice_codeunits(values, 1)
    country = pa.nulls(len(values), pa.string())
    for n in (3, 2, 1):  # calling codes are prefix-free: at most one length matches
        head = pc.utf8_slice_codeunits(digits, 0, n)
        country = pc.if_else(pc.is_in(head, value_set=_calling_codes()), head, country)
    code_length = pc.utf8_length(country)
    rest_length = pc.subtract(pc.utf8_length(digits), code_length)
    key = pc.binary_join_element_wise(  # code:length:first digit after it; NA without a code
        country, pc.cast(rest_length, pa.string()), _nth(digits, code_length), ":"
    )
    international = pc.fill_null(pc.and_kleene(plus, pc.is_in(key, value_set=_accepted_lengths())), False)
    e164 = pc.if_else(international, values, pa.scalar(None, pa.string()))
    kinds = pc.if_else(international, pa.scalar(E164), pa.scalar(None, pa.string()))
    decided = international
    if plan is None:
        plain = pc.match_substring_regex(values, _PLAIN)
        short = pc.less_equal(pc.utf8_length(values), EXTENSION_DIGITS)
        kinds = pc.if_else(plain, pc.if_else(short, pa.scalar(EXTENSION), pa.scalar(UNKNOWN)), kinds)
        decided = pc.or_(decided, plain)
    return e164, kinds, pc.invert(decided)


def _nth(digits: pa.Array, position: pa.Array) -> pa.Array:
    """The digit of each of ``digits`` at its ``position`` ('' past the end)."""
    out = pa.array([""] * len(digits), pa.string())
    for p in (1, 2, 3):
        at = pc.utf8_slice_codeunits(digits, p, p + 1)
        out = pc.if_else(pc.equal(position, p), at, out)
    return out


@functools.lru_cache(maxsize=1)
def _calling_codes() -> pa.Array:
    return pa.array(sorted(str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE), pa.string())


@functools.lru_cache(maxsize=1)
def _accepted_lengths() -> pa.Array:
    """``code:length:digit`` for every calling code, possible (not local-only) length of the
    number after it, and first digit of that number that no national prefix begins with:
    what :func:`_fast_international` accepts without the parser."""
    keys = []
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        country = country_of(code)
        if country is None or country.strips is None:
            continue
        blocked = {p[0] for p in country.strips if p}
        keys += [
            f"{code}:{length}:{digit}"
            for length in country.lengths - country.local
            for digit in "0123456789"
            if digit not in blocked
        ]
    return pa.array(sorted(keys), pa.string())


def _strings(values: pa.Array) -> pd.api.extensions.ExtensionArray:
    return pd.array(values, dtype="str")


def _known(values: pa.Array, plan: DialPlan | None) -> tuple[_Known, pa.Array]:
    """The plan's cache with every one of the distinct ``values`` in it (new ones are read with
    :func:`classify`), and where each value is in it. What is kept for the next chunks is cut
    to its newest half once it holds more than :data:`CACHE_SIZE` values (after this chunk's
    positions were taken: an evicted value may be one this chunk uses)."""
    known = _caches.get(plan, _EMPTY)
    at = _positions(values, known.values)
    missing = at < 0
    new = values.filter(pa.array(missing))
    if not len(new):
        return known, pa.array(at)
    found = [classify(value, plan) for value in new.to_pylist()]
    added = _Known(new, pa.array([e for e, _ in found], pa.string()), pa.array([k for _, k in found], pa.string()))
    at[missing] = np.arange(len(known.values), len(known.values) + len(new))
    whole = _joined(known, added)
    with _lock:
        current = _caches.get(plan, _EMPTY)  # another thread may have added some meanwhile
        kept = whole if current is known else _joined(current, added)
        if len(kept.values) > CACHE_SIZE:
            start = len(kept.values) - CACHE_SIZE // 2
            kept = _Known(kept.values.slice(start), kept.e164.slice(start), kept.kinds.slice(start))
        if plan not in _caches and len(_caches) >= 64:  # carriers are few; a test suite makes many plans
            _caches.clear()
        _caches[plan] = kept
    return whole, pa.array(at)


def _joined(first: _Known, second: _Known) -> _Known:
    return _Known(
        pa.concat_arrays([first.values, second.values]),
        pa.concat_arrays([first.e164, second.e164]),
        pa.concat_arrays([first.kinds, second.kinds]),
    )


def _positions(values: pa.Array, known: pa.Array) -> np.ndarray:
    """Where each of the distinct ``values`` is in ``known`` (-1: not there). Arrow's hash join
    with the chunk's values as the table and the cache probing it: building a hash table costs
    twice as much a value as probing one, and a chunk has fewer distinct values than the cache."""
    at = np.full(len(values), -1, dtype=np.int64)
    if len(known):
        found = pc.index_in(known, value_set=values)
        hit = np.flatnonzero(found.is_valid().to_numpy(zero_copy_only=False))
        at[found.take(pa.array(hit)).to_numpy()] = hit
    return at
