//! # cuedeck
//!
//! A real-time call-assist battlecard engine. A speech-to-text bridge streams a live
//! call's transcript over a WebSocket; cuedeck matches it against trigger phrases authored
//! as YAML cards, pushes the right battlecard back within microseconds, and logs every
//! display decision so card variants can be A/B tested against deal outcomes.
//!
//! ## Modules and who calls whom
//!
//! Pure logic (no IO, no tokio), unit-tested without sockets:
//!
//! - [`library`] — a directory of YAML files → an immutable, validated [`library::Library`]
//!   (every error reported with file:line:col; large libraries parsed on every core).
//! - [`normalize`] — the text normalization phrases and transcripts share (a leaf module:
//!   `library` and `matcher` both use it, neither uses the other's).
//! - [`matcher`] — one automaton (a trie over word ids) over every phrase; whole-word,
//!   overlapping matches, normalized and matched in one pass; phrase → (card, role).
//! - [`rules`] — card eligibility: speaker, `all` groups, `unless`, time range, call context.
//! - [`experiment`] — sticky, stateless variant assignment (GrowthBook hash v2).
//! - [`session`] — the per-call state machine: segments, once-per-segment decisions,
//!   cooldowns, budgets, the minimum gap, experiment arms. `on_utterance → decisions`.
//! - [`driver`] — one call's pipeline, the one owner of "a client frame in, everything that
//!   follows out": the `ready` frame, error replies, decisions, card frames, store records,
//!   when to close. Wall-clock time, display ids and admission come from a
//!   [`driver::Host`]; the live ingest, the demo, replay, simulate and the session bench
//!   all run calls through [`driver::CallDriver`], so they decide alike by construction.
//! - [`location`] — [`location::Pos`] and [`location::Location`]: where an error points
//!   (`file:line:column`), for card files, the config file and recorded calls.
//! - [`rate`] — a token bucket on the caller's clock (feedback rate per socket).
//! - [`timestamp`] — [`timestamp::Timestamp`], the one form of every stored or compared
//!   time (UTC, milliseconds, RFC 3339 text that sorts as time).
//! - [`engine`] — a library and its matcher, built together and swapped as one.
//! - [`protocol`] — the native WebSocket messages: decoding with precise errors, encoding;
//!   [`protocol::adapters`] turn each STT provider's live messages into native ones.
//! - [`examples`] — `cuedeck test`: each card's examples against its triggers.
//! - [`names`] — the names of unit enum variants from their serde attributes (one table).
//! - [`histogram`] — a lock-free duration histogram in the Prometheus text format.
//! - `parallel` — work split over scoped threads (`map` in input order, `Task`), done in
//!   place when no thread can be had: library loading and `Matcher::build`.
//! - [`replay`] — a recorded call through the same [`driver::CallDriver`] the server uses.
//! - [`convert`] — a recorded Harper Valley Bank call → native or Deepgram stream lines.
//! - [`backtest`] — `replay --summary` / `--diff`: per-card fire rates over many calls.
//! - [`outcomes`] — CRM outcome input (webhook JSON, CSV rows) validated field by field.
//! - [`report`] — A/B reports: [`report::stats`] (gbstats conventions, the test vectors of
//!   docs/statistics.md), [`report::assemble()`] (units, windows, caps, gates),
//!   [`report::render`] (table, JSON, CSV); [`report::build`] reads the store's experiment
//!   read API.
//!
//! IO at the edges:
//!
//! - [`store`] — exposures, feedback, outcomes and calls in SQLite or PostgreSQL (sqlx),
//!   written by one batching task behind a bounded queue; split by job: row types, URLs,
//!   SQL text, the writer, bulk inserts, the report and dashboard reads.
//! - [`server`] — the accept loop (a permit before `accept`), HTTP routes, the ingest and
//!   subscriber WebSockets, the call registry (grace period for reconnects), bearer-token
//!   roles (`server::auth`), hot reload (`server::reload`: file watch, SIGHUP, endpoint),
//!   Prometheus metrics (`server::metrics`), the demo call, the embedded rep panel and
//!   manager dashboard (`src/web/`), graceful shutdown.
//! - [`config`] — `cuedeck.toml` + `CUEDECK_*` + flags, tokens, and the limits on
//!   everything a client can grow.
//! - [`simulate`] — `cuedeck simulate`: a realistic experiment (through the same
//!   [`driver::CallDriver`]) with a known true effect, bulk-written to a store.
//! - [`cli`] — the `cuedeck` command line; the composition root (the only `anyhow` user).
//!
//! ## Data flow
//!
//! ```text
//! serve:   cards dir ─► Library::load_dir ─► Engine::new (Matcher::build) ─► ArcSwap<Engine>
//!                     └► Store::open ─► spawn_writer_with_spill ─► StoreHandle (queue, then spill)
//! per call: WS frame ─► server::ingest (socket only) ─► CallDriver::on_text (pure)
//!             ─► Adapter (?format=) ─► native messages (protocol::decode)
//!             ─► Session::on_utterance(&engine) (Matcher::normalize_and_find) ─► Decisions
//!             ─► driver::Output { replies, records, decisions, close }
//!           ingest: records ─► StoreHandle ─► writer ─► DB, then
//!                   card replies ─► ingest socket + subscribers (bounded, slow ones dropped)
//! demo:    bundled call ─► CallDriver::on_message (paced; echo on; records dropped)
//! replay:  file ─► CallDriver::on_text (clock from t_ms, no arrival times)
//!             ─► JSON lines, or backtest summary / diff
//! simulate: synthetic start + line per call ─► CallDriver ─► bulk insert
//! ```
//!
//! Dependency rule: `normalize`, `library`, `matcher`, `rules`, `experiment` depend on no
//! IO; `session` and `driver` depend on them but not on tokio or a clock; `server` and
//! `cli` wire things together.
//!
//! ## Where this departs from the first design, and why
//!
//! - Metrics are a small registry of atomics owned by each server instead of the global
//!   `metrics` recorder: several servers in one process (tests, embedders) keep separate
//!   counts, and the hot path is a relaxed atomic add.
//! - The store uses one `sqlx::AnyPool` with `$N` placeholders, so SQLite and PostgreSQL
//!   share every migration and query string.
//! - The YAML is read into a located tree first (`library::yaml`) and checked by hand
//!   (`library::schema`), so every error in a file is reported, not just the first.
//! - The matcher is a trie over word ids instead of a byte-level Aho-Corasick automaton:
//!   normalized text is single-space-separated words, so the two give identical results
//!   (a proptest compares them), and the word trie measured faster at 1k–100k phrases,
//!   about 4× smaller and up to 5× quicker to build (BENCH.md).

pub mod backtest;
pub mod cli;
pub mod config;
pub mod convert;
pub mod driver;
pub mod engine;
pub mod examples;
pub mod experiment;
pub mod histogram;
pub mod library;
pub mod location;
pub mod matcher;
pub mod names;
pub mod normalize;
pub mod outcomes;
mod parallel;
pub mod protocol;
pub mod rate;
pub mod replay;
pub mod report;
pub mod rules;
pub mod server;
pub mod session;
pub mod simulate;
pub mod store;
pub mod timestamp;

/// Shared state crosses threads: keep these `Send + Sync`.
#[allow(dead_code)]
fn assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<engine::Engine>();
    check::<library::Library>();
    check::<matcher::Matcher>();
    check::<session::Session>();
}
