"""Import the rate decks dropped into the deck drop location, each exactly once (issue 11).

What a drop is comes from its path (:mod:`cdrflow.billing.deck_drop_names`); the storage is
:mod:`cdrflow.billing.deck_drop_store`. :func:`run` takes the drop location's URL and an engine
and handles every drop waiting there (or the one a manual run names):

- **imported**: read by the format's importer and stored as the next version of its deck(s), in
  one transaction with its ``deck_drops`` row; what changed (added, removed, price up/down) is
  logged as ``cdrflow rates import`` prints it; then moved to ``processed/``.
- **duplicate**: the same SHA1 for the same deck and date was imported before (a re-drop, or a
  run that died before moving it): nothing is stored, the drop moves to ``processed/``.
- **refused**: the name, the shape or the content is wrong (a bad deck is refused whole, its
  problems with file and line numbers, as the CLI does); logged at ERROR, moved to
  ``rejected/`` with ``<name>.error.txt`` beside it, recorded in ``deck_drops``.
- **waiting**: a folder without its ``.ready`` file yet (left alone).
- **failed**: anything else (the warehouse down, the store refusing a move): logged with the
  traceback, left where it is, so the next run tries again.

One drop's outcome never stops the others. The check for "imported before" and the import run
under one advisory lock, so two runs cannot both import the same drop.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import Connection, Engine, text

from cdrflow.billing import decks
from cdrflow.billing.deck_drop_names import (
    EXAMPLE,
    PROCESSED,
    REJECTED,
    DropRefused,
    DropSpec,
    is_format_folder,
    manual_path,
    parse,
)
from cdrflow.billing.deck_drop_store import DropLocation
from cdrflow.billing.deck_files import DeckRefused, Imported
from cdrflow.billing.model import Deck
from cdrflow.config.errors import CdrflowError, one_line

log = logging.getLogger(__name__)

LOCK_KEY = 0x6364_7264_6563_6B73  # "cdrdecks": one advisory lock for every deck drop import
MAX_UNZIPPED = 1 << 30  # a zip that would unpack to more than 1 GiB is no rate deck

_PREVIOUS = text(
    "SELECT id FROM deck_drops WHERE outcome = 'imported' AND sha1 = :sha1 AND target = :target "
    "AND effective_from = :ef ORDER BY id LIMIT 1"
)
_RECORD = text(
    "INSERT INTO deck_drops (sha1, name, drop_url, format, target, effective_from, outcome, version_ids, "
    "duplicate_of, problems) VALUES (:sha1, :name, :url, :format, :target, :ef, :outcome, "
    "CAST(:versions AS bigint[]), :duplicate_of, CAST(:problems AS text[])) RETURNING id"
)
_KEPT = text("UPDATE deck_drops SET kept_as = :kept WHERE id = :id")


@dataclass
class DropResult:
    """What happened to one drop (the DAG's XCom and its check read these)."""

    name: str
    outcome: str  # imported | duplicate | refused | waiting | failed
    sha1: str | None = None
    drop_id: int | None = None
    versions: list[dict] = field(default_factory=list)  # deck, version, rates, effective_from, changes
    problems: list[str] = field(default_factory=list)
    kept_as: str | None = None  # processed/... or rejected/...; None: still in the inbox
    message: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def run(engine: Engine, url: str, only: str | None = None) -> list[DropResult]:
    """Handle every drop waiting at ``url`` (only the drop at path ``only`` for a manual run:
    a folder is then taken without waiting for its ``.ready``). One result per drop, by name."""
    location = DropLocation(url)
    if only:
        name = manual_path(only)
        is_dir = location.kind_of(name)
        if is_dir and not is_format_folder(name.rsplit("/", 1)[-1]):  # never move a whole deck folder
            raise CdrflowError(f"{name} is a folder of drops, not a drop: name one drop in it, e.g. {name}/{EXAMPLE}")
        items = [(name, is_dir)]
    else:
        items = location.pending()
    results = [_handle(engine, location, name, is_dir, manual=bool(only)) for name, is_dir in items]
    counts = {
        o: sum(r.outcome == o for r in results) for o in ("imported", "duplicate", "refused", "waiting", "failed")
    }
    log.info("deck drop %s: %s", location.where, ", ".join(f"{n} {o}" for o, n in counts.items()))
    return results


def _handle(engine: Engine, location: DropLocation, name: str, is_dir: bool, manual: bool) -> DropResult:
    spec: DropSpec | None = None
    refusal: DropRefused | None = None
    try:
        spec = parse(name, is_dir)
    except DropRefused as exc:
        refusal = exc
    try:
        if spec is not None and spec.shape == "folder" and not manual and not location.ready(name):
            log.info("%s: waiting for its .ready file (a folder drop is imported once it is complete)", name)
            return DropResult(name, "waiting", message="no .ready file yet")
        with tempfile.TemporaryDirectory(prefix="cdrflow-deck-drop-") as tmp:
            work = Path(tmp)
            copy = work / "drop" / name
            sha1 = location.fetch(name, is_dir, work / "zip" / "drop.zip" if spec and spec.shape == "zip" else copy)
            try:
                if refusal is not None:
                    raise refusal
                assert spec is not None
                if spec.shape == "zip":
                    copy = _unzip(work / "zip" / "drop.zip", copy, name)
                result = _import(engine, location, spec, copy, sha1)
            except (DropRefused, DeckRefused, decks.DeckMismatch) as exc:
                return _refuse(engine, location, name, is_dir, sha1, spec, _problems(exc, work / "drop"))
        return _keep(engine, location, result, is_dir, PROCESSED)
    except Exception as exc:
        log.error("%s: not handled, left where it is for the next run: %s", name, one_line(exc), exc_info=True)
        return DropResult(name, "failed", message=one_line(exc))


# -- import ---------------------------------------------------------------------------------------


def _import(engine: Engine, location: DropLocation, spec: DropSpec, copy: Path, sha1: str) -> DropResult:
    """Store the drop's versions and its row in one transaction, unless it was imported before."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
        first = conn.execute(_PREVIOUS, {"sha1": sha1, "target": spec.target, "ef": spec.effective_from}).scalar()
        if first is not None:
            drop_id = _record(conn, location, spec.name, sha1, spec, "duplicate", duplicate_of=first)
            log.info(
                "%s: the same bytes were imported for %s from %s by drop %s: nothing changed",
                spec.name,
                spec.deck or "every rating plan",
                spec.effective_from,
                first,
            )
            return DropResult(spec.name, "duplicate", sha1, drop_id, message=f"duplicate of drop {first}")
        imported = _read(conn, spec, copy)
        stored = _store(conn, imported, f"{spec.name} ({spec.format}, drop {sha1[:12]})", spec)
        drop_id = _record(conn, location, spec.name, sha1, spec, "imported", versions=[a.id for _, a, _, _ in stored])
    versions = []
    for version, after, before, previous in stored:
        changes = decks.diff(previous, version)
        against = f"against version {before.version} (from {before.effective_from})" if before else "a new deck"
        log.info(
            "%s: deck %s (%s, %s): version %s, %d rates, in force from %s; %s:",
            spec.name,
            version.deck.name,
            version.deck.kind,
            version.deck.currency,
            after.version,
            len(version.rates),
            version.effective_from,
            against,
        )
        for line in changes.render().splitlines():
            log.info("  %s", line)
        versions.append(
            {
                "deck": version.deck.name,
                "version": after.version,
                "rates": len(version.rates),
                "effective_from": version.effective_from.isoformat(),
                "changes": changes.counts(),
            }
        )
    for note in imported.notes:
        log.info("%s: note: %s", spec.name, note)
    return DropResult(spec.name, "imported", sha1, drop_id, versions)


def _read(conn: Connection, spec: DropSpec, copy: Path) -> Imported:
    """The drop's versions, as ``cdrflow rates import`` reads them. An importer's unexpected
    exception is a refusal of this deck too (the bytes are already local: it is about them)."""
    from cdrflow.billing.deck_files import cdrflow_csv, cdrtool, cgrates

    deck = None
    if spec.format != "cgrates":
        assert spec.deck is not None
        existing = decks.get_deck(conn, spec.deck) or Deck(name=spec.deck)
        deck = replace(existing, currency=spec.currency or existing.currency, kind=spec.kind or existing.kind)
    try:
        if spec.format == "cgrates":
            return cgrates.read(
                copy, spec.effective_from, currency=spec.currency or "USD", kind=spec.kind or "sell", only=spec.deck
            )
        assert deck is not None
        if spec.format == "cdrtool":
            return cdrtool.read(copy, deck, spec.effective_from)
        return cdrflow_csv.read(copy, deck, spec.effective_from)
    except DeckRefused:
        raise
    except Exception as exc:
        raise DropRefused([f"{spec.name}: cannot read it as a {spec.format} deck: {one_line(exc)}"]) from exc


def _store(conn: Connection, imported: Imported, source: str, spec: DropSpec) -> list[tuple]:
    """Each version as its deck's next one: (version, stored info, previous info, previous version)."""
    stored = []
    for version in imported.versions:
        current = decks.get_deck(conn, version.deck.name)
        if current is not None and spec.format == "cgrates":  # an existing deck's settings stand
            deck = replace(
                version.deck,
                currency=spec.currency or current.currency,
                kind=spec.kind or current.kind,
                timezone=current.timezone,  # the zone its periods are read in
            )
            version = replace(version, deck=deck)
        before = decks.latest(conn, version.deck.name)
        previous = decks.load_version_id(conn, before.id) if before else None
        after = decks.version_info(conn, decks.store(conn, version, source))
        stored.append((version, after, before, previous))
    return stored


def _record(
    conn: Connection,
    location: DropLocation,
    name: str,
    sha1: str,
    spec: DropSpec | None,
    outcome: str,
    *,
    versions: list[int] | None = None,
    duplicate_of: int | None = None,
    problems: list[str] | None = None,
) -> int:
    return int(
        conn.execute(
            _RECORD,
            {
                "sha1": sha1,
                "name": name,
                "url": location.where,
                "format": spec.format if spec else None,
                "target": spec.target if spec else "",
                "ef": spec.effective_from if spec else None,
                "outcome": outcome,
                "versions": versions or [],
                "duplicate_of": duplicate_of,
                "problems": problems or [],
            },
        ).scalar_one()
    )


# -- refuse and keep --------------------------------------------------------------------------------


def _problems(exc: Exception, root: Path) -> list[str]:
    """The problem lines, with the temporary copy's folder taken out of them (an importer names
    the folder it read: the operator should see the drop's own path)."""
    if isinstance(exc, DeckRefused):
        lines = exc.lines
    elif isinstance(exc, DropRefused):
        lines = exc.problems
    else:
        lines = [str(exc)]
    return [line.replace(f"{root}/", "").replace(str(root), "") for line in lines]


def _refuse(
    engine: Engine,
    location: DropLocation,
    name: str,
    is_dir: bool,
    sha1: str,
    spec: DropSpec | None,
    problems: list[str],
) -> DropResult:
    with engine.begin() as conn:
        drop_id = _record(conn, location, name, sha1, spec, "refused", problems=problems)
    log.error("%s: refused, nothing imported (%d problem(s)):", name, len(problems))
    for line in problems:
        log.error("  %s", line)
    result = DropResult(name, "refused", sha1, drop_id, problems=problems, message=problems[0] if problems else "")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    note = f"{name}: refused, nothing imported (drop {drop_id}, sha1 {sha1}, {stamp} UTC)\n" + "".join(
        f"{line}\n" for line in problems
    )
    return _keep(engine, location, result, is_dir, REJECTED, note)


def _keep(
    engine: Engine, location: DropLocation, result: DropResult, is_dir: bool, where: str, note: str | None = None
) -> DropResult:
    """Move the handled drop under ``where`` and record it. A move that fails leaves the drop in
    the inbox (the next run finds it a duplicate, or refuses it again, and moves it then)."""
    assert result.sha1 is not None and result.drop_id is not None
    try:
        result.kept_as = location.keep(result.name, is_dir, where, result.sha1, note)
    except Exception as exc:
        log.error("%s: %s but not moved to %s/: %s", result.name, result.outcome, where, one_line(exc), exc_info=True)
        result.message = f"{result.outcome}, but not moved to {where}/: {one_line(exc)}"
        return result
    with engine.begin() as conn:
        conn.execute(_KEPT, {"kept": result.kept_as, "id": result.drop_id})
    log.info("%s: %s, kept as %s/%s", result.name, result.outcome, location.where, result.kept_as)
    return result


# -- zips -------------------------------------------------------------------------------------------


def _unzip(archive: Path, dest: Path, name: str) -> Path:
    """The folder a zip drop holds, unpacked under ``dest``: its one top folder when it is a zip of
    the folder itself. Members with absolute paths or ``..`` are refused, hidden ones skipped."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if sum(m.file_size for m in members) > MAX_UNZIPPED:
                raise DropRefused([f"{name}: unpacks to more than {MAX_UNZIPPED >> 30} GiB: not a rate deck"])
            for member in members:
                parts = PurePosixPath(member.filename.replace("\\", "/")).parts
                if member.filename.startswith(("/", "\\")) or ".." in parts:
                    raise DropRefused([f"{name}: member {member.filename!r} points outside the zip"])
                if any(p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise DropRefused([f"{name}: not a readable zip file: {one_line(exc)}"]) from exc
    entries = sorted(dest.iterdir()) if dest.is_dir() else []
    if not entries:
        raise DropRefused([f"{name}: the zip holds no files"])
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest
