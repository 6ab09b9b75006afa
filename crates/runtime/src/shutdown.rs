//! Graceful shutdown: one trigger, many listeners.

use tokio::sync::watch;

/// Owns the shutdown trigger. Dropping it also signals shutdown.
#[derive(Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

/// A cloneable future-like handle that resolves once shutdown was triggered.
#[derive(Clone, Debug)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A new, untriggered shutdown.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(false);
        Shutdown { tx }
    }

    /// A handle for one component to wait on.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            rx: self.tx.subscribe(),
        }
    }

    /// Tells every component to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Triggers on SIGINT or SIGTERM (Ctrl-C on other platforms).
    pub fn trigger_on_os_signal(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            os_termination_signal().await;
            tracing::info!("termination signal received, shutting down");
            self.trigger();
        })
    }
}

impl ShutdownSignal {
    /// True once shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until shutdown is triggered (or its owner dropped).
    pub async fn wait(mut self) {
        // An error means the sender is gone, which also means stop.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// Resolves on SIGINT or SIGTERM. If signal handlers cannot be installed it never resolves (and
/// logs why), so a server keeps running rather than exiting at once.
pub async fn os_termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot install signal handlers");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot install Ctrl-C handler");
            std::future::pending::<()>().await;
        }
    }
}

/// Runs `tick` every `interval` (at least 10 ms; the first tick at once, a late tick delayed
/// rather than bunched) until `shutdown` fires. File watchers (policies, certificates) use it.
pub async fn every<F, Fut>(interval: std::time::Duration, shutdown: ShutdownSignal, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(interval.max(std::time::Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticker.tick() => {}
        }
        tick().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn every_signal_resolves_after_trigger_or_drop() {
        let shutdown = Shutdown::new();
        let first = shutdown.signal();
        let second = shutdown.signal();
        assert!(!first.is_triggered());
        let waiting = tokio::spawn(first.clone().wait());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(first.is_triggered());

        let dropped = Shutdown::new();
        let late = dropped.signal();
        drop(dropped);
        tokio::time::timeout(Duration::from_secs(1), late.wait())
            .await
            .unwrap();
        drop(second);
    }
}
