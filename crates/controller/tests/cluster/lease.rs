//! The Lease elector through the fake API server: one leader at a time, takeover when the
//! holder stops renewing or releases the Lease, and leadership dropped when renewals fail.

use std::time::Duration;

use bylaw_controller::lease::{run_elector, LeaseConfig};
use bylaw_controller::{leadership, Leadership};
use bylaw_runtime::Shutdown;
use bylaw_test_support::apiserver::FakeApiServer;
use serde_json::json;

use crate::eventually;

fn quick(identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry: Duration::from_millis(100),
        ..LeaseConfig::new("bylaw-system", identity)
    }
}

struct Replica {
    leadership: Leadership,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

fn start(server: &FakeApiServer, identity: &str) -> Replica {
    let (sender, leadership) = leadership();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(run_elector(
        server.client(),
        quick(identity),
        sender,
        shutdown.signal(),
    ));
    Replica {
        leadership,
        shutdown,
        task,
    }
}

async fn server() -> FakeApiServer {
    let server = FakeApiServer::start().await;
    server.insert(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bylaw-system"}}),
    );
    server
}

fn holder(server: &FakeApiServer) -> Option<String> {
    server
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            Some("bylaw-system"),
            "bylaw",
        )?
        .pointer("/spec/holderIdentity")?
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_a_released_lease_passes_at_once() {
    let server = server().await;
    let a = start(&server, "a");
    eventually("a leads", || a.leadership.is_leader().then_some(())).await;
    let b = start(&server, "b");
    // b keeps following while a renews (several lease durations' worth of rounds).
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!b.leadership.is_leader(), "two leaders");
    }
    assert_eq!(holder(&server).as_deref(), Some("a"));

    // a shuts down: it releases, b leads well before the lease would have expired.
    let released = std::time::Instant::now();
    a.shutdown.trigger();
    a.task.await.unwrap();
    assert!(!a.leadership.is_leader());
    eventually("b leads", || b.leadership.is_leader().then_some(())).await;
    assert!(
        released.elapsed() < Duration::from_secs(2),
        "{:?}",
        released.elapsed()
    );
    assert_eq!(holder(&server).as_deref(), Some("b"));
    b.shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stops_renewing_is_replaced() {
    let server = server().await;
    let a = start(&server, "a");
    eventually("a leads", || a.leadership.is_leader().then_some(())).await;
    // a hangs (no renewals, no release); b takes over once the lease expires.
    a.task.abort();
    let b = start(&server, "b");
    eventually("b leads after expiry", || {
        b.leadership.is_leader().then_some(())
    })
    .await;
    assert_eq!(holder(&server).as_deref(), Some("b"));
    b.shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_stops_when_the_lease_cannot_be_renewed() {
    let server = server().await;
    let a = start(&server, "a");
    eventually("a leads", || a.leadership.is_leader().then_some(())).await;
    server.stop().await;
    let mut leadership = a.leadership.clone();
    // Within the renew deadline (1 s) plus a round, before the lease (2 s) can pass on.
    tokio::time::timeout(Duration::from_millis(1900), leadership.lost())
        .await
        .expect("leadership dropped before the lease expired");
    a.shutdown.trigger();
}
