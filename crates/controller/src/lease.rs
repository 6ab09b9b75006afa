//! The `coordination.k8s.io/v1` Lease that decides which replica does the singleton work.
//!
//! Every `retry` the elector reads the Lease: it creates it when absent, renews it while it
//! holds it, and takes it over when the holder has not renewed for `lease_duration`. Writes
//! carry the resourceVersion read, so two replicas never both win. A holder that cannot renew
//! for `renew_deadline` (shorter than the lease duration) stops leading before anyone else may
//! start. On shutdown the holder clears `holderIdentity`, so a successor starts at once.

use std::time::Duration;

use bylaw_runtime::ShutdownSignal;
use chrono::{DateTime, Utc};
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};

use crate::leader::LeadershipSender;

/// What the elector does after reading the Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// No Lease: create it, holding it.
    Create,
    /// This replica holds it: renew.
    Renew,
    /// Nobody holds it, or the holder let it expire: take it.
    TakeOver,
    /// Someone else holds a live Lease.
    Follow,
}

/// The decision, from the Lease as read (`None`: absent) at `now`.
pub fn decide(lease: Option<&Value>, identity: &str, now: DateTime<Utc>) -> LeaseAction {
    let Some(lease) = lease else {
        return LeaseAction::Create;
    };
    let spec = lease.get("spec").cloned().unwrap_or(Value::Null);
    let holder = spec
        .get("holderIdentity")
        .and_then(Value::as_str)
        .unwrap_or("");
    if holder == identity {
        return LeaseAction::Renew;
    }
    if holder.is_empty() {
        return LeaseAction::TakeOver;
    }
    let duration = spec
        .get("leaseDurationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(15);
    let renewed = spec
        .get("renewTime")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    match renewed {
        Some(renewed) if now < renewed + chrono::Duration::seconds(duration) => LeaseAction::Follow,
        _ => LeaseAction::TakeOver,
    }
}

/// Settings of the elector.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name, in bylaw's namespace.
    pub name: String,
    pub namespace: String,
    /// This replica (the Pod name).
    pub identity: String,
    /// How long a Lease lives without renewal.
    pub lease_duration: Duration,
    /// A holder that could not renew for this long stops leading.
    pub renew_deadline: Duration,
    /// How often the Lease is read.
    pub retry: Duration,
}

impl LeaseConfig {
    /// Kubernetes' usual timings: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(namespace: &str, identity: &str) -> Self {
        LeaseConfig {
            name: "bylaw".to_owned(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

fn micro_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn lease_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "coordination.k8s.io".into(),
        version: "v1".into(),
        api_version: "coordination.k8s.io/v1".into(),
        kind: "Lease".into(),
        plural: "leases".into(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Whether `namespace` exists (bylaw's Lease and certificate live there).
pub async fn namespace_exists(client: &Client, namespace: &str) -> Result<bool, kube::Error> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    Ok(api.get_opt(namespace).await?.is_some())
}

/// Runs the election until shutdown, publishing the outcome through `sender`.
pub async fn run_elector(
    client: Client,
    config: LeaseConfig,
    sender: LeadershipSender,
    shutdown: ShutdownSignal,
) {
    let api = lease_api(&client, &config.namespace);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut last_renewal: Option<tokio::time::Instant> = None;
    loop {
        let leading = attempt(&api, &config).await;
        match leading {
            Ok(true) => {
                if last_renewal.is_none() {
                    tracing::info!(identity = %config.identity, lease = %config.name, "leading: this replica does the singleton work");
                }
                last_renewal = Some(tokio::time::Instant::now());
                sender.set(true);
            }
            Ok(false) => {
                if last_renewal.take().is_some() {
                    tracing::warn!(identity = %config.identity, "lease lost to another replica");
                }
                sender.set(false);
            }
            Err(error) => {
                // Keep leading only while the last renewal is recent enough that nobody else
                // can have taken the Lease.
                let expired = last_renewal.is_none_or(|at| at.elapsed() >= config.renew_deadline);
                if expired {
                    if last_renewal.take().is_some() {
                        tracing::warn!(%error, "cannot renew the lease; stopping singleton work");
                    }
                    sender.set(false);
                } else {
                    tracing::debug!(%error, "lease renewal failed; retrying");
                }
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(config.retry) => {}
        }
    }
    sender.set(false);
    if last_renewal.is_some() {
        release(&api, &config).await;
    }
}

/// One round: whether this replica holds the Lease afterwards.
async fn attempt(api: &Api<DynamicObject>, config: &LeaseConfig) -> Result<bool, kube::Error> {
    let current = api.get_opt(&config.name).await?;
    let current_value = current
        .as_ref()
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null));
    let now = Utc::now();
    let action = decide(current_value.as_ref(), &config.identity, now);
    let transitions = current_value
        .as_ref()
        .and_then(|l| l.pointer("/spec/leaseTransitions"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let acquire_time = current_value
        .as_ref()
        .and_then(|l| l.pointer("/spec/acquireTime"))
        .cloned()
        .unwrap_or_else(|| json!(micro_time(now)));
    let spec = |acquired: Value, transitions: i64| {
        json!({
            "holderIdentity": config.identity,
            "leaseDurationSeconds": config.lease_duration.as_secs(),
            "acquireTime": acquired,
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        })
    };
    let body = match action {
        LeaseAction::Follow => return Ok(false),
        LeaseAction::Create => {
            let lease: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": config.name, "namespace": config.namespace},
                "spec": spec(json!(micro_time(now)), 0),
            }))
            .map_err(kube::Error::SerdeError)?;
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(error) => Err(error),
            };
        }
        LeaseAction::Renew => spec(acquire_time, transitions),
        LeaseAction::TakeOver => spec(json!(micro_time(now)), transitions + 1),
    };
    let Some(mut lease) = current else {
        return Ok(false);
    };
    match lease.data.as_object_mut() {
        Some(fields) => {
            fields.insert("spec".into(), body);
        }
        None => return Ok(false),
    }
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        // Someone else wrote since the read: they won this round.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// Clears the holder so that another replica takes over without waiting for expiry.
async fn release(api: &Api<DynamicObject>, config: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
        return;
    };
    let held = lease
        .data
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        == Some(config.identity.as_str());
    if !held {
        return;
    }
    if let Some(spec) = lease.data.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("holderIdentity");
    }
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => tracing::info!(lease = %config.name, "lease released"),
        Err(error) => tracing::warn!(%error, "cannot release the lease; it expires by itself"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn lease(holder: Option<&str>, renewed: &str) -> Value {
        let mut spec = json!({"leaseDurationSeconds": 15, "renewTime": renewed});
        if let Some(holder) = holder {
            spec["holderIdentity"] = json!(holder);
        }
        json!({"spec": spec})
    }

    #[test]
    fn a_live_lease_is_followed_and_an_expired_one_taken_over() {
        let now = at("2026-12-03T10:00:20Z");
        assert_eq!(decide(None, "a", now), LeaseAction::Create);
        let held_by_b = lease(Some("b"), "2026-12-03T10:00:10.000000Z");
        assert_eq!(decide(Some(&held_by_b), "a", now), LeaseAction::Follow);
        assert_eq!(decide(Some(&held_by_b), "b", now), LeaseAction::Renew);
        let stale = lease(Some("b"), "2026-12-03T10:00:04.000000Z");
        assert_eq!(decide(Some(&stale), "a", now), LeaseAction::TakeOver);
        let released = lease(None, "2026-12-03T10:00:19.000000Z");
        assert_eq!(decide(Some(&released), "a", now), LeaseAction::TakeOver);
    }
}
