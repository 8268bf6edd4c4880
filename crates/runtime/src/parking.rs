//! A request that starts waiting on other clients says so, and the
//! connection serving it gives back what it holds for it.
//!
//! The broker-wide request budget (`queued.max.requests`,
//! `queued.max.request.bytes`, held per frame by the server's connections)
//! must never be held by a request whose wait needs another connection's
//! request to progress: an acks=all produce waits for followers' fetches, a
//! fetch's long poll for producers, a JoinGroup for the other members'. If
//! such waits held the budget, the requests they wait for could not be read
//! and the broker would stall until the waits time out. Kafka gives a
//! request's buffer back when its handler returns, before any purgatory.
//!
//! So the connection runs each request inside [`with_park_hook`], and code
//! about to wait on other clients calls [`parked`], which runs the hook
//! (once; later calls do nothing). Outside a hook's scope `parked` does
//! nothing, so shared code (a group shard's own appends) may call it freely.

use std::cell::RefCell;
use std::future::Future;

/// What a connection does when its request parks.
pub type ParkHook = Box<dyn FnOnce() + Send>;

tokio::task_local! {
    static ON_PARK: RefCell<Option<ParkHook>>;
}

/// Runs `request` with `hook` to be run if it parks; the hook is dropped
/// unrun when the request ends without parking.
pub async fn with_park_hook<F: Future>(hook: ParkHook, request: F) -> F::Output {
    ON_PARK.scope(RefCell::new(Some(hook)), request).await
}

/// The current request now waits on other clients: runs its hook, if any.
pub fn parked() {
    let hook = ON_PARK
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten();
    if let Some(hook) = hook {
        hook();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn the_hook_runs_once_when_parked_and_never_outside_its_scope() {
        parked();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        with_park_hook(
            Box::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            }),
            async {
                parked();
                parked();
            },
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let counted = Arc::clone(&runs);
        with_park_hook(
            Box::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            }),
            async {},
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
