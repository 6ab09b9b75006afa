//! Who does the singleton work. Every replica serves admission; work that must happen once per
//! cluster (webhook configurations, certificates, policy status, report writes, scans) runs only
//! while this replica holds the `coordination.k8s.io/v1` Lease. The elector drives a
//! [`Leadership`] handle; the controllers read it and stop their singleton work the moment it
//! turns false.

use tokio::sync::watch;

/// Sets the leadership state; owned by the lease elector (or by `always`).
#[derive(Debug)]
pub struct LeadershipSender {
    tx: watch::Sender<bool>,
}

/// Read side of the leadership state: cheap to clone, one per controller.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<bool>,
}

/// A new state that starts as "not leader".
pub fn leadership() -> (LeadershipSender, Leadership) {
    let (tx, rx) = watch::channel(false);
    (LeadershipSender { tx }, Leadership { rx })
}

impl LeadershipSender {
    /// Publishes a change; readers waiting in [`Leadership::acquired`] or [`Leadership::lost`]
    /// wake up. Setting the current value again wakes nobody.
    pub fn set(&self, leader: bool) {
        self.tx.send_if_modified(|current| {
            let changed = *current != leader;
            *current = leader;
            changed
        });
    }

    /// A new reader of this state.
    pub fn subscribe(&self) -> Leadership {
        Leadership {
            rx: self.tx.subscribe(),
        }
    }
}

impl Leadership {
    /// Always the leader: a single replica without a Lease (standalone mode, tests).
    pub fn always() -> Leadership {
        let (tx, rx) = watch::channel(true);
        // The receiver keeps the value after the sender is gone; `lost` then never returns.
        drop(tx);
        Leadership { rx }
    }

    /// Whether this replica holds the Lease now.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Returns once this replica is the leader (at once if it already is).
    pub async fn acquired(&mut self) {
        if self.rx.wait_for(|leader| *leader).await.is_err() {
            // The elector is gone: without it leadership can never be gained.
            std::future::pending::<()>().await;
        }
    }

    /// Returns once this replica is no longer the leader (at once if it is not).
    pub async fn lost(&mut self) {
        if self.rx.wait_for(|leader| !*leader).await.is_err() {
            // The elector is gone; `always()` ends here: the state can no longer change.
            if !*self.rx.borrow() {
                return;
            }
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn readers_follow_the_elector() {
        let (tx, mut reader) = leadership();
        assert!(!reader.is_leader());
        let waiter = tokio::spawn({
            let mut reader = reader.clone();
            async move { reader.acquired().await }
        });
        tx.set(true);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(reader.is_leader());
        let mut late = tx.subscribe();
        assert!(late.is_leader());
        tx.set(false);
        tokio::time::timeout(Duration::from_secs(5), reader.lost())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), late.lost())
            .await
            .unwrap();
        assert!(!late.is_leader());
    }

    #[tokio::test]
    async fn always_is_leader_and_never_loses_it() {
        let mut always = Leadership::always();
        assert!(always.is_leader());
        tokio::time::timeout(Duration::from_secs(1), always.acquired())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), always.lost())
                .await
                .is_err(),
            "`always` must never report leadership lost"
        );
    }
}
