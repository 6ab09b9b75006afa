//! `apiCall.service`: a policy asks bylaw to call a URL. That is a server-side request made on a
//! policy author's behalf, so it is held tight (Kyverno's advisories about this feature are the
//! reason):
//!
//! * off unless `--allow-service-calls` turns it on;
//! * `http` and `https` only, no user info in the URL, no redirects followed;
//! * never to loopback, link-local (which holds the cloud metadata services), unspecified,
//!   broadcast or multicast addresses, nor to well-known metadata host names — checked on the
//!   name first, then on every address the name resolves to (resolution bounded by the call's
//!   timeout), and the connection goes to the address that was checked, so a second DNS answer
//!   cannot swap it;
//! * bylaw's service-account token is never sent: only the headers the policy sets;
//! * bounded in time (one timeout for resolution, connection and response) and response size.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bylaw_engine::context::{ApiCall, ContextError};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;

/// Host names of cloud metadata services, refused whatever they resolve to.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Why a URL may not be called.
fn refuse(reason: impl std::fmt::Display) -> ContextError {
    ContextError(format!("apiCall.service refused: {reason}"))
}

/// Whether bylaw may connect to `ip` on a policy's behalf.
pub fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let segments = v6.segments();
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if segments.first().is_some_and(|s| s & 0xffc0 == 0xfe80) {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_link_local() {
        Some("a link-local address (cloud metadata services live there)")
    } else if ip.is_unspecified() || ip.octets().first() == Some(&0) {
        Some("the unspecified address")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("a broadcast or multicast address")
    } else if ip == Ipv4Addr::new(100, 100, 100, 200) {
        Some("a cloud metadata address")
    } else {
        None
    }
}

/// A URL that passed the checks that need no DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedUrl {
    /// `http` or `https`.
    pub https: bool,
    /// Host name or address, without brackets.
    pub host: String,
    /// Port (default 80/443).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path_and_query: String,
}

/// Checks the parts of a URL that need no DNS lookup.
pub fn check_url(url: &str) -> Result<CheckedUrl, ContextError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| refuse(format!("{url:?} is not a URL: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(refuse(format!(
                "{url:?}: only http and https URLs are called"
            )))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| refuse(format!("{url:?} has no host")))?;
    if authority.as_str().contains('@') {
        return Err(refuse(format!(
            "{url:?}: user info in the URL is not allowed"
        )));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err(refuse(format!("{url:?} has no host")));
    }
    if host == "localhost"
        || host.ends_with(".localhost")
        || METADATA_HOSTS.contains(&host.as_str())
    {
        return Err(refuse(format!("{host} is a local or metadata host")));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if let Some(what) = forbidden_address(ip) {
            return Err(refuse(format!("{host} is {what}")));
        }
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path_and_query = uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    Ok(CheckedUrl {
        https,
        host,
        port,
        path_and_query,
    })
}

/// Picks the first resolved address, refusing the call when any of them is forbidden (a name
/// that resolves to a metadata address among others is not "mostly fine").
pub fn vet_addresses(host: &str, addresses: &[SocketAddr]) -> Result<SocketAddr, ContextError> {
    for address in addresses {
        if let Some(what) = forbidden_address(address.ip()) {
            return Err(refuse(format!(
                "{host} resolves to {}, {what}",
                address.ip()
            )));
        }
    }
    addresses
        .first()
        .copied()
        .ok_or_else(|| refuse(format!("{host} does not resolve")))
}

/// Makes service calls under the rules above.
#[derive(Clone, Debug)]
pub struct ServiceCaller {
    enabled: bool,
    timeout: Duration,
    max_bytes: usize,
}

impl ServiceCaller {
    /// A caller; `enabled` false refuses every call.
    pub fn new(enabled: bool, timeout: Duration, max_bytes: usize) -> Self {
        ServiceCaller {
            enabled,
            timeout,
            max_bytes,
        }
    }

    /// Calls `call.service_url` and returns the JSON it answers.
    pub async fn call(&self, call: &ApiCall) -> Result<Value, ContextError> {
        if !self.enabled {
            return Err(refuse(
                "service calls are turned off (bylaw serve --allow-service-calls turns them on)",
            ));
        }
        let url = call
            .service_url
            .as_deref()
            .ok_or_else(|| refuse("no service URL"))?;
        let checked = check_url(url)?;
        tokio::time::timeout(self.timeout, self.fetch(&checked, call))
            .await
            .map_err(|_| {
                ContextError(format!(
                    "apiCall.service {url}: no answer within {:?}",
                    self.timeout
                ))
            })?
    }

    async fn fetch(&self, url: &CheckedUrl, call: &ApiCall) -> Result<Value, ContextError> {
        let failed =
            |e: &dyn std::fmt::Display| ContextError(format!("apiCall.service {}: {e}", url.host));
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|e| failed(&e))?
            .collect();
        let address = vet_addresses(&url.host, &addresses)?;
        let stream = TcpStream::connect(address).await.map_err(|e| failed(&e))?;

        let method = match call.method.to_ascii_uppercase().as_str() {
            "GET" => http::Method::GET,
            "POST" => http::Method::POST,
            other => return Err(refuse(format!("method {other} (GET or POST only)"))),
        };
        let body = if method == http::Method::POST {
            let data: serde_json::Map<String, Value> = call.data.iter().cloned().collect();
            Bytes::from(serde_json::to_vec(&data).map_err(|e| failed(&e))?)
        } else {
            Bytes::new()
        };
        let default_port = if url.https { 443 } else { 80 };
        let host_header = if url.port == default_port {
            url.host.clone()
        } else {
            format!("{}:{}", url.host, url.port)
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(url.path_and_query.as_str())
            .header(http::header::HOST, host_header)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        for (name, value) in &call.service_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.body(Full::new(body)).map_err(|e| failed(&e))?;

        let response = if url.https {
            let tls = tls_config(call.service_ca_bundle.as_deref())?;
            let name = ServerName::try_from(url.host.clone()).map_err(|e| failed(&e))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, stream)
                .await
                .map_err(|e| failed(&e))?;
            send(TokioIo::new(stream), request).await
        } else {
            send(TokioIo::new(stream), request).await
        }
        .map_err(|e| failed(&e))?;

        let status = response.status();
        let bytes = Limited::new(response.into_body(), self.max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    failed(&format!(
                        "the response is larger than {} bytes",
                        self.max_bytes
                    ))
                } else {
                    failed(&e)
                }
            })?
            .to_bytes();
        if !status.is_success() {
            let text =
                String::from_utf8_lossy(bytes.get(..bytes.len().min(512)).unwrap_or_default());
            return Err(failed(&format!("HTTP {status}: {text}")));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| failed(&format!("the response is not JSON: {e}")))
    }
}

async fn send<S>(
    io: TokioIo<S>,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "service call connection ended");
        }
    });
    sender.send_request(request).await
}

/// TLS trusting the policy's CA bundle, or the platform's roots when it gives none.
fn tls_config(ca_bundle: Option<&str>) -> Result<Arc<rustls::ClientConfig>, ContextError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| refuse(format!("TLS: {e}")))?;
    let config = match ca_bundle {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| refuse(format!("service.caBundle: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| refuse(format!("service.caBundle: {e}")))?;
            }
            if roots.is_empty() {
                return Err(refuse("service.caBundle holds no certificate"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| refuse(format!("TLS: {e}")))?
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(url: &str) -> ApiCall {
        ApiCall {
            url_path: None,
            method: "GET".into(),
            data: Vec::new(),
            service_url: Some(url.into()),
            service_ca_bundle: None,
            service_headers: Vec::new(),
        }
    }

    #[test]
    fn local_and_metadata_targets_are_refused_before_any_lookup() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://127.1.2.3/",
            "http://localhost/",
            "http://api.localhost/",
            "http://169.254.169.254/latest/meta-data/iam/",
            "http://[fd00:ec2::254]/latest/",
            "http://[::1]:9443/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fe80::1]/",
            "http://0.0.0.0:80/",
            "http://100.100.100.200/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "file:///etc/passwd",
            "gopher://example.com/",
            "http://user:pass@example.com/",
        ] {
            assert!(check_url(url).is_err(), "{url} must be refused");
        }
        let fine = check_url("https://checker.security.svc:8443/check?x=1").unwrap();
        assert_eq!(
            fine,
            CheckedUrl {
                https: true,
                host: "checker.security.svc".into(),
                port: 8443,
                path_and_query: "/check?x=1".into()
            }
        );
        assert_eq!(check_url("http://10.0.0.7").unwrap().path_and_query, "/");
    }

    #[test]
    fn every_resolved_address_must_be_allowed() {
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 80);
        assert_eq!(
            vet_addresses("svc", &[at("10.0.0.7"), at("10.0.0.8")]).unwrap(),
            at("10.0.0.7")
        );
        let error =
            vet_addresses("evil.example", &[at("10.0.0.7"), at("169.254.169.254")]).unwrap_err();
        assert!(error.0.contains("resolves to 169.254.169.254"), "{error}");
        assert!(vet_addresses("nothing", &[]).is_err());
    }

    #[tokio::test]
    async fn calls_are_off_by_default_and_refused_to_loopback_when_on() {
        let off = ServiceCaller::new(false, Duration::from_secs(1), 1024);
        let error = off
            .call(&call("http://checker.example/"))
            .await
            .unwrap_err();
        assert!(error.0.contains("turned off"), "{error}");

        // A real listener on loopback: enabled calls still never reach it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let on = ServiceCaller::new(true, Duration::from_secs(1), 1024);
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
        ] {
            let error = on.call(&call(&url)).await.unwrap_err();
            assert!(error.0.contains("refused"), "{url}: {error}");
        }
        // `localhost.` with a trailing dot.
        let error = on
            .call(&call(&format!("http://localhost.:{port}/")))
            .await
            .unwrap_err();
        assert!(error.0.contains("refused"), "{error}");
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(
            accepted.is_err(),
            "nothing connected to the loopback listener"
        );
    }

    /// An address of this machine other than loopback, if it has one.
    fn own_address() -> Option<IpAddr> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
        socket.connect("192.0.2.1:9").ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    }

    #[tokio::test]
    async fn allowed_calls_carry_only_the_policys_headers_and_are_bounded() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Some(ip) = own_address() else {
            eprintln!("skipped: this machine has no address besides loopback");
            return;
        };
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut requests = Vec::new();
            for body in ["{\"allowed\": true}".to_owned(), "x".repeat(5000)] {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buffer = vec![0u8; 8192];
                let mut read = 0;
                while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    read += stream.read(&mut buffer[read..]).await.unwrap();
                }
                let head = String::from_utf8_lossy(&buffer[..read]).to_lowercase();
                // POST bodies follow the head; read them when announced.
                if let Some(length) = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                {
                    let head_end = head.find("\r\n\r\n").unwrap() + 4;
                    while read < head_end + length {
                        read += stream.read(&mut buffer[read..]).await.unwrap();
                    }
                }
                requests.push(String::from_utf8_lossy(&buffer[..read]).into_owned());
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(reply.as_bytes()).await.unwrap();
            }
            requests
        });
        let caller = ServiceCaller::new(true, Duration::from_secs(5), 1024);
        let mut post = call(&format!("http://{ip}:{port}/check"));
        post.method = "POST".into();
        post.data = vec![("image".into(), serde_json::json!("nginx"))];
        post.service_headers = vec![("X-Team".into(), "payments".into())];
        assert_eq!(
            caller.call(&post).await.unwrap(),
            serde_json::json!({"allowed": true})
        );
        let error = caller
            .call(&call(&format!("http://{ip}:{port}/big")))
            .await
            .unwrap_err();
        assert!(error.0.contains("larger than 1024 bytes"), "{error}");

        let requests = server.await.unwrap();
        let first = requests[0].to_lowercase();
        assert!(first.starts_with("post /check http/1.1"), "{first}");
        assert!(first.contains("x-team: payments"), "{first}");
        assert!(
            !first.contains("authorization"),
            "no token is ever sent: {first}"
        );
        assert!(first.ends_with("{\"image\":\"nginx\"}"), "{first}");
    }

    #[tokio::test]
    async fn a_service_that_never_answers_costs_one_timeout() {
        let Some(ip) = own_address() else {
            eprintln!("skipped: this machine has no address besides loopback");
            return;
        };
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(stream);
        });
        let caller = ServiceCaller::new(true, Duration::from_millis(200), 1024);
        let started = std::time::Instant::now();
        let error = caller
            .call(&call(&format!("http://{ip}:{port}/slow")))
            .await
            .unwrap_err();
        assert!(error.0.contains("no answer within 200ms"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        hold.abort();
    }
}
