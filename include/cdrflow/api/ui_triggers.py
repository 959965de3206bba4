"""The re-runs an operator starts from the cdrflow page: which DAG, which params, which values.

Airflow 3.3's own "Trigger DAG" form cannot be opened prefilled from a link: it is a dialog of
the DAG page whose values come from the DAG's param defaults or, through "Trigger again with
config", from an earlier run's conf (checked in the 3.3.2 UI bundle: no route or query argument
fills it). So the page links to a trigger form of its own (``/operator/trigger/<dag_id>?...``)
that shows the DAG's fields filled in, lets the operator change them, and submits them to
Airflow's REST API (``POST /api/v2/dags/<dag_id>/dagRuns``) from the browser with the
operator's own Airflow session: Airflow checks the user's right to trigger that DAG, validates
the values against the DAG's params, and records who triggered the run.

The param names here are the DAGs' (``dags/cdrflow_process.py``,
``cdrflow.orchestration.billing_dag``, ``cdrflow.orchestration.rerate_dag``); ``tests/test_ui_pages.py`` checks them against the DAG
files, so a renamed param cannot leave the page sending what the DAG ignores.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

PROCESS = "cdrflow_process"
RERATE = "cdrflow_rerate"


@dataclass(frozen=True)
class Field:
    name: str  # the DAG's param name (a key of the run's conf)
    label: str  # as the DAG's own form titles it
    help: str


@dataclass(frozen=True)
class DagForm:
    dag_id: str
    title: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


_PERIOD = {"daily": "a day, 2026-11-01", "monthly": "a month, 2026-11"}

FORMS: dict[str, DagForm] = {
    PROCESS: DagForm(
        PROCESS,
        "Process CDR files",
        (
            Field("file_ids", "Reprocess file ids", "loaded, failed or rejected files to load again: 3, 4, 10-12"),
            Field(
                "accept_file_ids",
                "Accept file ids",
                "failed files to load anyway, over their rejection threshold, their quarantine kept",
            ),
            Field("carrier", "Only this carrier", "a carrier code; empty: every carrier"),
            Field(
                "day",
                "Re-run this day",
                "2026-11-01: that day's files of the carrier above (in its time zone); empty: no day",
            ),
        ),
    ),
    **{
        f"cdrflow_billing_{kind}": DagForm(
            f"cdrflow_billing_{kind}",
            f"{kind.capitalize()} billing",
            (
                Field("period", "Period", f"{_PERIOD[kind]}; a run of a billed period charges what is new"),
                Field("account", "Only this account", f"an account billed {kind}; empty: every {kind} account"),
            ),
        )
        for kind in ("daily", "monthly")
    },
    RERATE: DagForm(
        RERATE,
        "Re-rate a billed period",
        (
            Field("kind", "Kind", "daily or monthly"),
            Field("period", "Period", "a day, 2026-11-01, for daily; a month, 2026-11, for monthly"),
            Field("account", "Only this account", "an account id; empty: every account (or the carrier below)"),
            Field("carrier", "Only this carrier", "a carrier code; empty: every carrier"),
            Field("deck_version", "Deck version", "a deck version id (cdrflow rates list); empty: the one in force"),
        ),
    ),
}


def ids_text(ids: Iterable[int]) -> str:
    """``[3, 4, 5, 7]`` -> ``3-5, 7``: what the forms' id fields take."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(set(ids)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(_span(run))
        run = [i]
    if run:
        parts.append(_span(run))
    return ", ".join(parts)


def _span(run: list[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"


@dataclass(frozen=True)
class Rerun:
    """A link to the trigger form: the DAG, its values, and what it does in words."""

    dag_id: str
    values: dict[str, str]
    what: str

    def url(self, base: str, back: str | None = None) -> str:
        """The form's URL under ``base`` (``<mount>/operator``); ``back``: the page to return to."""
        query = {**self.values, "what": self.what}
        if back:
            query["back"] = back
        return f"{base}/trigger/{self.dag_id}?{urlencode(query)}"


def reprocess(file_ids: Iterable[int]) -> Rerun:
    ids = ids_text(file_ids)
    return Rerun(PROCESS, {"file_ids": ids}, f"Reprocess file(s) {ids}")


def accept(file_ids: Iterable[int]) -> Rerun:
    ids = ids_text(file_ids)
    return Rerun(PROCESS, {"accept_file_ids": ids}, f"Load file(s) {ids} anyway, their quarantine kept")


def carrier_day(carrier: str, day: date) -> Rerun:
    return Rerun(
        PROCESS, {"carrier": carrier, "day": day.isoformat()}, f"Re-run {carrier}'s files of {day.isoformat()}"
    )


def billing_period(kind: str, period: str, account: str | None = None) -> Rerun:
    values = {"period": period} | ({"account": account} if account else {})
    who = f" for {account}" if account else ""
    return Rerun(f"cdrflow_billing_{kind}", values, f"Bill the {kind} period {period}{who} again")


def rerate_period(kind: str, period: str, account: str | None = None) -> Rerun:
    values = {"kind": kind, "period": period} | ({"account": account} if account else {})
    who = f" for {account}" if account else ""
    return Rerun(RERATE, values, f"Re-rate the {kind} period {period}{who} (a new version; the old one kept)")
