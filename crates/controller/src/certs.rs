//! bylaw's own serving certificate when no certificate files are given: a CA and a serving
//! certificate kept in a Secret in bylaw's namespace, so every replica serves the same one and
//! a restart keeps it.
//!
//! The serving certificate is valid for 150 days, its CA for one year; the leader issues a new
//! pair 15 days before the certificate expires (or when the names it must cover change). The
//! Secret's `ca.crt` then holds the new CA followed by the previous one, so API servers that
//! still have the old bundle keep trusting bylaw until the webhook configurations carry the new
//! one. Every replica re-reads the Secret and rewrites its certificate files when they change;
//! the webhook's file reloader swaps them in without a restart.
//!
//! Generating keys is the CLI's business (it owns rcgen through the webhook crate): the
//! controller receives an [`Issuer`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bylaw_runtime::ShutdownSignal;
use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;

use crate::leader::Leadership;

/// Annotation holding when the serving certificate expires (RFC 3339).
pub const NOT_AFTER_ANNOTATION: &str = "bylaw.io/not-after";
/// Annotation holding the names the serving certificate covers, comma-separated.
pub const NAMES_ANNOTATION: &str = "bylaw.io/names";
/// Lifetime of a serving certificate.
pub const CERTIFICATE_DAYS: u32 = 150;
/// Lifetime of a CA.
pub const CA_DAYS: u32 = 365;
/// A new certificate is issued this long before the current one expires.
pub const RENEW_BEFORE: Duration = Duration::from_secs(15 * 86_400);

/// A freshly issued CA and serving certificate, PEM.
#[derive(Clone)]
pub struct IssuedCertificate {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Issues a new CA (valid `CA_DAYS`) and a serving certificate (valid `CERTIFICATE_DAYS`) for
/// the given names.
pub type Issuer = Arc<dyn Fn(&[String]) -> Result<IssuedCertificate, String> + Send + Sync>;

/// Why the certificate could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read or write Secret {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("cannot issue a certificate: {0}")]
    Issue(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("Secret {0} lacks tls.crt, tls.key or ca.crt")]
    Incomplete(String),
}

/// Whether the Secret's certificate must be replaced at `now`: absent, incomplete, covering
/// other names, or within [`RENEW_BEFORE`] of its expiry.
pub fn needs_new_certificate(
    secret: Option<&Secret>,
    names: &[String],
    now: DateTime<Utc>,
) -> bool {
    let Some(secret) = secret else {
        return true;
    };
    let complete = secret.data.as_ref().is_some_and(|data| {
        ["tls.crt", "tls.key", "ca.crt"]
            .iter()
            .all(|key| data.get(*key).is_some_and(|v| !v.0.is_empty()))
    });
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let covers = annotations.get(NAMES_ANNOTATION).map(String::as_str) == Some(&names.join(","));
    let fresh = annotations
        .get(NOT_AFTER_ANNOTATION)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|not_after| {
            let renew_at = not_after.with_timezone(&Utc)
                - chrono::Duration::from_std(RENEW_BEFORE).unwrap_or_default();
            now < renew_at
        });
    !(complete && covers && fresh)
}

/// The first PEM block of a bundle (the newest CA bylaw put there).
fn first_pem_block(bundle: &str) -> Option<&str> {
    const END: &str = "-----END CERTIFICATE-----";
    let end = bundle.find(END)? + END.len();
    bundle.get(..end)
}

/// The Secret holding `issued`, keeping the previous CA in the bundle.
pub fn secret_for(
    namespace: &str,
    name: &str,
    names: &[String],
    issued: &IssuedCertificate,
    previous: Option<&Secret>,
    now: DateTime<Utc>,
) -> Secret {
    let previous_ca = previous
        .and_then(|s| s.data.as_ref())
        .and_then(|data| data.get("ca.crt"))
        .and_then(|bundle| std::str::from_utf8(&bundle.0).ok())
        .and_then(first_pem_block)
        .filter(|old| *old != issued.ca_pem.trim_end());
    let mut bundle = issued.ca_pem.trim_end().to_owned();
    if let Some(old) = previous_ca {
        bundle.push('\n');
        bundle.push_str(old);
    }
    bundle.push('\n');
    let not_after = now + chrono::Duration::days(i64::from(CERTIFICATE_DAYS));
    let data = BTreeMap::from([
        (
            "tls.crt".to_owned(),
            ByteString(issued.cert_pem.clone().into_bytes()),
        ),
        (
            "tls.key".to_owned(),
            ByteString(issued.key_pem.clone().into_bytes()),
        ),
        ("ca.crt".to_owned(), ByteString(bundle.into_bytes())),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            resource_version: previous.and_then(|s| s.metadata.resource_version.clone()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "bylaw".to_owned(),
            )])),
            annotations: Some(BTreeMap::from([
                (
                    NOT_AFTER_ANNOTATION.to_owned(),
                    not_after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
                (NAMES_ANNOTATION.to_owned(), names.join(",")),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Keeps the serving certificate in the Secret and in files.
#[derive(Clone)]
pub struct CertificateManager {
    pub client: Client,
    pub namespace: String,
    pub secret_name: String,
    /// DNS names and IP addresses the certificate covers.
    pub names: Vec<String>,
    /// Where `tls.crt` and `tls.key` are written for the webhook server.
    pub dir: PathBuf,
    pub issuer: Issuer,
}

impl std::fmt::Debug for CertificateManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateManager")
            .field("namespace", &self.namespace)
            .field("secret_name", &self.secret_name)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl CertificateManager {
    fn api(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn api_error(&self, source: kube::Error) -> CertError {
        CertError::Api {
            namespace: self.namespace.clone(),
            name: self.secret_name.clone(),
            source,
        }
    }

    /// The certificate files' paths.
    pub fn files(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("tls.crt"), self.dir.join("tls.key"))
    }

    /// Makes sure the Secret holds a usable certificate (issuing one when `may_issue`), writes
    /// it to the files and returns the CA bundle.
    pub async fn ensure(&self, may_issue: bool) -> Result<String, CertError> {
        let api = self.api();
        let current = api
            .get_opt(&self.secret_name)
            .await
            .map_err(|e| self.api_error(e))?;
        let secret = if may_issue
            && needs_new_certificate(current.as_ref(), &self.names, Utc::now())
        {
            let issued = (self.issuer)(&self.names).map_err(CertError::Issue)?;
            let desired = secret_for(
                &self.namespace,
                &self.secret_name,
                &self.names,
                &issued,
                current.as_ref(),
                Utc::now(),
            );
            let written = match &current {
                None => api.create(&PostParams::default(), &desired).await,
                Some(_) => {
                    api.replace(&self.secret_name, &PostParams::default(), &desired)
                        .await
                }
            };
            match written {
                Ok(secret) => {
                    tracing::info!(secret = %self.secret_name, names = ?self.names, "serving certificate issued");
                    secret
                }
                // Another replica wrote first: use its certificate.
                Err(kube::Error::Api(status)) if status.code == 409 => api
                    .get(&self.secret_name)
                    .await
                    .map_err(|e| self.api_error(e))?,
                Err(error) => return Err(self.api_error(error)),
            }
        } else {
            match current {
                Some(secret) => secret,
                None => return Err(CertError::Incomplete(self.secret_name.clone())),
            }
        };
        self.write_files(&secret)
    }

    fn write_files(&self, secret: &Secret) -> Result<String, CertError> {
        let data = secret
            .data
            .as_ref()
            .ok_or_else(|| CertError::Incomplete(self.secret_name.clone()))?;
        let field = |key: &str| {
            data.get(key)
                .map(|v| v.0.clone())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| CertError::Incomplete(self.secret_name.clone()))
        };
        let (cert, key, bundle) = (field("tls.crt")?, field("tls.key")?, field("ca.crt")?);
        std::fs::create_dir_all(&self.dir).map_err(|source| CertError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let (cert_path, key_path) = self.files();
        // Unchanged files are left alone, so the reloader does not swap for nothing.
        if std::fs::read(&cert_path).ok().as_deref() != Some(cert.as_slice()) {
            // Key first: the reloader reads both when the certificate changes.
            write_atomically(&key_path, &key, true)?;
            write_atomically(&cert_path, &cert, false)?;
        }
        Ok(String::from_utf8_lossy(&bundle).into_owned())
    }

    /// Every `interval`: the leader renews when due; every replica follows the Secret and
    /// publishes the CA bundle it holds.
    pub async fn run(
        self,
        leadership: Leadership,
        bundle: watch::Sender<String>,
        interval: Duration,
        shutdown: ShutdownSignal,
    ) {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
            }
            match self.ensure(leadership.is_leader()).await {
                Ok(current) => {
                    bundle.send_if_modified(|held| {
                        let changed = *held != current;
                        *held = current;
                        changed
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot refresh the serving certificate; serving the current one");
                }
            }
        }
    }
}

/// Deletes the certificate Secret if bylaw made it (its `managed-by` label says so); returns
/// whether it was deleted.
pub async fn remove_managed_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<bool, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let ours = api.get_opt(name).await?.is_some_and(|secret| {
        secret
            .metadata
            .labels
            .unwrap_or_default()
            .get("app.kubernetes.io/managed-by")
            .is_some_and(|v| v == "bylaw")
    });
    if ours {
        match api.delete(name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(ours)
}

fn write_atomically(path: &Path, contents: &[u8], private: bool) -> Result<(), CertError> {
    bylaw_runtime::files::write_atomically(path, contents, private).map_err(|source| {
        CertError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(tag: &str) -> IssuedCertificate {
        IssuedCertificate {
            ca_pem: format!("-----BEGIN CERTIFICATE-----\n{tag}-ca\n-----END CERTIFICATE-----\n"),
            cert_pem: format!("{tag}-cert"),
            key_pem: format!("{tag}-key"),
        }
    }

    fn names() -> Vec<String> {
        vec!["bylaw.bylaw-system.svc".to_owned(), "127.0.0.1".to_owned()]
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_certificate_is_renewed_fifteen_days_before_expiry_with_both_cas_in_the_bundle() {
        let issued_at = at("2026-01-01T00:00:00Z");
        let first = secret_for("ns", "bylaw-tls", &names(), &issued("one"), None, issued_at);
        assert!(!needs_new_certificate(Some(&first), &names(), issued_at));
        // 150 days later it expires; 16 days before that it is still fine, 14 days before not.
        assert!(!needs_new_certificate(
            Some(&first),
            &names(),
            at("2026-05-15T00:00:00Z")
        ));
        assert!(needs_new_certificate(
            Some(&first),
            &names(),
            at("2026-05-17T00:00:00Z")
        ));

        let second = secret_for(
            "ns",
            "bylaw-tls",
            &names(),
            &issued("two"),
            Some(&first),
            at("2026-05-17T00:00:00Z"),
        );
        let bundle = String::from_utf8(second.data.unwrap()["ca.crt"].0.clone()).unwrap();
        let new_at = bundle.find("two-ca").unwrap();
        let old_at = bundle.find("one-ca").unwrap();
        assert!(new_at < old_at, "the new CA comes first: {bundle}");
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
    }

    #[test]
    fn other_names_or_a_missing_key_mean_a_new_certificate() {
        let now = at("2026-01-01T00:00:00Z");
        let secret = secret_for("ns", "bylaw-tls", &names(), &issued("one"), None, now);
        assert!(needs_new_certificate(
            Some(&secret),
            &["other.svc".to_owned()],
            now
        ));
        let mut broken = secret.clone();
        broken.data.as_mut().unwrap().remove("tls.key");
        assert!(needs_new_certificate(Some(&broken), &names(), now));
        assert!(needs_new_certificate(None, &names(), now));
    }
}
