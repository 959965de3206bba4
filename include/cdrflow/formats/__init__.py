"""CDR formats: one module per type, one interface (:mod:`cdrflow.formats.base`).

Type names (command line, carrier configuration, ``file_types`` table) map to parsers in the
registry :data:`cdrflow.config.vocabulary.FILE_TYPES`.
"""

from __future__ import annotations

from importlib import import_module

from cdrflow.config.vocabulary import FILE_TYPES
from cdrflow.formats.base import FormatError, Parser


def get_parser(file_type: str) -> Parser:
    """The parser for ``file_type``; :class:`FormatError` for an unknown type."""
    try:
        module_name, class_name = FILE_TYPES[file_type].split(":")
    except KeyError:
        raise FormatError(f"unknown file type {file_type!r}; known: {', '.join(sorted(FILE_TYPES))}") from None
    return getattr(import_module(module_name), class_name)()
