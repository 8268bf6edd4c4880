//! Blocking work (disk I/O, fsync, recovery) runs on tokio's blocking pool,
//! never on an async worker thread.

/// Runs `f` on the blocking pool; `Err` carries why the task did not
/// finish (it panicked, or the runtime is shutting down), for the caller to
/// turn into its own error.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())
}
