//! The webhook under hostile clients (loopback only, bounded loops): slow bodies cannot hold
//! more memory than the body slots allow, and reviews keep being answered.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use hyper::StatusCode;
use serde_json::json;
use support::{pod, review, TestServer};

/// Bodies are read only with a body slot (four per evaluation slot): clients that start a body
/// and never finish it fill the slots, and further reviews are refused with 503 — which the
/// API server turns into the webhook's failurePolicy — without their bodies being read. Once
/// the slow clients go, reviews are served again.
#[tokio::test]
async fn slow_bodies_hold_body_slots_not_unbounded_memory() {
    let server = TestServer::start_with(|config| {
        config.max_concurrency = std::num::NonZeroUsize::new(1);
    })
    .await;
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut connection = server.client().connect(false).await.unwrap();
        let (mut sender, channel) = http_body_util::channel::Channel::<Bytes>::new(1);
        sender
            .send(Frame::data(Bytes::from_static(b"{\"apiVersion\":")))
            .await
            .unwrap();
        let request = tokio::spawn(async move {
            connection
                .send("POST", "/validate/fail?timeout=30s", channel.boxed(), &[])
                .await
        });
        stalled.push((sender, request));
    }
    // Let the four reach the server and take their slots.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = serde_json::to_vec(&review("uid-late", "default", pod(json!({})))).unwrap();
    let started = std::time::Instant::now();
    let reply = server
        .client()
        .post_bytes("/validate/fail?timeout=2s", body.clone())
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.evaluator.evaluations.load(Ordering::SeqCst), 0);

    // The slow clients give up: their slots come back.
    for (sender, request) in stalled {
        drop(sender);
        request.abort();
    }
    let mut served = false;
    for _ in 0..50 {
        let reply = server
            .client()
            .post_bytes("/validate/fail?timeout=2s", body.clone())
            .await;
        if reply.status == StatusCode::OK {
            assert_eq!(reply.json()["response"]["uid"], "uid-late");
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served,
        "reviews are served again once the slow clients left"
    );
    server.stop().await;
}

/// A body that trickles holds its slot for at most two seconds, not the review's deadline: a
/// slow client gets 408 and the slot goes to the next review.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_two_seconds_frees_its_slot() {
    let server = TestServer::start_with(|config| {
        config.max_concurrency = std::num::NonZeroUsize::new(1);
        config.body_read_timeout = Duration::from_secs(2);
    })
    .await;
    let mut connection = server.client().connect(false).await.unwrap();
    let (mut sender, channel) = http_body_util::channel::Channel::<Bytes>::new(1);
    sender
        .send(Frame::data(Bytes::from_static(b"{\"apiVersion\":")))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let reply = connection
        .send("POST", "/validate/fail?timeout=30s", channel.boxed(), &[])
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::REQUEST_TIMEOUT,
        "{}",
        reply.text()
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    drop(sender);
    server.stop().await;
}

/// HTTP/2 rapid reset (CVE-2023-44487): a client that opens streams and resets them at once,
/// faster than they are served, has its connection closed (GOAWAY ENHANCE_YOUR_CALM) long before
/// it has sent 10,000; a new connection is served as usual. Without the server's limit the
/// 10,000 streams go through and the connection stays open.
#[tokio::test]
async fn a_client_resetting_http2_streams_in_a_loop_is_sent_away() {
    let server = TestServer::start().await;
    let tls = server.client().tls(b"h2").await.unwrap();
    let (sender, connection) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method("POST")
        .uri("https://localhost/validate/fail?timeout=10s")
        .body(())
        .unwrap();
    let mut streams = 0u32;
    // The block owns the sender: dropping it lets the connection task finish.
    {
        let mut sender = sender;
        while streams < 10_000 {
            sender = match sender.ready().await {
                Ok(ready) => ready,
                Err(_) => break,
            };
            let Ok((_response, mut body)) = sender.send_request(request.clone(), false) else {
                break;
            };
            // HEADERS without END_STREAM, then RST_STREAM: queued together, written together.
            body.send_reset(h2::Reason::CANCEL);
            streams += 1;
            if streams.is_multiple_of(100) {
                tokio::task::yield_now().await;
            }
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the server ends the connection")
        .unwrap();
    assert!(
        streams < 10_000,
        "{streams} streams before the server reacted"
    );
    // The server sends GOAWAY ENHANCE_YOUR_CALM and closes; a client still writing its queued
    // frames may see the closed socket before it reads the GOAWAY.
    let error = ended.expect_err("the server ends the connection, the client did not");
    let sent_away = error.is_go_away()
        && error.is_remote()
        && error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM);
    assert!(sent_away || error.is_io(), "{error:?}");

    let body = serde_json::to_vec(&review("uid-after", "default", pod(json!({})))).unwrap();
    let mut connection = server.client().connect(true).await.unwrap();
    let reply = connection
        .send(
            "POST",
            "/validate/fail?timeout=10s",
            http_body_util::Full::new(Bytes::from(body)).boxed(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["response"]["uid"], "uid-after");
    server.stop().await;
}
