"""Longest-prefix match of numbers among a deck version's rates, built once per version.

One dict from prefix to rate position, and the distinct prefix lengths, longest first: a lookup
tries at most one dict probe per distinct length (a 50,000-prefix deck has about ten). For a
column of numbers, :meth:`PrefixIndex.match_array` does the same per length with Arrow compute
(one ``index_in`` per length over the numbers still unmatched). A billrun matches number by
number (a few dict probes) and caches the result per (deck version, number): a day's numbers
repeat, and its legs arrive in batches with their other columns.

A prefix with rates by time-of-day period (a deck version with periods) is one entry too: its
position stands for its any-time rate (else its first), and :attr:`PrefixIndex.by_period` holds its
rates by period; a prefix with one rate is not in it, and is rated as if there were no periods.

A number is ratable when it is digits, optionally after one leading ``+`` (the E.164 form the
loader writes, ``callee_e164``, or the plain digits of the callee). Anything else (``*72``,
``sip:...``, an empty value) is not ratable: the caller says so, it is not a "no match".
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from cdrflow.billing.model import DeckVersion, Rate


def digits_of(number: str | None) -> str | None:
    """The digits a number is matched on (``+4930...`` -> ``4930...``), None if it is not ratable."""
    if not number:
        return None
    digits = number[1:] if number[0] == "+" else number
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return digits


class PrefixIndex:
    """The rates of one deck version by prefix; ``match`` gives the rate of the longest prefix."""

    def __init__(self, rates: Iterable[Rate]) -> None:
        self.rates: tuple[Rate, ...] = tuple(rates)
        self._by_prefix: dict[str, int] = {}
        profiled: set[str] = set()
        for position, rate in enumerate(self.rates):
            prefix = rate.prefix[1:] if rate.prefix.startswith("+") else rate.prefix
            # the importers refuse a prefix twice in a version; should one slip through, the first
            # wins (but a prefix's any-time rate stands for it over its rates by period)
            found = self._by_prefix.setdefault(prefix, position)
            if rate.period:
                profiled.add(prefix)
            elif found != position and self.rates[found].period:
                self._by_prefix[prefix] = position
        # position -> {period: rate} ("" for the prefix's any-time rate), for prefixes priced by period
        self.by_period: dict[int, dict[str, Rate]] = {}
        for rate in self.rates if profiled else ():
            prefix = rate.prefix[1:] if rate.prefix.startswith("+") else rate.prefix
            if prefix in profiled:
                self.by_period.setdefault(self._by_prefix[prefix], {}).setdefault(rate.period, rate)
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)
        self._arrow: list[tuple[int, pa.Array, pa.Array]] | None = None

    @classmethod
    def of(cls, version: DeckVersion) -> PrefixIndex:
        return cls(version.rates)

    def __len__(self) -> int:
        return len(self._by_prefix)

    def position(self, digits: str) -> int | None:
        """Position in ``rates`` of the longest prefix of ``digits`` (digits only), or None."""
        get = self._by_prefix.get
        n = len(digits)
        for length in self._lengths:
            if length <= n:
                found = get(digits[:length])
                if found is not None:
                    return found
        return None

    def match(self, number: str | None) -> Rate | None:
        """The rate of the longest prefix of a number (``+`` and digits, or digits), or None."""
        digits = digits_of(number)
        if digits is None:
            return None
        found = self.position(digits)
        return None if found is None else self.rates[found]

    def match_array(self, numbers: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Rate positions (int32, null where nothing matches) for a string column of numbers.

        Numbers that are not ratable (see :func:`digits_of`) get null too; tell them apart with
        :func:`ratable_mask`.
        """
        if isinstance(numbers, pa.ChunkedArray):
            numbers = numbers.combine_chunks()
        numbers = numbers.cast(pa.string())
        digits = pc.replace_substring_regex(numbers, pattern=r"^\+", replacement="")
        ok = pc.and_kleene(pc.match_substring_regex(digits, pattern=r"^[0-9]+$"), pc.is_valid(digits))
        digits = pc.if_else(ok, digits, pa.scalar(None, pa.string()))
        lengths = pc.utf8_length(digits)
        result = pa.nulls(len(numbers), pa.int32())
        for length, prefixes, positions in self._arrow_tables():
            todo = pc.and_(pc.is_null(result), pc.greater_equal(lengths, length))
            todo = pc.fill_null(todo, False)
            if not pc.any(todo).as_py():
                continue
            heads = pc.utf8_slice_codeunits(pc.if_else(todo, digits, pa.scalar(None, pa.string())), 0, length)
            found = pc.take(positions, pc.index_in(heads, value_set=prefixes))
            result = pc.coalesce(result, found)
        return result

    def _arrow_tables(self) -> list[tuple[int, pa.Array, pa.Array]]:
        if self._arrow is None:
            groups: dict[int, tuple[list[str], list[int]]] = {}
            for prefix, position in self._by_prefix.items():
                names, places = groups.setdefault(len(prefix), ([], []))
                names.append(prefix)
                places.append(position)
            self._arrow = [
                (length, pa.array(groups[length][0], pa.string()), pa.array(groups[length][1], pa.int32()))
                for length in self._lengths
            ]
        return self._arrow


def ratable_mask(numbers: pa.Array) -> pa.Array:
    """True where a number is ratable (``+`` and digits, or digits), False elsewhere (nulls too)."""
    digits = pc.replace_substring_regex(numbers.cast(pa.string()), pattern=r"^\+", replacement="")
    return pc.fill_null(pc.match_substring_regex(digits, pattern=r"^[0-9]+$"), False)
