"""cdrflow: collect, fingerprint, validate, load and bill carrier CDR files."""

__version__ = "0.1.0"
