//! What every WebSocket loop of the server shares: liveness (pings every `ping_seconds`,
//! a socket that misses two pongs in a row is dropped; any inbound frame, a pong too,
//! counts as activity for the idle timeout) and bounded writes (a frame that cannot be
//! written within [`WRITE_TIMEOUT`] closes the socket, so a peer that never reads cannot
//! hold a task, a call or shutdown).

use std::time::Duration;

use futures_util::{Sink, SinkExt};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Longest wait for one frame to be written.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes one frame, giving up after [`WRITE_TIMEOUT`].
pub async fn send<S>(ws: &mut S, msg: Message) -> Result<(), WsError>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    match tokio::time::timeout(WRITE_TIMEOUT, ws.send(msg)).await {
        Ok(result) => result,
        Err(_) => Err(WsError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "write timed out",
        ))),
    }
}

/// A socket's liveness: when it last sent anything, and pings not yet answered.
pub struct Liveness {
    idle: Duration,
    last_seen: Instant,
    ping: Interval,
    unanswered: u32,
}

/// What a ping tick asks the loop to do.
pub enum Tick {
    /// Send a ping.
    Ping,
    /// Two pings went unanswered: drop the socket without a close handshake.
    Dead,
}

impl Liveness {
    pub fn new(idle: Duration, ping_every: Duration) -> Liveness {
        let start = Instant::now() + ping_every;
        let mut ping = tokio::time::interval_at(start, ping_every.max(Duration::from_millis(1)));
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Liveness {
            idle: idle.max(Duration::from_millis(1)),
            last_seen: Instant::now(),
            ping,
            unanswered: 0,
        }
    }

    /// Any inbound frame: the peer is alive.
    pub fn seen(&mut self) {
        self.last_seen = Instant::now();
        self.unanswered = 0;
    }

    /// When the socket counts as idle if nothing comes in before.
    pub fn idle_at(&self) -> Instant {
        self.last_seen + self.idle
    }

    /// Resolves at the next ping time.
    pub async fn tick(&mut self) -> Tick {
        self.ping.tick().await;
        if self.unanswered >= 2 {
            return Tick::Dead;
        }
        self.unanswered += 1;
        Tick::Ping
    }
}
