//! `bylaw serve` as a child process, talked to over HTTPS with its development CA.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

pub struct Serve {
    child: Child,
    addr: String,
    tls: Arc<rustls::ClientConfig>,
    /// What the server printed after it started listening (its log goes to stdout).
    output: Arc<std::sync::Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// Starts `bylaw serve ARGS…` from an async test and waits (up to 30 s) until `/readyz` answers
/// 200: in-cluster mode is ready once its policies and context are listed.
#[allow(dead_code)]
pub async fn start_ready(args: &[OsString]) -> Arc<Serve> {
    let args = args.to_vec();
    let serve = Arc::new(
        tokio::task::spawn_blocking(move || Serve::start(&args))
            .await
            .unwrap(),
    );
    let started = std::time::Instant::now();
    loop {
        let probe = serve.clone();
        let status = tokio::task::spawn_blocking(move || probe.request("GET", "/readyz", b"").0)
            .await
            .unwrap();
        if status == 200 {
            return serve;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "never ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl Serve {
    /// Starts `bylaw serve ARGS… --dev-tls --listen 127.0.0.1:0` and waits until it listens.
    pub fn start(args: &[OsString]) -> Serve {
        Self::start_on(args, "127.0.0.1:0")
    }

    /// Like [`Serve::start`], listening on `listen`.
    pub fn start_on(args: &[OsString], listen: &str) -> Serve {
        Self::launch(args, listen, "warn")
    }

    /// Like [`Serve::start`] with `--log-filter FILTER`; see [`Serve::log`].
    #[allow(dead_code)]
    pub fn start_logging(args: &[OsString], filter: &str) -> Serve {
        Self::launch(args, "127.0.0.1:0", filter)
    }

    /// Waits (up to 20 s) until `/readyz` answers 200.
    #[allow(dead_code)]
    pub fn wait_ready(&self) {
        let started = Instant::now();
        while self.request("GET", "/readyz", b"").0 != 200 {
            assert!(started.elapsed() < Duration::from_secs(20), "never ready");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server has logged since it started listening.
    #[allow(dead_code)]
    pub fn log(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn launch(args: &[OsString], listen: &str, filter: &str) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_bylaw"))
            .arg("serve")
            .args(args)
            .args(["--dev-tls", "--dev-tls-dir"])
            .arg(dir.path())
            .args(["--listen", listen, "--log-filter", filter])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("bylaw serve exited before listening")
                .unwrap();
            if let Some(addr) = line.strip_prefix("bylaw serve: listening on https://") {
                break addr.to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        let output = Arc::new(std::sync::Mutex::new(String::new()));
        let collected = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut output = collected
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                output.push_str(&line);
                output.push('\n');
            }
        });

        let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Serve {
            child,
            addr,
            tls: Arc::new(tls),
            output,
            _dir: dir,
        }
    }

    /// One HTTP/1.1 request on a fresh TLS connection; returns the status and body.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let conn = rustls::ClientConnection::new(
            self.tls.clone(),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let tcp = TcpStream::connect(&self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut raw = Vec::new();
        if let Err(error) = stream.read_to_end(&mut raw) {
            // A peer that closes without close_notify still delivered the whole response.
            assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
        }
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill").args(["-TERM", &pid]).status();
        if !signalled.is_ok_and(|s| s.success()) {
            self.child.kill().unwrap();
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "bylaw serve exited with {status}");
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "bylaw serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    /// A test that fails before `stop` must not leave a server running (it would hold the
    /// test harness open and keep answering a real cluster's webhooks).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
