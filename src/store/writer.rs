//! The writer: one task drains a bounded queue of [`Record`]s in batches, one transaction
//! each, and retries a failed batch with backoff until it is written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Record, Store, StoreError};
use crate::histogram::Histogram;

/// Records taken greedily after the first one, per transaction.
const MAX_EXTRA_PER_BATCH: usize = 512;
/// First delay before retrying a failed batch.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between retries of a failed batch.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the writer task (must be called inside a Tokio runtime). `capacity` bounds the
/// queue (at least 1). The writer exits once every [`StoreHandle`] clone is dropped and
/// everything queued is written; [`WriterTask::finish`] waits for that.
pub fn spawn_writer(store: Store, capacity: usize) -> (StoreHandle, WriterTask) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let counters = Arc::new(Counters::default());
    let join = tokio::spawn(run_writer(store, rx, Arc::clone(&counters)));
    (StoreHandle { tx, counters }, WriterTask { join })
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
    /// Batch writes that failed (each retry counts).
    failures: AtomicU64,
    /// Whether the batch in hand has failed and not yet been written: the store is
    /// reachable for reads perhaps, but not taking writes (disk full, schema broken).
    failing: AtomicBool,
    /// Time per successful batch write.
    write_latency: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            written: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            write_latency: Histogram::new(WRITE_BUCKETS),
        }
    }
}

async fn run_writer(store: Store, mut rx: mpsc::Receiver<Record>, counters: Arc<Counters>) -> u64 {
    let mut total = 0u64;
    let mut batch = Vec::with_capacity(MAX_EXTRA_PER_BATCH + 1);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() <= MAX_EXTRA_PER_BATCH {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        let mut delay = INITIAL_BACKOFF;
        loop {
            let started = std::time::Instant::now();
            match store.write_batch_counted(&batch).await {
                Ok(exposures) => {
                    counters
                        .write_latency
                        .record_micros(started.elapsed().as_micros() as u64);
                    counters.written.fetch_add(exposures, Ordering::Relaxed);
                    counters.failing.store(false, Ordering::Relaxed);
                    total += batch.len() as u64;
                    break;
                }
                Err(error) => {
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    counters.failing.store(true, Ordering::Relaxed);
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
        batch.clear();
    }
    total
}

/// A producer's handle on the writer queue. Cheap to clone. The writer runs until every
/// clone is dropped, so long-lived state that only reads the counters (metrics) should
/// hold [`WriterStats`] instead.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    /// The bounded queue: a full queue makes `send` wait (backpressure, never a drop).
    tx: mpsc::Sender<Record>,
    /// The writer's counters, shared.
    counters: Arc<Counters>,
}

impl StoreHandle {
    /// Queues a record; waits while the queue is full. `Err(Closed)` if the writer is gone.
    pub async fn send(&self, record: Record) -> Result<(), StoreError> {
        self.tx.send(record).await.map_err(|_| StoreError::Closed)
    }

    /// Records waiting in the queue (not counting the batch being written).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Exposure rows written so far (duplicates of an existing display id not counted).
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// A read-only view of the counters that does not keep the writer alive.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            tx: self.tx.downgrade(),
            counters: Arc::clone(&self.counters),
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
    counters: Arc<Counters>,
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
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Batch writes that failed so far (every retry counts).
    pub fn write_failures(&self) -> u64 {
        self.counters.failures.load(Ordering::Relaxed)
    }

    /// Whether the writer's current batch has failed and is waiting to be retried.
    pub fn failing(&self) -> bool {
        self.counters.failing.load(Ordering::Relaxed)
    }

    /// Time per successful batch write.
    pub fn write_latency(&self) -> &Histogram {
        &self.counters.write_latency
    }
}

/// The running writer; [`finish`](WriterTask::finish) it at shutdown.
#[derive(Debug)]
pub struct WriterTask {
    pub(super) join: JoinHandle<u64>,
}

impl WriterTask {
    /// Waits until every [`StoreHandle`] is dropped and the queue is drained and written;
    /// returns the number of records written (of every kind). While the database is down
    /// this keeps waiting (the writer retries), so bound it with a timeout if needed.
    pub async fn finish(self) -> Result<u64, StoreError> {
        self.join.await.map_err(StoreError::Writer)
    }
}
