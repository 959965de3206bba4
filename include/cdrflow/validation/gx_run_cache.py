"""Great Expectations' fixed cost per run, cut by building its planning objects once per run.

A suite run of GX 1.x costs about 0.1 s whatever the size of the frame (a 1-row frame and a
27,000-row chunk both take 0.10-0.12 s here; 14 expectations), and the loader runs the suite
some 15 times per million calls: about 1.5 s of the loader's ~9 s of Python, on a machine where
the loader's Python and PostgreSQL's COPY share two cores. Most of that fixed cost is GX
rebuilding the same objects again and again while it plans the run (cProfile, 20 runs):

- ``Expectation.configuration`` is a property that builds a new ``ExpectationConfiguration``
  (a pydantic ``dict()`` of the expectation, its class name turned into snake case) on every
  access: about 1,970 times per run, 40% of the run;
- ``ExpectationConfiguration.to_domain_obj()`` builds a new expectation from its configuration,
  about 170 times per run for 14 expectations (``get_metric_kwargs`` calls it per metric);
- ``IDDict.to_id()``, the id of each of the ~780 metric configurations of a run (twice each),
  passes the kwargs through ``convert_to_json_serializable`` (isinstance checks against pydantic,
  numpy and pandas types for every value) before ``json.dumps``: a third of what was left.

Within :func:`run_cache` (cdrflow's ``validate_chunk`` holds it around one ``validate`` call) the
first two are built once per object and then reused, and an id whose values are plain JSON
already (strings, integers, booleans, None, finite floats, lists and string-keyed dicts of them:
every metric of cdrflow's suites) is dumped directly: the same text as
``convert_to_json_serializable`` would give, so the same id; any other value takes GX's own path.
The first two are pure functions of objects GX does not change while it plans and evaluates a run: the expectations are built afresh from the suite at the start
of each run (``suite.expectations`` -> configurations -> ``to_domain_obj``), and the cache is
dropped when the run ends, so nothing outlives it. Outside the block (anyone else's use of GX in
the process) both are GX's own. ``tests/test_gx_run_cache.py`` requires the same results, bad
rows and summaries, with and without the cache, for every check of every suite.

Not a public GX interface: the names patched are checked when the patch is installed, and a GX
version without them gets no patch (validation is then as correct, only slower).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_STATE = threading.local()  # .memo: {(what, id(object)): (object, value)} while a run is cached
_INSTALLED = False
_INSTALL_LOCK = threading.Lock()


def _memo() -> dict | None:
    return getattr(_STATE, "memo", None)


def _cached(kind: str, original):
    @functools.wraps(original)
    def wrapper(self):
        memo = _memo()
        if memo is None:
            return original(self)
        key = (kind, id(self))
        hit = memo.get(key)
        if hit is not None and hit[0] is self:  # the object is kept in the entry: its id is not reused
            return hit[1]
        value = original(self)
        memo[key] = (self, value)
        return value

    return wrapper


def _plain(value) -> bool:
    """True for JSON that ``convert_to_json_serializable`` returns as it is (exact types only:
    an Enum, a numpy scalar or a NaN goes GX's way)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


def _fast_to_id(original):
    @functools.wraps(original)
    def to_id(self, id_keys=None, id_ignore_keys=None):
        if _memo() is None or id_keys is not None or id_ignore_keys is not None:
            return original(self, id_keys, id_ignore_keys)
        keys = set(self.keys()) - set(self._id_ignore_keys)
        if len(keys) < 2:  # GX's own short forms
            return original(self)
        data = {k: self[k] for k in keys}
        if not _plain(data):  # (its keys too: strings only)
            return original(self)
        # as GX's to_id: md5 of the sorted dump (a stable id, not a digest for security)
        return hashlib.md5(json.dumps(data, sort_keys=True).encode("utf-8"), usedforsecurity=False).hexdigest()

    return to_id


def install() -> bool:
    """Patch GX (once per process); False when this GX version lacks what is patched."""
    global _INSTALLED
    with _INSTALL_LOCK:
        if _INSTALLED:
            return True
        from great_expectations.core.id_dict import IDDict
        from great_expectations.expectations.expectation import Expectation
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        prop = Expectation.__dict__.get("configuration")
        to_domain = ExpectationConfiguration.__dict__.get("to_domain_obj")
        to_id = IDDict.__dict__.get("to_id")
        if not isinstance(prop, property) or prop.fget is None or not callable(to_domain) or not callable(to_id):
            return False
        IDDict.to_id = _fast_to_id(to_id)  # type: ignore[method-assign]
        Expectation.configuration = property(_cached("configuration", prop.fget), doc=prop.__doc__)  # type: ignore[method-assign,assignment]
        ExpectationConfiguration.to_domain_obj = _cached("to_domain_obj", to_domain)  # type: ignore[method-assign]
        _INSTALLED = True
        return True


@contextmanager
def run_cache() -> Iterator[None]:
    """Within the block, on this thread, GX builds each configuration and domain object once."""
    outer = _memo()
    if outer is None:
        _STATE.memo = {}
    try:
        yield
    finally:
        if outer is None:
            _STATE.memo = None
