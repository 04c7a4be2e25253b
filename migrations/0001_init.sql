-- cuedeck store schema, version 1 (SPEC §5).
-- Portable between SQLite (>= 3.24) and PostgreSQL: only TEXT, BIGINT, BOOLEAN and
-- DOUBLE PRECISION columns. Timestamps are TEXT in RFC 3339 UTC with milliseconds
-- (`2026-11-23T10:00:00.123Z`), so they sort as strings.

-- Every display decision (shown, control arm, suppressed), as `replay --json` prints them.
CREATE TABLE exposures (
    display_id      TEXT NOT NULL PRIMARY KEY,
    ts              TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    deal_id         TEXT,
    rep_id          TEXT,
    card_id         TEXT NOT NULL,
    experiment_key  TEXT,
    variant         TEXT,
    shown           BOOLEAN NOT NULL,
    reason          TEXT NOT NULL,
    phrase          TEXT NOT NULL,
    speaker         TEXT NOT NULL,
    segment_id      TEXT NOT NULL,
    engine_us       BIGINT NOT NULL,
    library_version TEXT NOT NULL
);
CREATE INDEX exposures_experiment_deal_idx ON exposures (experiment_key, deal_id);
CREATE INDEX exposures_call_idx ON exposures (call_id);

-- Rep feedback on a displayed card. The display id is not a foreign key: feedback for an
-- unknown display is still kept. The composite key makes a retried batch idempotent.
CREATE TABLE feedback (
    display_id TEXT NOT NULL,
    ts         TEXT NOT NULL,
    action     TEXT NOT NULL,
    PRIMARY KEY (display_id, ts, action)
);

-- CRM outcomes, one row per update (history); the latest row per deal counts.
-- `id` is a ULID assigned at insert time (monotonic within one request).
CREATE TABLE outcomes (
    id          TEXT NOT NULL PRIMARY KEY,
    deal_id     TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    amount      DOUBLE PRECISION,
    currency    TEXT,
    closed_at   TEXT,
    received_at TEXT NOT NULL
);
CREATE INDEX outcomes_deal_idx ON outcomes (deal_id, received_at);

-- Calls; a reconnecting call keeps its row (and started_at) and clears ended_at.
CREATE TABLE calls (
    call_id    TEXT NOT NULL PRIMARY KEY,
    deal_id    TEXT,
    rep_id     TEXT,
    context    TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT
);
