"""Great Expectations' fixed cost per run, cut: its objects built once per run, its plan once per suite.

A suite run of GX 1.x cost about 0.1 s whatever the size of the frame (a 1-row frame and a
27,000-row chunk both took 0.10-0.12 s on a quick machine; 14 expectations), and the loader runs
the suite some 15 times per million calls, on a machine where the loader's Python and
PostgreSQL's COPY share two cores. Most of that fixed cost was GX rebuilding the same objects
again and again while it plans the run (cProfile, 20 runs):

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
The first two are pure functions of objects GX does not change while it plans and evaluates a
run, and their memo is dropped when the run ends.

What GX plans for a run (each expectation's metrics and their dependencies: the metric graphs
of ``Validator._generate_metric_dependency_subgraphs_for_each_expectation_configuration``, about
60% of what was left of the fixed cost) depends on the expectations' configurations, the batch
id, the runtime configuration (the result format) and the execution engine, never on the data:
``table.columns`` and every other value is a metric, resolved later. Within :func:`run_cache`
the plan is kept, across runs, under exactly those (the configurations and the runtime
configuration as JSON, the engine by identity; the last :data:`PLANS_KEPT` plans), and the next
run of the same suite on the same engine reuses it; the lists GX changes during a run (results,
processed configurations) are handed out as copies.

Two metrics GX computes for every column check were the next cost (py-spy, a 1M-row load: about
1.4 s of the main thread's 15 s on a slow machine): the failing rows' positions
(``*.unexpected_index_list``) and their values (``*.unexpected_values``, which COMPLETE results
carry). For each, GX's pandas function filters the *whole* checked frame (every column) by the
failing rows, and first by the column's non-null rows where the check skips nulls, only to read
the index or one column of what it filtered. Within :func:`run_cache`, for a single-column check
on a frame with an unnamed index and no ``unexpected_index_column_names`` (how cdrflow runs
every suite), the same lists are taken from the index and that one column alone, with pandas'
own boolean-key rule (:func:`pandas.core.indexing.check_bool_indexer`, what ``frame[key]``
applies); every other case is GX's own function.

Outside :func:`run_cache` (anyone else's use of GX in the process) everything is GX's own.
``tests/test_gx_run_cache.py`` requires the same results, bad rows and summaries, with and
without the cache, for every check of every suite, and one plan for frames of other data.

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


def _column_check(metric_value_kwargs: dict, accessor_domain_kwargs: dict) -> bool:
    result_format = metric_value_kwargs.get("result_format") or {}
    return "column" in accessor_domain_kwargs and not result_format.get("unexpected_index_column_names")


def _failing(index, mask):
    """``frame[mask].index`` for a frame with ``index`` (a boolean Series is aligned on its labels
    as pandas does; an array by position)."""
    from pandas.core.indexing import check_bool_indexer

    return index[check_bool_indexer(index, mask)]


def _column_domain(metric_value_kwargs: dict, metrics: dict):
    """(failing-row mask, compute domain kwargs, accessor domain kwargs with the column's name
    as the frame has it) of a single-column check, or None where GX's own function must run."""
    mask, compute_domain_kwargs, accessor_domain_kwargs = metrics["unexpected_condition"]
    if _memo() is None or not _column_check(metric_value_kwargs, accessor_domain_kwargs):
        return None
    from great_expectations.expectations.metrics.util import get_dbms_compatible_metric_domain_kwargs

    accessor_domain_kwargs = get_dbms_compatible_metric_domain_kwargs(
        metric_domain_kwargs=accessor_domain_kwargs, batch_columns_list=metrics["table.columns"]
    )
    return mask, compute_domain_kwargs, accessor_domain_kwargs


def _skips_nulls(cls, kwargs: dict) -> bool:
    return bool(kwargs.get("filter_column_isnull", getattr(cls, "filter_column_isnull", False)))


_GX_OWN = object()  # a fast path's answer: run GX's own function instead


def _column_fast_path(original, fast):
    """GX's pandas metric function ``original``, answered by ``fast(cls, engine, value kwargs,
    domain, kwargs)`` for a single-column check within a cached run."""

    @functools.wraps(original)
    def metric(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, **kwargs):
        domain = _column_domain(metric_value_kwargs, metrics)
        value = _GX_OWN if domain is None else fast(cls, execution_engine, metric_value_kwargs, domain, kwargs)
        if value is _GX_OWN:
            return original(cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, **kwargs)
        return value

    return metric


def _failing_positions(cls, execution_engine, metric_value_kwargs, domain, kwargs):
    """GX's ``_pandas_map_condition_index`` without filtering every column of the frame."""
    mask, compute_domain_kwargs, accessor_domain_kwargs = domain
    frame = execution_engine.get_domain_records(domain_kwargs=dict(**compute_domain_kwargs, **accessor_domain_kwargs))
    if frame.index.names[0] is not None:  # named indices: GX reads them its own way
        return _GX_OWN
    index = frame.index
    if _skips_nulls(cls, kwargs):
        index = _failing(index, frame[accessor_domain_kwargs["column"]].notnull())
    positions = list(_failing(index, mask))
    result_format = metric_value_kwargs["result_format"]
    if result_format["result_format"] == "COMPLETE":
        return positions
    return positions[: result_format["partial_unexpected_count"]]


def _failing_values(cls, execution_engine, metric_value_kwargs, domain, kwargs):
    """GX's ``_pandas_column_map_condition_values`` filtering the checked column only."""
    from great_expectations.constants import MAX_RESULT_RECORDS

    mask, compute_domain_kwargs, accessor_domain_kwargs = domain
    values = execution_engine.get_domain_records(domain_kwargs=compute_domain_kwargs)[accessor_domain_kwargs["column"]]
    if _skips_nulls(cls, kwargs):
        values = values[values.notnull()]
    values = values[mask == True]  # noqa: E712  (GX's own comparison: a mask of objects too)
    result_format = metric_value_kwargs["result_format"]
    if result_format["result_format"] == "COMPLETE":
        return list(values[:MAX_RESULT_RECORDS])
    return list(values[: min(result_format["partial_unexpected_count"], MAX_RESULT_RECORDS)])


def _patch_metrics() -> int:
    """Swap the two pandas metric functions in GX's registry; the number of metrics patched."""
    from great_expectations.expectations import registry
    from great_expectations.expectations.metrics.map_metric_provider import (
        column_map_condition_auxilliary_methods as column_methods,
    )
    from great_expectations.expectations.metrics.map_metric_provider import (
        map_condition_auxilliary_methods as map_methods,
    )

    index_fn = getattr(map_methods, "_pandas_map_condition_index", None)
    values_fn = getattr(column_methods, "_pandas_column_map_condition_values", None)
    swaps = {}
    if callable(index_fn):
        swaps[index_fn] = _column_fast_path(index_fn, _failing_positions)
    if callable(values_fn):
        swaps[values_fn] = _column_fast_path(values_fn, _failing_values)
    patched = 0
    for definition in getattr(registry, "_registered_metrics", {}).values():
        providers = definition.get("providers", {})
        for engine, entry in list(providers.items()):
            if isinstance(entry, tuple) and len(entry) == 2 and entry[1] in swaps:
                providers[engine] = (entry[0], swaps[entry[1]])
                patched += 1
    return patched


PLANS_KEPT = 16  # suites x days x engines a process validates with: a few
_PLANS: dict = {}  # key -> (engine, graphs, results, processed configurations); oldest first
_PLANS_LOCK = threading.Lock()


def _plan_key(validator, configurations, catch_exceptions, runtime_configuration):
    try:
        return (
            id(validator._execution_engine),
            validator.active_batch_id,
            bool(catch_exceptions),
            json.dumps(runtime_configuration, sort_keys=True),
            json.dumps([c.to_json_dict() for c in configurations], sort_keys=True),
        )
    except (TypeError, ValueError, AttributeError):  # not plain JSON: no reuse
        return None


def _planned_once(original):
    """GX's planning of a run, done once per suite, batch id, runtime configuration and engine."""

    @functools.wraps(original)
    def plan(self, expectation_configurations, processed_configurations, catch_exceptions, runtime_configuration=None):
        key = (
            None
            if _memo() is None
            else _plan_key(self, expectation_configurations, catch_exceptions, runtime_configuration)
        )
        if key is None:
            return original(
                self,
                expectation_configurations=expectation_configurations,
                processed_configurations=processed_configurations,
                catch_exceptions=catch_exceptions,
                runtime_configuration=runtime_configuration,
            )
        engine = self._execution_engine
        with _PLANS_LOCK:
            hit = _PLANS.get(key)
        if hit is None or hit[0] is not engine:  # (the engine is kept in the entry: its id is not reused)
            graphs, results, processed = original(
                self,
                expectation_configurations=expectation_configurations,
                processed_configurations=[],
                catch_exceptions=catch_exceptions,
                runtime_configuration=runtime_configuration,
            )
            hit = (engine, graphs, results, processed)
            with _PLANS_LOCK:
                _PLANS[key] = hit
                while len(_PLANS) > PLANS_KEPT:
                    del _PLANS[next(iter(_PLANS))]
        _, graphs, results, processed = hit
        processed_configurations.extend(processed)  # GX's caller passes an empty list to fill
        return list(graphs), list(results), processed_configurations

    return plan


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
        _patch_metrics()
        from great_expectations.validator.validator import Validator

        planning = Validator.__dict__.get("_generate_metric_dependency_subgraphs_for_each_expectation_configuration")
        if callable(planning):
            Validator._generate_metric_dependency_subgraphs_for_each_expectation_configuration = _planned_once(planning)  # type: ignore[method-assign]
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
