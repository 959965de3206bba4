-- Issue 11: rate decks dropped into a folder or bucket (the cdrflow_import_decks DAG).
--
-- One row per drop the DAG handled: imported (the versions it made), a duplicate of an earlier
-- import (the same bytes for the same deck and date: nothing changed), or refused (nothing
-- imported; its problems, with line numbers, and where the drop was kept). The partial unique
-- index makes "imported once" hold even if two runs race past the advisory lock's check.

CREATE TABLE deck_drops (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha1            text NOT NULL CHECK (sha1 ~ '^[0-9a-f]{40}$'),
    name            text NOT NULL CHECK (name <> ''),
    drop_url        text NOT NULL,
    format          text CHECK (format IN ('cdrflow', 'cgrates', 'cdrtool')),
    target          text NOT NULL DEFAULT '',
    effective_from  date,
    outcome         text NOT NULL CHECK (outcome IN ('imported', 'duplicate', 'refused')),
    version_ids     bigint[] NOT NULL DEFAULT '{}',
    duplicate_of    bigint REFERENCES deck_drops (id),
    problems        text[] NOT NULL DEFAULT '{}',
    kept_as         text,
    seen_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (outcome <> 'imported' OR (format IS NOT NULL AND effective_from IS NOT NULL))
);

CREATE UNIQUE INDEX deck_drops_imported_once ON deck_drops (sha1, target, effective_from) WHERE outcome = 'imported';

COMMENT ON TABLE deck_drops IS
    'Rate decks dropped into the deck drop location (CDRFLOW_DECK_DROP) and what the cdrflow_import_decks DAG did with each: imported, duplicate or refused.';
COMMENT ON COLUMN deck_drops.id IS 'drop id';
COMMENT ON COLUMN deck_drops.sha1 IS
    'SHA1 of the dropped file (a .csv or a .zip); of a folder: SHA1 of its "name NUL sha1-of-file" lines, by name, hidden files (.ready) left out';
COMMENT ON COLUMN deck_drops.name IS 'the drop''s path under the drop location: <deck>/<YYYY-MM-DD>__<label>.csv, or a .cgrates/.cdrtool folder or zip';
COMMENT ON COLUMN deck_drops.drop_url IS 'the drop location (no credentials)';
COMMENT ON COLUMN deck_drops.format IS 'cdrflow, cgrates or cdrtool, from the name; NULL when the name said none (refused)';
COMMENT ON COLUMN deck_drops.target IS 'the deck the drop is for (its folder name); empty for a CGRateS tariff plan dropped at the top (every rating plan is a deck)';
COMMENT ON COLUMN deck_drops.effective_from IS 'first day in force, from the name; NULL when the name had none (refused)';
COMMENT ON COLUMN deck_drops.outcome IS
    'imported (new versions stored), duplicate (the same sha1, target and date were imported before: nothing stored) or refused (nothing stored; see problems)';
COMMENT ON COLUMN deck_drops.version_ids IS 'the rate_deck_versions the import made (one per deck; several for a CGRateS tariff plan)';
COMMENT ON COLUMN deck_drops.duplicate_of IS 'for a duplicate: the drop that imported the same bytes';
COMMENT ON COLUMN deck_drops.problems IS 'for a refused drop: one line per problem, with file and line number (the first 20), as `cdrflow rates import` prints them';
COMMENT ON COLUMN deck_drops.kept_as IS 'where the drop was moved: processed/... or rejected/... under the drop location (NULL until moved)';
COMMENT ON COLUMN deck_drops.seen_at IS 'when the DAG handled it';
