"""``cdrflow`` commands. Files processed: claim and load, load one file, parse without loading."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cdrflow.cli import common
from cdrflow.config import settings
from cdrflow.config.errors import CdrflowError
from cdrflow.config.vocabulary import FILE_SOURCES, FILE_TYPES, one_of


def outcome_line(r) -> str:
    """One file's outcome, as ``cdrflow process`` and ``cdrflow load`` print it."""
    if r.status in ("loaded", "failed") and r.lines:
        return (
            f"file {r.file_id}: {r.status}{' (accepted over its threshold)' if r.accepted else ''}: {r.lines} lines, "
            f"{r.loaded} calls loaded, {r.rejected} rejected, {r.duplicates} duplicates"
            + (f" ({r.flagged} of the calls loaded flagged)" if r.flagged else "")
        )
    first = r.message.splitlines()[0] if r.message else ""
    return f"file {r.file_id}: {r.status}" + (f": {first}" if first else "")


def report(results, errors: dict[int, str]) -> int:
    """Print every file's outcome (stdout) and one line per file that did not end loaded
    (stderr); return the exit code: 0 when every file ended loaded (or was skipped: another run
    has it), 1 otherwise."""
    bad = 0
    for r in sorted(results, key=lambda r: r.file_id):
        print(outcome_line(r))
        if r.status in ("failed", "rejected"):
            bad += 1
            print(f"error: {outcome_line(r)}", file=sys.stderr)
    for file_id, message in errors.items():
        bad += 1
        print(f"file {file_id}: error: {message}")
        print(f"error: file {file_id}: {message}", file=sys.stderr)
    return 1 if bad else 0


def cmd_process(args: argparse.Namespace) -> int:
    import uuid

    from cdrflow.intake import claims
    from cdrflow.loading.batches import process_batch

    engine, store = common.engine(), common.store()
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    if args.accept and not args.file_id:
        raise CdrflowError("--accept needs the --file-id of the files to accept")
    if args.file_id:
        claims.requeue(engine, args.file_id, f"re-run requested from the command line ({run_id})")
    claimed = claims.claim(engine, run_id, carrier=args.carrier, file_ids=args.file_id or None)
    results, errors = [], {}
    accept = set(args.file_id or []) if args.accept else set()
    for batch in claims.batches(claimed):
        outcome = process_batch(
            engine,
            store,
            batch,
            run_id=run_id,
            progress=lambda m: print(m, file=sys.stderr),
            accept=accept,
            accepted_by=f"`cdrflow process --accept` ({run_id})",
        )
        results += outcome.results
        errors.update(outcome.errors)
    code = report(results, errors)
    counts = {s: sum(r.status == s for r in results) for s in ("loaded", "failed", "rejected", "skipped")}
    counts["error"] = len(errors)
    counts = {s: n for s, n in counts.items() if n}
    print(
        f"{len(claimed)} file(s) processed"
        + (": " + ", ".join(f"{n} {s}" for s, n in counts.items()) if counts else "")
    )
    return code


def _carrier_options(code: str, file_type: str | None):
    """Parse options, validation policy and file type of carrier ``code`` as the carrier file
    declares it (time zone, encoding, mapping, dial plan, checks): what loading would use. Read
    from the file, not the warehouse, so that a dry run needs no database."""
    from cdrflow.config import carrier_file
    from cdrflow.loading.chunks import options_for
    from cdrflow.validation.policy import policy_for

    known = {c.code: c.carrier for c in carrier_file.load()}
    if code not in known:
        raise CdrflowError(
            f"no carrier {code!r} in {carrier_file.config_path()}; known: {', '.join(sorted(known)) or 'none'}"
        )
    carrier = known[code]
    file_type = file_type or carrier.file_type
    if not file_type:
        raise CdrflowError(f"carrier {code} names no file_type; give --type")
    options = options_for(carrier, file_type)
    policy = policy_for(file_type, options.mapping, carrier.config.get("checks"), where=f"carrier {code}")
    return options, policy, file_type


def cmd_parse(args: argparse.Namespace) -> int:
    import json

    from cdrflow.formats.base import ParseOptions
    from cdrflow.loading.chunks import validated_chunks
    from cdrflow.loading.counts import Counts

    policy = None
    if args.carrier:
        options, policy, args.type = _carrier_options(args.carrier, args.type)
    else:
        if not args.type:
            raise CdrflowError("name the file's --type, or a --carrier whose settings to parse it with")
        mapping = None
        if args.mapping:
            from cdrflow.formats.mapped import load_mapping

            mapping = load_mapping(Path(args.mapping))
        options = ParseOptions(timezone=args.timezone, encoding=args.encoding, mapping=mapping)
    out = sys.stdout
    calls = rejected = 0
    summaries = []
    counts = Counts()
    try:
        stream = open(args.file, "rb")
    except OSError as exc:
        raise CdrflowError(f"cannot read {args.file}: {exc.strerror}") from None
    with stream:
        for i, chunk in enumerate(validated_chunks(stream, args.type, options, policy)):
            frame = chunk.calls.drop(columns=["raw_text"])
            calls += len(frame)
            rejected += len(chunk.rejected)
            summaries.append(chunk.summary)
            counts.read += chunk.lines
            counts.flagged += int(frame["quality"].notna().sum())
            counts.add_parse_flags(frame["quality"].dropna())
            counts.repeats += chunk.repeats
            counts.repeat_lines += [(n, None, m) for n, m in chunk.repeat_lines]
            counts.add_rejected(p.reasons for p in chunk.rejected)
            if args.output == "jsonl":
                for record in json.loads(frame.to_json(orient="records", date_format="iso")):
                    record["extras"] = json.loads(record["extras"] or "{}")
                    out.write(json.dumps(record) + "\n")
            else:
                frame.to_csv(out, index=False, header=(i == 0))
            for p in chunk.rejected:
                print(f"rejected line {p.line_number}: {', '.join(p.reasons)}: {p.raw_text!r}", file=sys.stderr)
    from cdrflow.validation import suites

    if any(summaries):
        merged = suites.merge_summaries([s for s in summaries if s])
        print(suites.format_summary(merged), file=sys.stderr)
        counts.add_summary(merged)
    counts.loaded, counts.rejected = calls, rejected
    for line in counts.lines():  # what became of every record (a dry run: "loaded" would load)
        print(line, file=sys.stderr)
    print(f"{calls} calls, {rejected} rejected rows", file=sys.stderr)
    return 0


def _warm_up(engine, carrier: str, file_type: str | None) -> None:
    """Build the validation suite (importing Great Expectations, seconds) in a thread while the
    file is registered: hashing and storing it wait on the disk, not on Python."""
    from cdrflow.config.errors import CdrflowError
    from cdrflow.validation import suites
    from cdrflow.warehouse import carriers

    if file_type is None:
        try:
            with engine.connect() as conn:
                file_type = carriers.get(conn, carrier).file_type
        except CdrflowError:  # an unknown carrier: register_file says so
            return
    if file_type:
        suites.warm_up(file_type)


def cmd_load(args: argparse.Namespace) -> int:
    from cdrflow.intake.registry import get_file, register_file
    from cdrflow.loading.batches import process_tree

    engine, store = common.engine(), common.store()
    from cdrflow.warehouse import migrations

    migrations.upgrade(engine, settings.SQL_DIR)
    _warm_up(engine, args.carrier, args.type)
    reg = register_file(
        engine,
        store,
        args.file,
        file_name=Path(args.file).name,
        carrier=args.carrier,
        file_source=args.source,
        file_type=args.type,
        source_uri=Path(args.file).resolve().as_uri(),
    )
    file_id = reg.file_id
    if reg.duplicate_of is not None:
        with engine.connect() as conn:
            original = get_file(conn, reg.duplicate_of)
        said = f"file {reg.file_id}: duplicate of file {reg.duplicate_of} (same SHA1 {reg.sha1})"
        if args.accept and original["status"] == "failed":  # the operator accepts the failed original
            from cdrflow.intake import claims

            print(f"{said}; accepting file {reg.duplicate_of}, which failed: loading it with its quarantine")
            claims.requeue(engine, [reg.duplicate_of], "accepted from the command line (`cdrflow load --accept`)")
        elif original["status"] != "received":  # loaded (nothing to do), or failed/rejected: say so
            print(f"{said}; not loaded again: file {reg.duplicate_of} is {original['status']}")
            if original["status"] == "loaded":
                return 0
            print(
                f"error: file {reg.duplicate_of} is {original['status']}; see `cdrflow file {reg.duplicate_of}`, "
                f"re-run it with `cdrflow process --file-id {reg.duplicate_of}`"
                + (" (or load it over its threshold with --accept)" if original["status"] == "failed" else ""),
                file=sys.stderr,
            )
            return 1
        else:
            print(f"{said}, which was never loaded: loading file {reg.duplicate_of} (the same bytes)")
        file_id = reg.duplicate_of
    results = process_tree(
        engine,
        store,
        file_id,
        progress=lambda m: print(m, file=sys.stderr),
        accepted_by="`cdrflow load --accept`" if args.accept else None,
    )
    errors = {r.file_id: r.message for r in results if r.status == "error"}
    code = report([r for r in results if r.status != "error"], errors)
    for r in results:
        if r.status in ("failed", "rejected") and "\n" in r.message:
            print(r.message, file=sys.stderr)  # the whole reason: counts, samples, validation summary
    return code


def add_parsers(sub) -> None:
    p = sub.add_parser("process", help="claim received files and load them (what the processing DAG runs)")
    p.add_argument("--carrier", help="only this carrier's files")
    p.add_argument("--file-id", type=int, action="append", help="(re)process this file; repeatable")
    p.add_argument(
        "--accept",
        action="store_true",
        help="load the --file-id files even over their rejection threshold, keeping their quarantine",
    )
    p.set_defaults(func=cmd_process)
    p = sub.add_parser("parse", help="dry run: print canonical rows and the validation summary")
    p.add_argument("file")
    p.add_argument("--type", help=one_of(FILE_TYPES) + " (default: the --carrier's)")
    p.add_argument(
        "--carrier",
        help="parse with this carrier's settings from the carrier file (time zone, encoding, mapping, "
        "dial plan, checks): what loading would do; the options below are then ignored",
    )
    p.add_argument("--mapping", help="mapping YAML for --type mapped")
    p.add_argument("--timezone", default="UTC", help="time zone of local timestamps in the file")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--output", choices=["csv", "jsonl"], default="csv")
    p.set_defaults(func=cmd_parse)
    p = sub.add_parser("load", help="register one file and load it into the warehouse")
    p.add_argument("file")
    p.add_argument("--carrier", required=True)
    p.add_argument("--type", help="file type (default: the carrier's)")
    p.add_argument("--source", default="upload", choices=FILE_SOURCES)
    p.add_argument(
        "--accept",
        action="store_true",
        help="load it even over its rejection threshold, keeping its quarantine (also a failed earlier copy)",
    )
    p.set_defaults(func=cmd_load)
