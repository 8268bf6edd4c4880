//! The shutdown signal: a `watch` channel whose value turns `true` once;
//! every background task holds a receiver and stops when it fires (or when
//! the sender is gone).

use tokio::sync::watch;

/// Resolves once `shutdown` holds `true` (or its sender is gone). Holds no
/// borrow across awaits, so it can sit in `tokio::select!` of a spawned task.
pub async fn signalled(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_on_true_and_when_the_sender_goes() {
        let (stop, mut stopped) = watch::channel(false);
        let waiting = tokio::spawn(async move { signalled(&mut stopped).await });
        stop.send(true).unwrap();
        waiting.await.unwrap();
        let (stop, mut stopped) = watch::channel(false);
        drop(stop);
        signalled(&mut stopped).await;
    }
}
