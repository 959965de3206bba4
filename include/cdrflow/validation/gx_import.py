"""Import Great Expectations without the two libraries only cdrflow's unused expectations need.

``import great_expectations`` imports every expectation it ships, and two of them (the KL
divergence and the Kolmogorov-Smirnov checks of distributions, which no cdrflow suite uses)
import ``scipy.stats`` and ``altair`` at the top of their modules: about 0.9 s of GX's 2.2 s import
here (``python -X importtime``), paid by every process that validates a file and by every
``cdrflow load``. While GX is imported, those two names are deferred modules: placeholders that
import the real module the first time one of their attributes is used, so the two expectations
still work if a suite ever names them. Afterwards the placeholders leave ``sys.modules``: any
later ``import scipy.stats`` or ``import altair`` is the real one.

Why not the standard library's ``importlib.util.LazyLoader``: on Python 3.11 an ``import`` of a
module that is already in ``sys.modules`` reads its ``__spec__``, and reading any attribute of a
lazily loaded module loads it, so GX's own ``import altair`` loaded it at once (tried: no gain).
A placeholder's ``__spec__`` is an ordinary attribute, so an import statement does not wake it.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager

DEFERRED = ("scipy.stats", "altair")

_LOAD_LOCK = threading.Lock()


class DeferredModule(types.ModuleType):
    """Stands for the module of the same name until an attribute of it is used."""

    def __getattr__(self, attribute: str):  # only for attributes the placeholder lacks
        with _LOAD_LOCK:
            real = self.__dict__.get("_real")
            if real is None:
                if sys.modules.get(self.__name__) is self:
                    del sys.modules[self.__name__]
                real = importlib.import_module(self.__name__)
                self.__dict__["_real"] = real
        return getattr(real, attribute)


@contextmanager
def deferring(names: tuple[str, ...] = DEFERRED) -> Iterator[list[str]]:
    """Within the block, importing any of ``names`` that is not imported yet gives a
    :class:`DeferredModule`. Yields the names it deferred."""
    deferred = [name for name in names if name not in sys.modules]
    placeholders = {name: DeferredModule(name) for name in deferred}
    sys.modules.update(placeholders)
    try:
        yield deferred
    finally:
        for name, placeholder in placeholders.items():
            if sys.modules.get(name) is placeholder:
                del sys.modules[name]


def import_great_expectations() -> types.ModuleType:
    """``import great_expectations`` (and its expectations), with :data:`DEFERRED` deferred."""
    imported = sys.modules.get("great_expectations")
    if imported is not None and "great_expectations.expectations" in sys.modules:
        return imported
    with deferring():
        import great_expectations
        import great_expectations.expectations  # where the two imports are
    return great_expectations
