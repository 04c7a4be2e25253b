//! The SQL the store runs: one string per statement, the same on SQLite and PostgreSQL
//! (`$N` placeholders, `ON CONFLICT`, portable types).

pub(super) const INSERT_EXPOSURE: &str = "INSERT INTO exposures (display_id, ts, call_id, deal_id, rep_id, \
     card_id, experiment_key, variant, shown, reason, phrase, speaker, segment_id, engine_us, \
     library_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (display_id) DO NOTHING";

pub(super) const UPSERT_CALL: &str = "INSERT INTO calls (call_id, deal_id, rep_id, context, started_at, \
     ended_at) VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (call_id) DO UPDATE SET \
     deal_id = excluded.deal_id, rep_id = excluded.rep_id, context = excluded.context, \
     ended_at = NULL";

pub(super) const END_CALL: &str = "UPDATE calls SET ended_at = $1 WHERE call_id = $2";

pub(super) const INSERT_FEEDBACK: &str = "INSERT INTO feedback (display_id, ts, action) VALUES ($1, $2, $3) \
     ON CONFLICT (display_id, ts, action) DO NOTHING";

// The amount is bound as text and cast: sqlx's Any driver declares a NULL f64 parameter
// as float4 on PostgreSQL, which then rejects the next non-NULL f64 in the cached statement.
pub(super) const INSERT_OUTCOME: &str = "INSERT INTO outcomes (id, deal_id, outcome, amount, currency, \
     closed_at, received_at, updated_at) VALUES ($1, $2, $3, CAST($4 AS DOUBLE PRECISION), $5, $6, \
     $7, $8)";

pub(super) const SELECT_EXPOSURES: &str = "SELECT display_id, ts, call_id, deal_id, rep_id, card_id, \
     experiment_key, variant, CASE WHEN shown THEN 1 ELSE 0 END AS shown, reason, phrase, \
     speaker, segment_id, engine_us, library_version FROM exposures ORDER BY ts, display_id";
pub(super) const SELECT_EXPOSURES_BY_CALL: &str = "SELECT display_id, ts, call_id, deal_id, rep_id, \
     card_id, experiment_key, variant, CASE WHEN shown THEN 1 ELSE 0 END AS shown, reason, \
     phrase, speaker, segment_id, engine_us, library_version FROM exposures \
     WHERE call_id = $1 ORDER BY ts, display_id";

pub(super) const SELECT_FEEDBACK: &str =
    "SELECT display_id, ts, action FROM feedback ORDER BY ts, display_id, action";
pub(super) const SELECT_FEEDBACK_BY_DISPLAY: &str =
    "SELECT display_id, ts, action FROM feedback WHERE display_id = $1 ORDER BY ts, action";

pub(super) const SELECT_CALL: &str = "SELECT call_id, deal_id, rep_id, context, started_at, ended_at \
     FROM calls WHERE call_id = $1";

pub(super) const SELECT_OUTCOMES: &str = "SELECT deal_id, outcome, amount, currency, closed_at, \
     updated_at, received_at FROM outcomes ORDER BY deal_id, received_at, id";
pub(super) const SELECT_OUTCOMES_BY_DEAL: &str = "SELECT deal_id, outcome, amount, currency, closed_at, \
     updated_at, received_at FROM outcomes WHERE deal_id = $1 ORDER BY received_at, id";

pub(super) const INSERT_DEAD_LETTER: &str =
    "INSERT INTO dead_letters (id, ts, record, error) VALUES ($1, $2, $3, $4)";
pub(super) const SELECT_DEAD_LETTERS: &str =
    "SELECT ts, record, error FROM dead_letters ORDER BY ts, id";

/// A no-op write: fails on a read-only database or replica, waits on a held write lock.
pub(super) const PING: &str = "UPDATE calls SET ended_at = ended_at WHERE 1 = 0";
