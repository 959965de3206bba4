"""``cdrflow`` commands. Files in: register and upload, run collectors, read the registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cdrflow.cli import common
from cdrflow.config.errors import CdrflowError
from cdrflow.config.vocabulary import FILE_SOURCES, SOURCE_KINDS


def cmd_register(args: argparse.Namespace) -> int:
    from cdrflow.config.text import render
    from cdrflow.intake.registry import register_file

    engine, store = common.engine(), common.store()
    rows, failures = [], 0
    for path in args.files:
        try:
            r = register_file(
                engine,
                store,
                path,
                file_name=Path(path).name,
                carrier=args.carrier,
                file_source=args.source,
                file_type=args.type,
                billrun=args.billrun,
                notes=args.notes,
                source_uri=Path(path).resolve().as_uri(),
            )
        except CdrflowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        rows.append(
            [r.file_id, r.file_name, r.sha1, r.size, f"duplicate of {r.duplicate_of}" if r.is_duplicate else r.status]
        )
    if rows:
        print(render(["id", "file", "sha1", "bytes", "status"], rows))
    return 1 if failures else 0


def cmd_collect(args: argparse.Namespace) -> int:
    from cdrflow.config.text import render
    from cdrflow.sources import run

    engine, store = common.engine(), common.store()
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
        rows += [
            [
                c.carrier,
                c.name,
                c.size,
                (c.sha1 or "")[:12],
                c.file_id or "",
                {"duplicate": f"duplicate of {c.duplicate_of}", "skipped": f"skipped: {c.reason}"}.get(
                    c.outcome, c.outcome
                ),
            ]
            for c in found
        ]
    print(render(["carrier", "file", "bytes", "sha1", "id", "outcome"], rows) if rows else "nothing found")
    return 1 if failed else 0


def _status(f: dict, claim) -> str:
    """A file's status as the registry commands show it: a duplicate names its original, a
    claimed file its run (``received (claimed by RUN, renewed 20s ago)``)."""
    if f["duplicate_of"]:
        return f"duplicate of {f['duplicate_of']}"
    return f"{f['status']} ({claim.describe()})" if claim else f["status"]


def cmd_files(args: argparse.Namespace) -> int:
    from cdrflow.config.text import render
    from cdrflow.intake import claims
    from cdrflow.intake.registry import list_files

    with common.engine().connect() as conn:
        files = list_files(conn, limit=args.limit, id_after=args.after)
        held = claims.held(conn, [f["id"] for f in files])
    print(
        render(
            ["id", "file", "source", "carrier", "type", "sha1", "bytes", "status"],
            [
                [
                    f["id"],
                    f["file_name"],
                    f["file_source"],
                    f["carrier"],
                    f["file_type"],
                    f["original_hash"],
                    f["file_size"],
                    _status(f, held.get(f["id"])),
                ]
                for f in files
            ],
        )
    )
    return 0


def cmd_file(args: argparse.Namespace) -> int:
    from cdrflow.intake import claims
    from cdrflow.intake.registry import get_file

    with common.engine().connect() as conn:
        record = get_file(conn, args.id)
        claim = claims.held(conn, [args.id]).get(args.id)
    log_text = record.pop("processing_log")
    record["claim"] = claim.describe() if claim else "none"
    width = max(len(k) for k in record)
    for key, value in record.items():
        print(f"{key:{width}}  {value}")
    print("\nprocessing log:\n" + log_text)
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from cdrflow.config.text import render
    from cdrflow.intake import claims

    engine = common.engine()
    if args.action == "release":
        if not args.ids:
            raise CdrflowError("claims release: give the file ids whose claims to release")
        released = claims.release(engine, args.ids)
        for file_id in args.ids:
            print(f"file {file_id}: " + ("claim released" if file_id in released else "was not claimed"))
        return 0
    with engine.connect() as conn:
        held = claims.held(conn, args.ids or None)
    if not held:
        print("no file is claimed")
        return 0
    rows = [
        [c.file_id, c.run_id, c.claimed_at.isoformat(timespec="seconds"), "live" if c.live else "expired"]
        for c in held.values()
    ]
    print(render(["file", "run", "renewed at", "lease"], rows))
    return 0


def cmd_housekeeping(args: argparse.Namespace) -> int:
    from cdrflow.intake import housekeeping

    repairs = housekeeping.run(common.engine(), common.store())
    for line in repairs.lines():
        print(line)
    return 1 if repairs.problems else 0


def add_parsers(sub) -> None:
    p = sub.add_parser("register", help="store files and record them in the registry")
    p.add_argument("files", nargs="+")
    p.add_argument("--carrier", required=True)
    p.add_argument("--source", default="upload", choices=FILE_SOURCES, help="how the file came (default upload)")
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
    p = sub.add_parser("collect", help="run the configured collectors of one kind once (what its DAG runs)")
    p.add_argument("kind", choices=SOURCE_KINDS)
    p.add_argument("--carrier", help="only this carrier's sources")
    p.set_defaults(func=cmd_collect)
    p = sub.add_parser("files", help="list registered files")
    p.add_argument("--after", type=int, default=0, help="only ids above this")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_files)
    p = sub.add_parser("file", help="show one registered file and its processing log")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_file)
    p = sub.add_parser("claims", help="which processing run holds which file; release a claim by hand")
    p.add_argument("action", nargs="?", choices=["list", "release"], default="list")
    p.add_argument("ids", nargs="*", type=int, metavar="ID", help="file ids (release: required)")
    p.set_defaults(func=cmd_claims)
    p = sub.add_parser(
        "housekeeping", help="repair what a dead worker left: expired claims, stranded files, partial uploads"
    )
    p.set_defaults(func=cmd_housekeeping)
