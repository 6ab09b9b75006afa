//! HTTPS round trips against a real server on a loopback port, with a fake evaluator.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bylaw_runtime::RuleType;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use hyper::StatusCode;
use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn deny_carries_the_policy_message_and_the_request_uid() {
    let server = TestServer::start().await;
    let reply = server
        .client()
        .post_json(
            "/validate/fail?timeout=10s",
            &review("uid-deny", "default", pod(json!({"deny": "true"}))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    let response = &body["response"];
    assert_eq!(response["uid"], "uid-deny");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["status"], "Failure");
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(response["status"]["message"], DENY_MESSAGE);
    assert!(response.get("patch").is_none());
    server.stop().await;
}

#[tokio::test]
async fn audit_failure_admits_with_a_warning_and_no_status() {
    let server = TestServer::start().await;
    let reply = server
        .client()
        .post_json(
            "/validate/fail",
            &review("uid-audit", "default", pod(json!({"audit": "true"}))),
        )
        .await;
    let response = &reply.json()["response"];
    assert_eq!(response["uid"], "uid-audit");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["warnings"], json!([AUDIT_WARNING]));
    assert!(response.get("status").is_none(), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn mutation_patch_applies_to_the_request_object() {
    let server = TestServer::start().await;
    let object = pod(json!({"app": "web"}));
    let reply = server
        .client()
        .post_json(
            "/mutate/fail",
            &review("uid-mutate", "default", object.clone()),
        )
        .await;
    let response = &reply.json()["response"];
    assert_eq!(response["uid"], "uid-mutate");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = decode_patch(response);
    let mut patched = object;
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(
        patched,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "mutated": "true"}},
            "spec": {"containers": [{"name": "nginx", "image": "registry.example/nginx:1.27"}]}
        })
    );

    // The validating endpoint never returns a patch.
    let reply = server
        .client()
        .post_json(
            "/validate/fail",
            &review("uid-v", "default", pod(json!({}))),
        )
        .await;
    let response = &reply.json()["response"];
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    assert!(response.get("patchType").is_none());
    server.stop().await;
}

#[tokio::test]
async fn v1beta1_reviews_are_answered_in_v1beta1() {
    let server = TestServer::start().await;
    let mut body = review("uid-beta", "default", pod(json!({"deny": "true"})));
    body["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let reply = server.client().post_json("/validate/ignore", &body).await;
    let body = reply.json();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(body["response"]["uid"], "uid-beta");
    assert_eq!(body["response"]["allowed"], false);
    server.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_a_reason_never_a_crash() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut unknown_operation = review("uid-bad", "default", pod(json!({})));
    unknown_operation["request"]["operation"] = json!("PATCH");
    let mut no_uid = review("x", "default", pod(json!({})));
    no_uid["request"].as_object_mut().unwrap().remove("uid");

    // (body, expected HTTP status, text the reason must contain, uid of an AdmissionReview answer)
    let cases: Vec<(Vec<u8>, StatusCode, &str, Option<&str>)> = vec![
        (
            b"{\"request\": ".to_vec(),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
            None,
        ),
        (
            b"\"hello\"".to_vec(),
            StatusCode::BAD_REQUEST,
            "not a JSON object",
            None,
        ),
        (
            serde_json::to_vec(&no_uid).unwrap(),
            StatusCode::BAD_REQUEST,
            "uid is missing",
            None,
        ),
        (
            serde_json::to_vec(&unknown_operation).unwrap(),
            StatusCode::OK,
            "unknown variant `PATCH`",
            Some("uid-bad"),
        ),
    ];
    for (body, status, reason, uid) in cases {
        let reply = client.post_bytes("/validate/fail", body).await;
        assert_eq!(reply.status, status, "{}", reply.text());
        let json = reply.json();
        match uid {
            None => {
                let error = json["error"].as_str().unwrap();
                assert!(
                    error.contains(reason),
                    "{error:?} should contain {reason:?}"
                );
            }
            Some(uid) => {
                let response = &json["response"];
                assert_eq!(response["uid"], uid);
                assert_eq!(response["allowed"], false);
                assert_eq!(response["status"]["code"], 400);
                let message = response["status"]["message"].as_str().unwrap();
                assert!(
                    message.contains(reason),
                    "{message:?} should contain {reason:?}"
                );
            }
        }
    }
    assert_eq!(server.evaluator.evaluations.load(Ordering::SeqCst), 0);

    // Wrong method and unknown path are plain HTTP errors.
    assert_eq!(
        client.get("/validate/fail", &[]).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        client.post_bytes("/nope", b"{}".to_vec()).await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await;
}

#[tokio::test]
async fn oversize_bodies_get_413_whether_announced_or_streamed() {
    let limit = 64 * 1024;
    let server = TestServer::start_with(|config| config.max_body_bytes = limit).await;
    let mut object = pod(json!({}));
    object["metadata"]["annotations"] = json!({"big": "x".repeat(limit)});
    let body = serde_json::to_vec(&review("uid-big", "default", object)).unwrap();

    // With Content-Length.
    let reply = server
        .client()
        .post_bytes("/validate/fail", body.clone())
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let error = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("65536 byte limit"), "{error}");

    // Chunked, with no length announced: the limit applies while reading.
    let mut connection = server.client().connect(false).await.unwrap();
    let (mut sender, channel) = http_body_util::channel::Channel::<Bytes>::new(4);
    let chunks: Vec<Bytes> = body.chunks(8 * 1024).map(Bytes::copy_from_slice).collect();
    let feeder = tokio::spawn(async move {
        for chunk in chunks {
            if sender.send(Frame::data(chunk)).await.is_err() {
                break;
            }
        }
    });
    let reply = connection
        .send("POST", "/validate/fail", channel.boxed(), &[])
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    feeder.abort();

    // A body just under the limit is still served.
    let small = serde_json::to_vec(&review("uid-small", "default", pod(json!({})))).unwrap();
    assert!(small.len() < limit);
    let reply = server.client().post_bytes("/validate/fail", small).await;
    assert_eq!(reply.json()["response"]["allowed"], true);
    assert_eq!(server.evaluator.evaluations.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn evaluation_errors_follow_the_failure_policy_with_opaque_messages() {
    for inline in [false, true] {
        errors_follow_the_failure_policy(inline).await;
    }
}

async fn errors_follow_the_failure_policy(inline: bool) {
    let server = TestServer::start().await;
    server.evaluator.inline.store(inline, Ordering::SeqCst);
    let client = server.client();
    for label in ["error", "panic"] {
        for (endpoint, allowed) in [
            ("/validate/fail", false),
            ("/validate/ignore", true),
            ("/mutate/fail", false),
            ("/mutate/ignore", true),
        ] {
            let reply = client
                .post_json(
                    endpoint,
                    &review("uid-err", "default", pod(json!({label: "true"}))),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK);
            let response = reply.json()["response"].clone();
            assert_eq!(response["uid"], "uid-err");
            assert_eq!(
                response["allowed"], allowed,
                "{label} on {endpoint}: {response}"
            );
            let text = response.to_string();
            assert!(text.contains("bylaw could not evaluate policies"), "{text}");
            assert!(
                !text.contains(SECRET_ERROR_TEXT),
                "internal details leaked: {text}"
            );
            assert!(!text.contains("evaluator bug"), "panic text leaked: {text}");
            if allowed {
                assert!(response.get("patch").is_none());
                assert!(response["warnings"][0]
                    .as_str()
                    .unwrap()
                    .contains("failure policy is Ignore"));
            } else {
                assert_eq!(response["status"]["code"], 500);
            }
        }
    }
    let metrics = server.metrics.encode_openmetrics().unwrap();
    assert!(metrics.contains("bylaw_admission_failures_total{request_webhook=\"ValidatingWebhookConfiguration\",failure_policy=\"fail\",reason=\"internal\"} 1"), "{metrics}");
    assert!(metrics.contains("bylaw_admission_failures_total{request_webhook=\"MutatingWebhookConfiguration\",failure_policy=\"ignore\",reason=\"panic\"} 1"), "{metrics}");
    let inline_evaluations = server.evaluator.inline_evaluations.load(Ordering::SeqCst);
    assert_eq!(inline_evaluations, if inline { 8 } else { 0 });
    server.stop().await;
}

/// Counters, without the timings that differ between any two runs, sorted (series come in
/// the order they were created).
fn counters(metrics: &str) -> Vec<String> {
    let mut lines: Vec<String> = metrics
        .lines()
        .filter(|line| line.starts_with("bylaw_") && !line.contains("_seconds"))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// The same reviews answered on the async thread and on the blocking pool: the same answers,
/// the same counters.
#[tokio::test]
async fn inline_and_pool_evaluations_answer_and_count_alike() {
    let mut runs = Vec::new();
    for inline in [false, true] {
        let server = TestServer::start().await;
        server.evaluator.inline.store(inline, Ordering::SeqCst);
        let client = server.client();
        let mut answers = Vec::new();
        for labels in [
            json!({}),
            json!({"deny": "true"}),
            json!({"audit": "true"}),
            json!({"error": "true"}),
            json!({"panic": "true"}),
        ] {
            for endpoint in [
                "/validate/fail",
                "/validate/ignore",
                "/mutate/fail",
                "/validate/fail-policies",
            ] {
                let reply = client
                    .post_json(
                        endpoint,
                        &review("uid-same", "default", pod(labels.clone())),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::OK);
                answers.push(reply.json());
            }
        }
        assert_eq!(
            server.evaluator.inline_evaluations.load(Ordering::SeqCst),
            if inline { 20 } else { 0 }
        );
        let metrics = server.metrics.encode_openmetrics().unwrap();
        runs.push((answers, counters(&metrics)));
        server.stop().await;
    }
    let (pool, inline) = (&runs[0], &runs[1]);
    assert_eq!(pool.0, inline.0);
    assert!(
        pool.1.iter().any(|l| l.contains("reason=\"panic\"")),
        "{:?}",
        pool.1
    );
    assert_eq!(pool.1, inline.1);
}

/// Moves paused time forward in small steps until `task` finishes. Tokio does not auto-advance
/// paused time while a `spawn_blocking` task runs, so the test advances it by hand.
/// On a loaded machine the blocking task may need real time too: once 40 s of paused time have
/// passed, the test waits (up to a minute of real time) without moving the clock further.
async fn advance_until_finished<T>(task: tokio::task::JoinHandle<T>) -> T {
    let started = std::time::Instant::now();
    let mut advanced = 0;
    while !task.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "request did not finish within 40s of paused time"
        );
        if advanced < 400 {
            tokio::time::advance(Duration::from_millis(100)).await;
            advanced += 1;
        } else {
            std::thread::sleep(Duration::from_millis(5));
            tokio::task::yield_now().await;
        }
    }
    task.await.unwrap()
}

/// The evaluator blocks past the deadline; paused time lets the test move the clock past it.
#[tokio::test(start_paused = true)]
async fn deadline_overrun_follows_each_failure_policy() {
    let server = TestServer::start().await;
    let client = server.client();
    for (endpoint, allowed) in [
        ("/validate/fail?timeout=3s", false),
        ("/validate/ignore?timeout=3s", true),
        ("/mutate/fail?timeout=3s", false),
        ("/mutate/ignore?timeout=3s", true),
    ] {
        let request = tokio::spawn({
            let client = client.clone();
            async move {
                let started = tokio::time::Instant::now();
                let reply = client
                    .post_json(
                        endpoint,
                        &review("uid-slow", "default", pod(json!({"slow": "true"}))),
                    )
                    .await;
                (reply, started.elapsed())
            }
        });
        // The evaluation is running (and blocked): only the deadline can answer now.
        server.evaluator.slow_started.notified().await;
        let (reply, waited) = advance_until_finished(request).await;
        let response = reply.json()["response"].clone();
        assert_eq!(response["uid"], "uid-slow");
        assert_eq!(response["allowed"], allowed, "{endpoint}: {response}");
        assert!(
            response.to_string().contains("within the webhook timeout"),
            "{response}"
        );
        assert!(response.get("patch").is_none());
        // 3s timeout minus the 1s margin: answered at the 2s deadline, before the API server's
        // 3s are up (the test clock moves in 100ms steps, so allow some slack above 2s).
        assert!(
            waited >= Duration::from_secs(2) && waited < Duration::from_secs(3),
            "{waited:?}"
        );
    }
    let metrics = server.metrics.encode_openmetrics().unwrap();
    for expected in [
        "bylaw_admission_failures_total{request_webhook=\"ValidatingWebhookConfiguration\",failure_policy=\"fail\",reason=\"deadline_exceeded\"} 1",
        "bylaw_admission_failures_total{request_webhook=\"MutatingWebhookConfiguration\",failure_policy=\"ignore\",reason=\"deadline_exceeded\"} 1",
    ] {
        assert!(metrics.contains(expected), "{expected} in {metrics}");
    }
    server.stop().await;
}

/// With one evaluation slot busy, the next review waits for it only until its own deadline;
/// an evaluator that could answer on the async thread does not get to without a free slot.
#[tokio::test(start_paused = true)]
async fn concurrency_limit_makes_extra_reviews_wait_then_fail_by_policy() {
    for inline in [false, true] {
        extra_reviews_wait_then_fail(inline).await;
    }
}

async fn extra_reviews_wait_then_fail(inline: bool) {
    let server = TestServer::start_with(|config| {
        config.max_concurrency = std::num::NonZeroUsize::new(1);
    })
    .await;
    server.evaluator.inline.store(inline, Ordering::SeqCst);
    let client = server.client();
    let busy = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post_json(
                    "/validate/ignore",
                    &review("uid-busy", "default", pod(json!({"slow": "true"}))),
                )
                .await
        }
    });
    server.evaluator.slow_started.notified().await;
    let queued = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post_json(
                    "/validate/fail?timeout=5s",
                    &review("uid-queued", "default", pod(json!({}))),
                )
                .await
        }
    });
    let reply = advance_until_finished(queued).await;
    let response = &reply.json()["response"];
    assert_eq!(response["uid"], "uid-queued");
    assert_eq!(response["allowed"], false);
    // Only the slow review reached the evaluator.
    assert_eq!(server.evaluator.evaluations.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.evaluator.inline_evaluations.load(Ordering::SeqCst),
        0
    );
    let metrics = server.metrics.encode_openmetrics().unwrap();
    assert!(
        metrics.contains("failure_policy=\"fail\",reason=\"overloaded\"} 1"),
        "{metrics}"
    );
    server.evaluator.gate.open();
    assert_eq!(
        advance_until_finished(busy).await.json()["response"]["uid"],
        "uid-busy"
    );
    server.stop().await;
}

#[tokio::test]
async fn filtered_resources_are_admitted_without_evaluation() {
    let server = TestServer::start_with(|config| {
        config.own_namespace = Some("policy-engine".to_owned());
    })
    .await;
    let client = server.client();
    for namespace in ["kube-system", "policy-engine"] {
        let reply = client
            .post_json(
                "/validate/fail",
                &review("uid-f", namespace, pod(json!({"deny": "true"}))),
            )
            .await;
        assert_eq!(reply.json()["response"]["allowed"], true, "{namespace}");
    }
    assert_eq!(server.evaluator.evaluations.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test]
async fn readyz_reflects_the_evaluator_and_healthz_is_always_up() {
    let server = TestServer::start().await;
    let client = server.client();
    server.evaluator.ready.store(false, Ordering::SeqCst);
    assert_eq!(
        client.get("/readyz", &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(client.get("/healthz", &[]).await.status, StatusCode::OK);
    server.evaluator.ready.store(true, Ordering::SeqCst);
    let reply = client.get("/readyz", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "ok");
    server.stop().await;
}

#[tokio::test]
async fn policy_validation_denies_invalid_policies_with_field_paths() {
    let server = TestServer::start().await;
    let client = server.client();
    let policy = |rules: Value| {
        let mut body = review(
            "uid-pol",
            "",
            json!({
                "apiVersion": "kyverno.io/v1",
                "kind": "ClusterPolicy",
                "metadata": {"name": "p"},
                "spec": {"rules": rules}
            }),
        );
        body["request"]["kind"] =
            json!({"group": "kyverno.io", "version": "v1", "kind": "ClusterPolicy"});
        body
    };
    let reply = client
        .post_json("/policies/validate", &policy(json!([])))
        .await;
    let response = &reply.json()["response"];
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "invalid policy: spec.rules: at least one rule is required"
    );
    let reply = client
        .post_json("/policies/validate", &policy(json!([{"name": "r"}])))
        .await;
    assert_eq!(reply.json()["response"]["allowed"], true);
    server.stop().await;
}

#[tokio::test]
async fn http2_is_negotiated_and_serves_concurrent_streams() {
    let server = TestServer::start().await;
    let connection = server.client().connect(true).await.unwrap();
    assert_eq!(connection.alpn.as_deref(), Some(&b"h2"[..]));
    let sender = connection.sender_h2();
    let mut streams = Vec::new();
    for i in 0..16 {
        let mut sender = sender.clone();
        streams.push(tokio::spawn(async move {
            let labels = if i % 2 == 0 {
                json!({"deny": "true"})
            } else {
                json!({})
            };
            let body =
                serde_json::to_vec(&review(&format!("uid-{i}"), "default", pod(labels))).unwrap();
            let request = hyper::Request::post("https://localhost/validate/fail")
                .header("content-type", "application/json")
                .body(full(body))
                .unwrap();
            sender.ready().await.unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.version(), hyper::Version::HTTP_2);
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            (i, value["response"].clone())
        }));
    }
    for stream in streams {
        let (i, response) = stream.await.unwrap();
        assert_eq!(response["uid"], format!("uid-{i}"));
        assert_eq!(response["allowed"], i % 2 != 0);
    }
    server.stop().await;
}

#[tokio::test]
async fn http1_keep_alive_serves_many_requests_on_one_connection() {
    let server = TestServer::start().await;
    let mut connection = server.client().connect(false).await.unwrap();
    assert_eq!(connection.alpn.as_deref(), Some(&b"http/1.1"[..]));
    for i in 0..5 {
        let body =
            serde_json::to_vec(&review(&format!("uid-{i}"), "default", pod(json!({})))).unwrap();
        let reply = connection
            .send("POST", "/validate/fail", full(body), &[])
            .await
            .unwrap();
        assert_eq!(reply.json()["response"]["uid"], format!("uid-{i}"));
    }
    server.stop().await;
}

/// A raw TLS client that sends garbage and hangs up must not disturb the server.
#[tokio::test]
async fn broken_clients_do_not_disturb_the_server() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut tls = client.tls(b"http/1.1").await.unwrap();
    tls.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let mut buffer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buffer)).await;
    // A plain-TCP client that never speaks TLS.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drop(tcp);
    assert_eq!(client.get("/healthz", &[]).await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn certificate_rotation_is_picked_up_without_failing_requests() {
    let server = TestServer::start_with(|config| {
        config.tls_reload_interval = Duration::from_millis(50);
    })
    .await;
    let client = server.client();
    let first = cert_der(server.first_cert.cert_pem.as_bytes());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..3 {
        let client = client.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, Vec::new());
            // Worker 0 keeps one connection open across the rotation; the others reconnect.
            let mut kept = if worker == 0 {
                Some(client.connect(false).await.unwrap())
            } else {
                None
            };
            while !stop.load(Ordering::SeqCst) {
                let body =
                    serde_json::to_vec(&review("uid-rot", "default", pod(json!({})))).unwrap();
                let result = if let Some(kept) = kept.as_mut() {
                    kept.send("POST", "/validate/fail", full(body), &[]).await
                } else {
                    match client.connect(worker == 2).await {
                        Ok(mut connection) => {
                            connection
                                .send("POST", "/validate/fail", full(body), &[])
                                .await
                        }
                        Err(e) => Err(e),
                    }
                };
                match result {
                    Ok(reply) if reply.json()["response"]["allowed"] == true => ok += 1,
                    Ok(reply) => failed.push(reply.text()),
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = server.ca.issue(&names()).unwrap();
    second.write_files(server.cert_dir.path()).unwrap();
    let second_der = cert_der(second.cert_pem.as_bytes());
    assert_ne!(first, second_der);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let connection = client.connect(false).await.unwrap();
        if connection.peer_certificate == second_der {
            break;
        }
        assert_eq!(
            connection.peer_certificate, first,
            "served an unknown certificate"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "new certificate never served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for worker in workers {
        let (ok, failed) = worker.await.unwrap();
        assert!(
            failed.is_empty(),
            "requests failed during rotation: {failed:?}"
        );
        assert!(ok > 0);
        total += ok;
    }
    assert!(total >= 3);
    server.stop().await;
}

#[tokio::test]
async fn metrics_exposition_is_valid_and_has_every_family() {
    let server = TestServer::start().await;
    let client = server.client();
    client
        .post_json(
            "/validate/fail",
            &review("m1", "default", pod(json!({"deny": "true"}))),
        )
        .await;
    client
        .post_json("/mutate/fail", &review("m2", "default", pod(json!({}))))
        .await;
    client
        .post_json(
            "/validate/ignore",
            &review("m3", "default", pod(json!({"error": "true"}))),
        )
        .await;
    // Families fed by other components, so that every family appears.
    let policy = bylaw_runtime::metrics::PolicyIdentity {
        name: "deny-label",
        namespace: None,
        enforce: true,
        background: true,
    };
    server
        .metrics
        .set_rule_info(&policy, "check-deny", RuleType::Validate, true, true);
    server
        .metrics
        .record_policy_change(&policy, bylaw_runtime::metrics::PolicyChange::Create);

    let reply = client
        .get(
            "/metrics",
            &[(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            )],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let openmetrics = reply.text();
    let families =
        openmetrics::check(&openmetrics).unwrap_or_else(|e| panic!("{e}\n{openmetrics}"));
    println!(
        "metrics check: strict OpenMetrics checker passed ({} families)",
        families.len()
    );
    for (family, kind) in [
        ("bylaw_admission_requests", "counter"),
        ("bylaw_admission_review_duration_seconds", "histogram"),
        ("bylaw_policy_results", "counter"),
        ("bylaw_policy_execution_duration_seconds", "histogram"),
        ("bylaw_policy_rule_info_total", "gauge"),
        ("bylaw_policy_changes", "counter"),
        ("bylaw_admission_failures", "counter"),
        ("bylaw_info", "gauge"),
    ] {
        assert_eq!(
            families.get(family).map(String::as_str),
            Some(kind),
            "{family} in\n{openmetrics}"
        );
    }
    assert!(openmetrics.contains(
        "bylaw_admission_requests_total{request_allowed=\"false\",request_webhook=\"ValidatingWebhookConfiguration\",resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"create\"} 1"
    ));
    assert!(openmetrics.contains("rule_name=\"mutated\",rule_type=\"mutate\",rule_result=\"pass\",rule_execution_cause=\"admission_request\""));
    // Sub-millisecond buckets exist.
    assert!(openmetrics.contains("bylaw_admission_review_duration_seconds_bucket{le=\"0.0001\""));
    // Bounded labels only: no uid, resource name or error text.
    for forbidden in ["m1", "\"web\"", SECRET_ERROR_TEXT] {
        assert!(
            !openmetrics.contains(forbidden),
            "{forbidden} leaked into metrics"
        );
    }

    // Without an OpenMetrics Accept header, the classic text format is served.
    let reply = client.get("/metrics", &[]).await;
    assert_eq!(
        reply.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let classic = reply.text();
    assert!(classic.contains("# TYPE bylaw_admission_requests_total counter"));
    match promtool_check(&classic) {
        Some(problems) => {
            // Kyverno names this gauge with a `_total` suffix; bylaw keeps the name for dashboards.
            let unexpected: Vec<&str> = problems
                .lines()
                .filter(|line| !line.trim().is_empty())
                .filter(|line| {
                    !(line.starts_with("bylaw_policy_rule_info_total ")
                        && line.contains("non-counter metrics should not have \"_total\" suffix"))
                })
                .collect();
            assert!(
                unexpected.is_empty(),
                "promtool problems: {unexpected:?}\n{classic}"
            );
            println!(
                "metrics check: promtool check metrics passed (known Kyverno naming lint only)"
            );
        }
        None => {
            let families = openmetrics::check_classic(&classic).unwrap_or_else(|e| {
                panic!(
                    "{e}
{classic}"
                )
            });
            assert_eq!(
                families
                    .get("bylaw_admission_requests_total")
                    .map(String::as_str),
                Some("counter")
            );
            println!(
                "metrics check: promtool not on PATH; strict classic-format checker passed ({} families)",
                families.len()
            );
        }
    }
    server.stop().await;
}

fn cert_der(pem: &[u8]) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem).unwrap()
}

/// Runs `promtool check metrics`; `None` when promtool is not installed, else its lint output.
/// Parse errors fail the test.
fn promtool_check(exposition: &str) -> Option<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => panic!("cannot run promtool: {error}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // promtool exits 0 when clean, 3 for lint problems, 1 for parse errors.
    match output.status.code() {
        Some(0) | Some(3) => Some(text),
        other => panic!("promtool check metrics failed ({other:?}): {text}\n{exposition}"),
    }
}

/// The fallback checker must actually reject broken expositions, or the metrics test proves nothing.
#[test]
fn strict_metrics_checker_rejects_malformed_expositions() {
    let good = "# HELP a A.\n# TYPE a counter\na_total{x=\"1\"} 2\n# EOF\n";
    assert!(openmetrics::check(good).is_ok());
    let bad = [
        ("no EOF", "# TYPE a counter\na_total 1\n"),
        ("counter without _total", "# TYPE a counter\na 1\n# EOF\n"),
        ("sample before TYPE", "a_total 1\n# EOF\n"),
        ("bad label escape", "# TYPE a gauge\na{x=\"\\q\"} 1\n# EOF\n"),
        ("unquoted label", "# TYPE a gauge\na{x=1} 1\n# EOF\n"),
        ("negative counter", "# TYPE a counter\na_total -1\n# EOF\n"),
        ("bad value", "# TYPE a gauge\na one\n# EOF\n"),
        ("duplicate series", "# TYPE a gauge\na 1\na 2\n# EOF\n"),
        (
            "interleaved family",
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# HELP a again\n# EOF\n",
        ),
        (
            "decreasing buckets",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n# EOF\n",
        ),
        (
            "no +Inf bucket",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\nh_sum 1\n# EOF\n",
        ),
        ("unit not in name", "# TYPE a gauge\n# UNIT a seconds\na 1\n# EOF\n"),
    ];
    for (what, text) in bad {
        assert!(openmetrics::check(text).is_err(), "{what} was accepted");
    }
    assert!(openmetrics::check_classic("# TYPE a_total counter\na_total 1\n").is_ok());
    assert!(openmetrics::check_classic("# TYPE a info\na_info 1\n").is_err());
    assert!(openmetrics::check_classic(good).is_err());
}
