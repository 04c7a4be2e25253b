//! Service limits. Every bound on what a client can grow is here, explicit and
//! configurable (SPEC §7 `[limits]`).

use serde::Deserialize;

/// Bounds applied by `serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open TCP connections (HTTP and WebSocket) at once; a semaphore permit is taken
    /// before `accept`.
    pub max_connections: usize,
    /// Largest WebSocket message or frame; larger closes the socket with 1009.
    pub max_message_bytes: usize,
    /// A WebSocket with no inbound message for this long is closed.
    pub idle_timeout_seconds: u64,
    /// How long an ended call's state is kept so a reconnect resumes it.
    pub call_grace_seconds: u64,
    /// Records waiting for the store writer; a full queue slows the producing call.
    pub store_queue: usize,
    /// How long shutdown waits for connections to close and the store to drain.
    pub shutdown_grace_seconds: u64,
    /// Calls (live or in their grace period) held at once.
    pub max_calls: usize,
    /// Frames queued for one subscriber; a subscriber that falls this far behind is
    /// disconnected instead of slowing the call.
    pub subscriber_queue: usize,
    /// Subscribers of one call.
    pub max_subscribers_per_call: usize,
    /// Normalized transcript bytes one call keeps for window scopes.
    pub max_transcript_bytes: usize,
    /// Consecutive bad messages before the socket is closed with 1008.
    pub max_errors_in_a_row: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 20_000,
            max_message_bytes: 64 * 1024,
            idle_timeout_seconds: 600,
            call_grace_seconds: 30,
            store_queue: 65_536,
            shutdown_grace_seconds: 10,
            max_calls: 20_000,
            subscriber_queue: 256,
            max_subscribers_per_call: 16,
            max_transcript_bytes: 64 * 1024,
            max_errors_in_a_row: 10,
        }
    }
}
