//! TLS for the webhook: certificates loaded from PEM files and swapped in place when the files
//! change (Kubernetes rotates mounted Secrets without restarting pods), plus a development helper
//! that issues a CA and a serving certificate with rcgen.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bylaw_runtime::ShutdownSignal;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// TLS setup failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("{path} contains no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// PEM that does not decode.
    #[error("{path} is not valid PEM: {reason}")]
    InvalidPem {
        /// The file.
        path: PathBuf,
        /// Decoder message.
        reason: String,
    },
    /// The key is unsupported or does not belong to the certificate.
    #[error("the key in {key_path} cannot be used with the certificate in {cert_path}: {reason}")]
    KeyRejected {
        /// Certificate file.
        cert_path: PathBuf,
        /// Key file.
        key_path: PathBuf,
        /// rustls message.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// rcgen could not generate a certificate.
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn parse_certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::InvalidPem {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::InvalidPem {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::KeyRejected {
        cert_path: cert_path.to_owned(),
        key_path: key_path.to_owned(),
        reason: e.to_string(),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

#[derive(Debug)]
struct SwappableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Serves the certificate from a pair of PEM files and swaps it when their content changes.
#[derive(Debug)]
pub struct CertReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    resolver: Arc<SwappableCert>,
    /// Bytes of the last attempted (cert, key) pair, so a bad pair is reported once.
    last_seen: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl CertReloader {
    /// Loads the certificate and key; fails when either is missing, malformed or mismatched.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let provider = provider();
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let key = parse_certified_key(&cert_pem, &key_pem, cert_path, key_path, &provider)?;
        Ok(CertReloader {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            resolver: Arc::new(SwappableCert {
                current: RwLock::new(Arc::new(key)),
            }),
            last_seen: Mutex::new((cert_pem, key_pem)),
        })
    }

    /// A rustls server configuration offering HTTP/2 and HTTP/1.1 and always serving the current
    /// certificate.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The end-entity certificate currently served (DER).
    pub fn current_certificate(&self) -> Option<CertificateDer<'static>> {
        let current = self
            .resolver
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        current.cert.first().cloned()
    }

    /// Re-reads the files; swaps the certificate when they changed and form a valid pair.
    /// Returns `Ok(true)` when a new certificate is now served, `Ok(false)` when nothing changed,
    /// and `Err` when the files changed into something unusable (the old certificate stays).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let cert_pem = read(&self.cert_path)?;
        let key_pem = read(&self.key_path)?;
        {
            let mut last = self
                .last_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.0 == cert_pem && last.1 == key_pem {
                return Ok(false);
            }
            *last = (cert_pem.clone(), key_pem.clone());
        }
        let key = parse_certified_key(
            &cert_pem,
            &key_pem,
            &self.cert_path,
            &self.key_path,
            &self.provider,
        )?;
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
        Ok(true)
    }

    /// Polls the files every `interval` until shutdown, logging swaps and failures.
    pub async fn watch(self: Arc<Self>, interval: Duration, shutdown: ShutdownSignal) {
        bylaw_runtime::shutdown::every(interval, shutdown, || {
            let this = self.clone();
            async move {
                let cert = this.cert_path.display().to_string();
                let outcome =
                    tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
                match outcome {
                    Ok(Ok(true)) => tracing::info!(cert = %cert, "serving certificate reloaded"),
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => tracing::warn!(
                        %error,
                        "certificate files changed but cannot be used; still serving the previous certificate"
                    ),
                    Err(error) => tracing::error!(%error, "certificate reload task failed"),
                }
            }
        })
        .await;
    }
}

/// A development certificate authority (never for production).
pub struct DevCa {
    certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

/// A serving certificate, its key and the CA that signed it, all PEM.
#[derive(Clone)]
pub struct DevCertificate {
    /// Serving certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
    /// The CA certificate, for the webhook configuration's `caBundle`.
    pub ca_pem: String,
}

impl std::fmt::Debug for DevCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("DevCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

impl DevCa {
    /// Generates a CA key pair and self-signed CA certificate.
    pub fn generate(common_name: &str) -> Result<Self, TlsError> {
        Self::generate_valid_for(common_name, None)
    }

    /// A CA valid from today for `days` days (rcgen's default validity when `None`).
    pub fn generate_valid_for(common_name: &str, days: Option<u32>) -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        set_validity(&mut params, days);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key)?;
        Ok(DevCa { certificate, key })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[String]) -> Result<DevCertificate, TlsError> {
        self.issue_valid_for(names, None)
    }

    /// Issues a server certificate for `names`, valid from today for `days` days.
    pub fn issue_valid_for(
        &self,
        names: &[String],
        days: Option<u32>,
    ) -> Result<DevCertificate, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(names.to_vec())?;
        set_validity(&mut params, days);
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, first.as_str());
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ];
        let certificate = params.signed_by(&key, &self.certificate, &self.key)?;
        Ok(DevCertificate {
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.pem(),
        })
    }
}

/// Valid from the start of today (UTC) for `days` days.
fn set_validity(params: &mut rcgen::CertificateParams, days: Option<u32>) {
    use chrono::Datelike;
    let Some(days) = days else {
        return;
    };
    let today = chrono::Utc::now().date_naive();
    let start = rcgen::date_time_ymd(today.year(), today.month() as u8, today.day() as u8);
    params.not_before = start;
    params.not_after = start + std::time::Duration::from_secs(u64::from(days) * 86_400);
}

impl DevCa {
    /// The CA's private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
}

impl DevCertificate {
    /// Writes `tls.crt` and `tls.key` into `dir` (each replaced atomically; the key readable by the
    /// owner only) and returns their paths.
    pub fn write_files(&self, dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
        let cert_path = dir.join("tls.crt");
        let key_path = dir.join("tls.key");
        write_atomically(&cert_path, self.cert_pem.as_bytes(), false)?;
        write_atomically(&key_path, self.key_pem.as_bytes(), true)?;
        Ok((cert_path, key_path))
    }
}

fn write_atomically(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    bylaw_runtime::files::write_atomically(path, contents, private).map_err(|source| {
        TlsError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// Generates a development CA and a serving certificate for `names`. The CLI prints
/// `ca_pem` for the webhook configuration's `caBundle`.
pub fn generate_dev_certificate(names: &[String]) -> Result<DevCertificate, TlsError> {
    DevCa::generate("bylaw development CA")?.issue(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_generated_pair_and_reports_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("test CA").unwrap();
        let first = ca.issue(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let (cert, key) = first.write_files(dir.path()).unwrap();
        let reloader = CertReloader::load(&cert, &key).unwrap();
        let served = reloader.current_certificate().unwrap();
        assert_eq!(
            served,
            CertificateDer::from_pem_slice(first.cert_pem.as_bytes()).unwrap()
        );
        assert!(!reloader.reload_if_changed().unwrap());

        // A certificate with another certificate's key is refused, and the old one stays.
        let second = ca.issue(&["localhost".into()]).unwrap();
        std::fs::write(&cert, &second.cert_pem).unwrap();
        let err = reloader.reload_if_changed().unwrap_err();
        assert!(matches!(err, TlsError::KeyRejected { .. }), "{err}");
        assert_eq!(reloader.current_certificate().unwrap(), served);

        // Once the key catches up, the new pair is served.
        std::fs::write(&key, &second.key_pem).unwrap();
        assert!(reloader.reload_if_changed().unwrap());
        assert_ne!(reloader.current_certificate().unwrap(), served);
    }

    #[test]
    fn missing_and_empty_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        let err = CertReloader::load(&missing, &missing).unwrap_err();
        assert!(err.to_string().contains("nope.crt"), "{err}");

        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "").unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "").unwrap();
        assert!(matches!(
            CertReloader::load(&empty, &key).unwrap_err(),
            TlsError::NoCertificate { .. }
        ));
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let cert = generate_dev_certificate(&["localhost".into()]).unwrap();
        assert!(cert.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
    }
}
