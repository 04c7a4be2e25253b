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

/// `f` over `items`, results in input order: on up to `available_parallelism` scoped
/// threads when the items' total `weight` is at least `min_total` (below it, spawning costs
/// more than it saves), each thread taking a contiguous run of about equal weight.
pub(crate) fn map<T: Sync, R: Send>(
    items: &[T],
    weight: impl Fn(&T) -> usize,
    min_total: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let total: usize = items.iter().map(&weight).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len());
    if threads <= 1 || total < min_total {
        return items.iter().map(f).collect();
    }
    let mut runs: Vec<&[T]> = Vec::with_capacity(threads);
    let (mut start, mut acc) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        acc += weight(item);
        if acc * threads >= total * (runs.len() + 1) && runs.len() + 1 < threads {
            runs.push(&items[start..=i]);
            start = i + 1;
        }
    }
    runs.push(&items[start..]);
    let f = &f;
    std::thread::scope(|scope| {
        let tasks: Vec<_> = runs
            .iter()
            .map(|&run| Task::spawn(scope, move || run.iter().map(f).collect::<Vec<R>>()))
            .collect();
        tasks.into_iter().flat_map(Task::join).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_input_order_whatever_the_split() {
        for n in [0usize, 1, 2, 3, 7, 100] {
            for min_total in [0, usize::MAX] {
                let items: Vec<usize> = (0..n).collect();
                let got = map(&items, |&i| 1 + i % 3, min_total, |&i| i * 10);
                assert_eq!(got, items.iter().map(|i| i * 10).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller() {
        let items: Vec<usize> = (0..8).collect();
        let caught = std::panic::catch_unwind(|| {
            map(
                &items,
                |_| 1,
                0,
                |&i| if i == 6 { panic!("item {i}") } else { i },
            )
        });
        assert!(caught.is_err());
    }
}
