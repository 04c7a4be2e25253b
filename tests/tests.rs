//! Integration tests, one binary. Table of contents:
//!
//! - `adapters`: STT provider formats: per-adapter conformance on real and documented
//!   messages, a property test (any provider stream of the same words fires the native
//!   cards), the Harper Valley Bank call as a Deepgram stream over a real WebSocket, and
//!   `replay --format/--summary/--diff`, `convert`.
//! - `auth`: every route × role over real HTTP; tokens in headers and query parameters.
//! - `browser`: the rep panel in a real Chromium: cards on screen, feedback stored, the
//!   demo call with its transcript.
//! - `cli`: the `cuedeck` binary as users run it: validate, test, replay (exit codes,
//!   messages with file:line:col, the demo calls' expected decisions).
//! - `connections`: networks that drop: takeover of a call by a reconnecting bridge
//!   (`4001 replaced`), resume with a new deal and a restarted clock, panels sent the
//!   cards they missed, pings, feedback limits, subscriptions to made-up calls.
//! - `experiments`: A/B end to end: 300 deals streamed over real WebSockets, outcomes by
//!   webhook, the JSON report counting exactly what was streamed and posted; outcomes
//!   import, `report` and `simulate` as users run them; the report recovers the
//!   simulator's true effect.
//! - `faults`: the store goes away at run time (PostgreSQL behind a cut proxy); two nodes
//!   share one PostgreSQL database.
//! - `hardening`: browser and HTTP hardening: Origin and Host checks, the outcome
//!   webhook's content type, query tokens, security headers, unrepresentable dates,
//!   symlinked card files, the database password in logs.
//! - `metrics`: the Prometheus endpoint counts what a call did.
//! - `reload`: hot reload by endpoint and file watching; invalid libraries never go live.
//! - `server`: `serve` on 127.0.0.1:0 with a real SQLite file, driven over real
//!   WebSockets: cards on the ingest and subscriber sockets, error frames, size and error
//!   limits, slow subscribers, graceful shutdown with every exposure stored.
//! - `signals`: the serve binary under SIGTERM (with 20 live calls) and SIGHUP.
//! - `support`: shared helpers (starting a server, WebSocket clients).

mod adapters;
mod auth;
mod browser;
mod cli;
mod connections;
mod experiments;
mod faults;
mod hardening;
mod metrics;
mod reload;
mod server;
mod signals;
mod support;
