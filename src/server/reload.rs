//! Hot reload: re-read the card directory, build the new engine off the hot path, and
//! swap it in atomically only if the whole library is valid. Live calls keep their
//! cooldowns, budgets and variants (those live in their sessions) and use the new library
//! from their next message. Triggered by file changes, SIGHUP and `POST /v1/admin/reload`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::{AppState, LoadStatus, StatusError};
use crate::engine::Engine;
use crate::library::{Library, LibraryError};
use crate::timestamp::Timestamp;

/// Reloads the library from the directory the live one came from. Returns the new status;
/// `ok` is false when the library was not replaced.
pub async fn reload(state: &Arc<AppState>) -> LoadStatus {
    // One reload at a time, so the status always describes the last attempt.
    let _guard = state.reload_lock.lock().await;
    let dir = PathBuf::from(state.engine.load().library().source());
    let built = tokio::task::spawn_blocking(move || -> Result<Engine, Vec<StatusError>> {
        let library = Library::load_dir(&dir).map_err(|e| match e {
            LibraryError::Invalid(errors) => errors
                .into_iter()
                .map(|e| StatusError {
                    at: e.at,
                    message: e.message,
                })
                .collect(),
            io @ LibraryError::Io { .. } => vec![StatusError::whole_file(&dir, io.to_string())],
        })?;
        Engine::new(library).map_err(|e| vec![StatusError::whole_file(&dir, e.to_string())])
    })
    .await;
    let built = built.unwrap_or_else(|e| {
        Err(vec![StatusError::whole_file(
            Path::new(""),
            format!("reload task failed: {e}"),
        )])
    });
    let status = match built {
        Ok(engine) => {
            let version = engine.library().version().to_string();
            let cards = engine.library().cards().len();
            let old = state.engine.swap(Arc::new(engine));
            tokio::task::spawn_blocking(move || free_when_released(old));
            state.stats.reloads_ok.fetch_add(1, Ordering::Relaxed);
            info!(%version, cards, "card library reloaded");
            LoadStatus {
                ok: true,
                version,
                loaded_at: Timestamp::now().to_string(),
                errors: Vec::new(),
            }
        }
        Err(errors) => {
            state.stats.reloads_error.fetch_add(1, Ordering::Relaxed);
            for e in &errors {
                warn!(at = %e.at, message = %e.message, "card library error");
            }
            error!(
                errors = errors.len(),
                "card library reload failed; the previous library stays live"
            );
            LoadStatus {
                ok: false,
                version: state.engine.load().library().version().to_string(),
                loaded_at: Timestamp::now().to_string(),
                errors,
            }
        }
    };
    *state.status.lock().unwrap_or_else(|p| p.into_inner()) = status.clone();
    status
}

/// Watches the card directory and reloads when files change (debounced), until shutdown.
/// Returns an error when the directory cannot be watched.
pub fn watch(state: Arc<AppState>) -> Result<(), String> {
    use notify_debouncer_full::{new_debouncer, notify::RecursiveMode};

    let dir = PathBuf::from(state.engine.load().library().source());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut debouncer = new_debouncer(Duration::from_millis(250), None, move |result| {
        if let Ok(events) = result {
            let events: Vec<notify_debouncer_full::DebouncedEvent> = events;
            if events.iter().any(|e| !e.kind.is_access()) {
                // A full channel already means "reload pending".
                let _ = tx.try_send(());
            }
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        // The debouncer stops watching when dropped: keep it for the task's life.
        let _debouncer = debouncer;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = rx.recv() => match event {
                    Some(()) => { reload(&state).await; }
                    None => break,
                },
            }
        }
    });
    info!(dir = %dir.display(), "watching the card library for changes");
    Ok(())
}

/// Drops a replaced engine here, on a blocking thread. Freeing a large library takes tens of
/// milliseconds (about 40 ms at 100k phrases), which on a runtime worker would stall every
/// call it serves; and whoever drops the last reference frees it, so this waits (briefly)
/// for messages still matching against it to let go first.
fn free_when_released<T>(old: Arc<T>) {
    const PATIENCE: Duration = Duration::from_secs(5);
    let start = Instant::now();
    // Nothing can take a new reference: the engine is no longer in the swap.
    while Arc::strong_count(&old) > 1 && start.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(old);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::thread::{self, ThreadId};

    /// Records the thread that drops it.
    struct Probe(Arc<Mutex<Option<ThreadId>>>);

    impl Drop for Probe {
        fn drop(&mut self) {
            if let Ok(mut at) = self.0.lock() {
                *at = Some(thread::current().id());
            }
        }
    }

    #[test]
    fn a_replaced_engine_is_freed_by_the_releasing_thread_even_when_a_message_lets_go_last() {
        let dropped_on = Arc::new(Mutex::new(None));
        let old = Arc::new(Probe(dropped_on.clone()));
        let in_flight = Arc::clone(&old); // a message still matching against it
        let releaser = thread::spawn(move || {
            free_when_released(old);
            thread::current().id()
        });
        thread::sleep(Duration::from_millis(30));
        drop(in_flight); // the message finishes on its worker: it must not free the engine
        let releaser = releaser.join().expect("releaser");
        assert_eq!(*dropped_on.lock().expect("lock"), Some(releaser));
    }
}
