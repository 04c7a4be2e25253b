-- cuedeck store schema, version 2 (SPEC §11).

-- The dashboard's live queries filter exposures by time (`ts >= …`).
CREATE INDEX exposures_ts_idx ON exposures (ts);

-- Records the database rejected for good (a constraint or encoding error), moved aside by
-- the writer so the queue moves on. `record` is the record as JSON (the same form as the
-- spill file), `error` the database's message. `id` is a ULID assigned at insert.
CREATE TABLE dead_letters (
    id     TEXT NOT NULL PRIMARY KEY,
    ts     TEXT NOT NULL,
    record TEXT NOT NULL,
    error  TEXT NOT NULL
);
