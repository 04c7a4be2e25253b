//! The writer: one task drains a bounded queue of [`Record`]s in batches, one transaction
//! each, on its own connection. Behind the queue, an optional spill file on local disk
//! ([`spill`](super::spill)) takes records while the queue is full, so producers wait only
//! when both are full. A batch that fails for a transient reason (connection, lock, disk
//! full) is retried with backoff until written; a batch the database rejects is retried one
//! record at a time, and a record rejected for good is moved aside (a dead letter) so the
//! queue moves on. The writer's state — last write ok or failing, queue depth, spill bytes —
//! is what `/readyz` and `/metrics` report, without a query of their own.

use std::path::PathBuf;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::spill::Spill;
use super::{Record, Store, StoreError};
use crate::histogram::Histogram;
use crate::timestamp::Timestamp;

/// Records taken greedily after the first one, per transaction.
const MAX_EXTRA_PER_BATCH: usize = 512;
/// First delay before retrying a failed batch.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between retries of a failed batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The writer's state is refreshed (a no-op write when idle) once older than this and asked for.
const STATE_FRESH: Duration = Duration::from_secs(1);
/// Bound on the idle check, and on how long `/readyz` waits for the first one.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a producer waiting for room (queue and spill full) looks again, in case a
/// wake-up was missed (the spill's disk freed by someone else, the writer gone).
const ROOM_RECHECK: Duration = Duration::from_millis(100);
/// The file dead letters go to when the database does not take them either.
const DEAD_LETTER_FILE: &str = "dead-letters.jsonl";

/// Where the spill lives and how large it may grow (`[store] spill_dir`,
/// `[limits] spill_max_bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillOptions {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// Starts the writer task without a spill (must be called inside a Tokio runtime):
/// a full queue makes [`StoreHandle::send`] wait. `capacity` bounds the queue (at least
/// 1). The writer exits once every [`StoreHandle`] clone is dropped and everything queued
/// is written; [`WriterTask::finish`] waits for that.
pub fn spawn_writer(store: Store, capacity: usize) -> (StoreHandle, WriterTask) {
    start(store, capacity, None, None)
}

/// Starts the writer task with a spill in `spill.dir` (created if missing). Records an
/// earlier run left in the spill are written before any new record.
pub fn spawn_writer_with_spill(
    store: Store,
    capacity: usize,
    spill: &SpillOptions,
) -> Result<(StoreHandle, WriterTask), StoreError> {
    let opened = Spill::open(&spill.dir, spill.max_bytes).map_err(|source| StoreError::Spill {
        path: spill.dir.clone(),
        source,
    })?;
    Ok(start(
        store,
        capacity,
        Some(opened),
        Some(spill.dir.clone()),
    ))
}

fn start(
    store: Store,
    capacity: usize,
    spill: Option<Spill>,
    dir: Option<PathBuf>,
) -> (StoreHandle, WriterTask) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let shared = Arc::new(Shared {
        counters: Counters::default(),
        spill_bytes: AtomicU64::new(spill.as_ref().map_or(0, Spill::pending_bytes)),
        spill: spill.map(Mutex::new),
        dead_letter_file: dir.map(|d| d.join(DEAD_LETTER_FILE)),
        spilled_ready: Notify::new(),
        room: Notify::new(),
        check_wanted: Notify::new(),
        checked: Notify::new(),
        epoch: Instant::now(),
    });
    let writer = Writer {
        store: store.for_writer(),
        shared: Arc::clone(&shared),
        total: 0,
    };
    let join = tokio::spawn(writer.run(rx));
    (StoreHandle { tx, shared }, WriterTask { join })
}

/// Upper bounds (seconds) of the batch write time histogram.
pub const WRITE_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// What the writer reports about itself, shared with its handles.
#[derive(Debug)]
struct Counters {
    /// Exposure rows written.
    written: AtomicU64,
    /// Batch writes that failed for a transient reason (each retry counts).
    failures: AtomicU64,
    /// Records moved aside as dead letters.
    dead_letters: AtomicU64,
    /// Records that went to the spill file.
    spilled: AtomicU64,
    /// Whether the last write or check failed: the store is perhaps reachable for reads,
    /// but not taking writes (disk full, down, schema broken).
    failing: AtomicBool,
    /// When the writer last learned whether the store takes writes: milliseconds since
    /// `Shared::epoch`, plus one; 0 = not yet.
    observed: AtomicU64,
    /// Time per successful batch write.
    write_latency: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            written: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            observed: AtomicU64::new(0),
            write_latency: Histogram::new(WRITE_BUCKETS),
        }
    }
}

/// State shared by the writer and its handles.
#[derive(Debug)]
struct Shared {
    counters: Counters,
    /// The spill, if configured; producers append under the lock, the writer reads.
    spill: Option<Mutex<Spill>>,
    /// Bytes waiting in the spill (a copy readable without the lock).
    spill_bytes: AtomicU64,
    dead_letter_file: Option<PathBuf>,
    /// A producer spilled a record (wakes an idle writer).
    spilled_ready: Notify,
    /// The writer made room in the spill (wakes producers waiting on a full spill).
    room: Notify,
    /// Someone wants a fresh state (the writer checks when idle).
    check_wanted: Notify,
    /// The writer observed the store (a write or a check).
    checked: Notify,
    epoch: Instant,
}

impl Shared {
    fn lock_spill(spill: &Mutex<Spill>) -> MutexGuard<'_, Spill> {
        spill.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the outcome of a write or check.
    fn observed(&self, ok: bool) {
        self.counters.failing.store(!ok, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.counters.observed.store(now, Ordering::Relaxed);
        self.checked.notify_waiters();
    }

    /// How old the writer's last observation is; `None` before the first.
    fn observed_age(&self) -> Option<Duration> {
        match self.counters.observed.load(Ordering::Relaxed) {
            0 => None,
            at => Some(
                self.epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(at - 1)),
            ),
        }
    }
}

/// The writer task's state.
struct Writer {
    store: Store,
    shared: Arc<Shared>,
    /// Records handled (written or dead-lettered).
    total: u64,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Record>) -> u64 {
        let mut batch = Vec::with_capacity(MAX_EXTRA_PER_BATCH + 1);
        let mut open = true;
        loop {
            // The queue first: while the spill holds records, producers append there, so
            // what is queued is older than anything spilled.
            if open {
                while batch.len() <= MAX_EXTRA_PER_BATCH {
                    match rx.try_recv() {
                        Ok(record) => batch.push(record),
                        Err(_) => break,
                    }
                }
            }
            if !batch.is_empty() {
                self.write(&batch).await;
                batch.clear();
                continue;
            }
            if self.drain_spill().await {
                continue;
            }
            if !open {
                break;
            }
            let shared = Arc::clone(&self.shared);
            let spilled = pin!(shared.spilled_ready.notified());
            let check = pin!(shared.check_wanted.notified());
            tokio::select! {
                record = rx.recv() => match record {
                    Some(record) => batch.push(record),
                    None => open = false,
                },
                _ = spilled => {}
                _ = check => self.check().await,
            }
        }
        self.shared.room.notify_waiters();
        self.total
    }

    /// Writes one chunk of the spill; false when the spill is empty (or unreadable).
    async fn drain_spill(&mut self) -> bool {
        let shared = Arc::clone(&self.shared);
        let Some(spill) = &shared.spill else {
            return false;
        };
        let chunk = {
            let mut spill = Shared::lock_spill(spill);
            if spill.is_empty() {
                return false;
            }
            spill.read(MAX_EXTRA_PER_BATCH + 1)
        };
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                tracing::error!(%error, "cannot read the spill; retrying");
                tokio::time::sleep(MAX_BACKOFF).await;
                return true;
            }
        };
        if !chunk.records.is_empty() {
            self.write(&chunk.records).await;
        }
        let mut spill = Shared::lock_spill(spill);
        if let Err(error) = spill.consume(&chunk) {
            tracing::error!(%error, "cannot delete a drained spill segment");
        }
        self.shared
            .spill_bytes
            .store(spill.pending_bytes(), Ordering::Relaxed);
        drop(spill);
        self.shared.room.notify_waiters();
        true
    }

    /// A no-op write on the writer's connection, when asked and the state is stale.
    async fn check(&mut self) {
        if self
            .shared
            .observed_age()
            .is_some_and(|age| age < STATE_FRESH)
        {
            return;
        }
        let ok = matches!(
            tokio::time::timeout(CHECK_TIMEOUT, self.store.ping()).await,
            Ok(Ok(()))
        );
        self.shared.observed(ok);
    }

    /// Writes the batch in one transaction, retrying transient failures; a batch the
    /// database rejects is written one record at a time to find the culprit(s).
    async fn write(&mut self, batch: &[Record]) {
        if let Err(error) = self.write_retrying(batch).await {
            if batch.len() == 1 {
                self.dead_letter(&batch[0], &error).await;
                return;
            }
            tracing::warn!(%error, records = batch.len(), "batch rejected; writing its records one by one");
            for record in batch {
                if let Err(error) = self.write_retrying(std::slice::from_ref(record)).await {
                    self.dead_letter(record, &error).await;
                }
            }
        }
    }

    /// Retries transient failures until written; returns a rejection for good.
    async fn write_retrying(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        let counters = &self.shared.counters;
        let mut delay = INITIAL_BACKOFF;
        loop {
            let started = Instant::now();
            match self.store.write_batch_counted(batch).await {
                Ok(exposures) => {
                    counters
                        .write_latency
                        .record_micros(started.elapsed().as_micros() as u64);
                    counters.written.fetch_add(exposures, Ordering::Relaxed);
                    self.shared.observed(true);
                    self.total += batch.len() as u64;
                    return Ok(());
                }
                Err(error) if !error.is_transient() => {
                    // The database answered: it takes writes, just not this batch.
                    self.shared.observed(true);
                    return Err(error);
                }
                Err(error) => {
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    self.shared.observed(false);
                    tracing::error!(
                        %error,
                        records = batch.len(),
                        retry_in_ms = delay.as_millis() as u64,
                        "store write failed; keeping the batch and retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Moves a rejected record aside: into `dead_letters`, else into the dead-letter file,
    /// else (no spill directory) into the log at error level.
    async fn dead_letter(&mut self, record: &Record, error: &StoreError) {
        self.shared
            .counters
            .dead_letters
            .fetch_add(1, Ordering::Relaxed);
        self.total += 1;
        let json = serde_json::to_string(record).unwrap_or_else(|e| format!("{record:?} ({e})"));
        let error = error.to_string();
        let ts = Timestamp::now();
        tracing::error!(%error, record = %json, "the store rejected a record for good; dead-lettered");
        let stored = match self.store.insert_dead_letter(ts, &json, &error).await {
            Ok(()) => return,
            Err(e) => e,
        };
        let Some(path) = &self.shared.dead_letter_file else {
            tracing::error!(error = %stored, record = %json, "dead letter not stored: no spill directory");
            return;
        };
        let line = serde_json::json!({"ts": ts, "error": error, "record": json}).to_string();
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = appended {
            tracing::error!(error = %e, file = %path.display(), record = %json, "cannot write the dead letter file");
        }
    }
}

/// A producer's handle on the writer queue. Cheap to clone. The writer runs until every
/// clone is dropped, so long-lived state that only reads the counters (metrics) should
/// hold [`WriterStats`] instead.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    /// The bounded queue.
    tx: mpsc::Sender<Record>,
    /// The writer's counters and spill, shared.
    shared: Arc<Shared>,
}

impl StoreHandle {
    /// Queues a record. When the queue is full it goes to the spill (if configured); when
    /// both are full this waits for room (backpressure, never a drop). `Err(Closed)` if the
    /// writer is gone.
    pub async fn send(&self, mut record: Record) -> Result<(), StoreError> {
        let Some(spill) = &self.shared.spill else {
            return self.tx.send(record).await.map_err(|_| StoreError::Closed);
        };
        loop {
            let mut room = pin!(self.shared.room.notified());
            {
                let mut spill = Shared::lock_spill(spill);
                // Once records are spilled, later ones follow them there (keeps order).
                if spill.is_empty() {
                    match self.tx.try_send(record) {
                        Ok(()) => return Ok(()),
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            return Err(StoreError::Closed);
                        }
                        Err(mpsc::error::TrySendError::Full(r)) => record = r,
                    }
                }
                if self.tx.is_closed() {
                    return Err(StoreError::Closed);
                }
                match spill.append(&record) {
                    Ok(true) => {
                        self.shared
                            .spill_bytes
                            .store(spill.pending_bytes(), Ordering::Relaxed);
                        drop(spill);
                        self.shared.counters.spilled.fetch_add(1, Ordering::Relaxed);
                        self.shared.spilled_ready.notify_one();
                        return Ok(());
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%error, "cannot append to the spill; waiting for room")
                    }
                }
                room.as_mut().enable();
            }
            let _ = tokio::time::timeout(ROOM_RECHECK, room).await;
        }
    }

    /// Records waiting in the queue (not counting the batch being written nor the spill).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Exposure rows written so far (duplicates of an existing display id not counted).
    pub fn written(&self) -> u64 {
        self.shared.counters.written.load(Ordering::Relaxed)
    }

    /// A read-only view of the counters that does not keep the writer alive.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            tx: self.tx.downgrade(),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The writer's counters (for metrics), without a hold on the queue: unlike a
/// [`StoreHandle`], it does not delay [`WriterTask::finish`].
#[derive(Debug, Clone)]
pub struct WriterStats {
    /// Reads the queue depth without keeping the queue open.
    tx: mpsc::WeakSender<Record>,
    /// The writer's counters, shared.
    shared: Arc<Shared>,
}

impl WriterStats {
    /// Records waiting in the queue (0 once the writer has exited).
    pub fn queue_depth(&self) -> usize {
        self.tx
            .upgrade()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Exposure rows written so far.
    pub fn written(&self) -> u64 {
        self.shared.counters.written.load(Ordering::Relaxed)
    }

    /// Batch writes that failed so far (every retry counts).
    pub fn write_failures(&self) -> u64 {
        self.shared.counters.failures.load(Ordering::Relaxed)
    }

    /// Records the database rejected for good, moved aside.
    pub fn dead_letters(&self) -> u64 {
        self.shared.counters.dead_letters.load(Ordering::Relaxed)
    }

    /// Records that went to the spill so far.
    pub fn spilled(&self) -> u64 {
        self.shared.counters.spilled.load(Ordering::Relaxed)
    }

    /// Bytes waiting in the spill.
    pub fn spill_bytes(&self) -> u64 {
        self.shared.spill_bytes.load(Ordering::Relaxed)
    }

    /// Whether the writer's last write or check failed.
    pub fn failing(&self) -> bool {
        self.shared.counters.failing.load(Ordering::Relaxed)
    }

    /// Whether the store takes writes, from the writer's state: its last write or check
    /// succeeded. A state older than a second asks the idle writer for a check (one for
    /// any number of callers) without waiting for it; only before the writer's first
    /// observation does this wait, up to 2 s. Never a query of its own.
    pub async fn store_ok(&self) -> bool {
        match self.shared.observed_age() {
            Some(age) => {
                if age >= STATE_FRESH {
                    self.shared.check_wanted.notify_one();
                }
            }
            None => {
                let mut checked = pin!(self.shared.checked.notified());
                checked.as_mut().enable();
                if self.shared.observed_age().is_none() {
                    self.shared.check_wanted.notify_one();
                    if tokio::time::timeout(CHECK_TIMEOUT, checked).await.is_err() {
                        return false;
                    }
                }
            }
        }
        !self.failing()
    }

    /// Time per successful batch write.
    pub fn write_latency(&self) -> &Histogram {
        &self.shared.counters.write_latency
    }
}

/// The running writer; [`finish`](WriterTask::finish) it at shutdown.
#[derive(Debug)]
pub struct WriterTask {
    pub(super) join: JoinHandle<u64>,
}

impl WriterTask {
    /// Waits until every [`StoreHandle`] is dropped and the queue and the spill are drained
    /// and written; returns the number of records handled (written or dead-lettered).
    /// While the database is down this keeps waiting (the writer retries), so bound it with
    /// a timeout if needed.
    pub async fn finish(self) -> Result<u64, StoreError> {
        self.join.await.map_err(StoreError::Writer)
    }
}
