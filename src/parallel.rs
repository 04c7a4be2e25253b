//! Work on scoped threads when a thread can be had, and on the joining thread when it
//! cannot: loading a library must not fail for lack of parallelism (the process may be at
//! its thread limit under load).

use std::thread::{Builder, Scope, ScopedJoinHandle};

/// Work started on a thread of a scope, or kept to be done by [`Task::join`].
pub(crate) enum Task<'scope, T, F> {
    Thread(ScopedJoinHandle<'scope, T>),
    Here(F),
}

// `F: Copy` (a closure over references) keeps a copy to run here if the spawn fails.
impl<'scope, T: Send + 'scope, F: FnOnce() -> T + Send + Copy + 'scope> Task<'scope, T, F> {
    pub(crate) fn spawn<'env>(scope: &'scope Scope<'scope, 'env>, f: F) -> Self {
        match Builder::new()
            .name("cuedeck-load".into())
            .spawn_scoped(scope, f)
        {
            Ok(handle) => Task::Thread(handle),
            Err(_) => Task::Here(f),
        }
    }

    /// The work's result; a panic on its thread continues here.
    pub(crate) fn join(self) -> T {
        match self {
            Task::Thread(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Task::Here(f) => f(),
        }
    }
}
