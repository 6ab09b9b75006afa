//! What the reports should say, per resource, and what must be written to get there.
//!
//! Layout: one report per resource, named after the resource's uid and owned by it, as Kyverno
//! writes them: `PolicyReport` in the resource's namespace, `ClusterPolicyReport` for
//! cluster-scoped resources. A resource change rewrites only its own small report (at most one
//! write per change), and the API server's garbage collector removes a report with its
//! resource even when bylaw is not running. docs/reports.md compares this with per-namespace
//! chunks, measured.
//!
//! The book is pure: the scanner and the admission results feed it, the writer asks it for
//! [`ReportChange`]s and confirms them. A report is written only when its content (all but the
//! timestamps) differs from what the cluster holds.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use bylaw_api::policyreport::{
    ClusterPolicyReport, PolicyReport, PolicyReportResult, PolicyReportSummary, PolicyResult,
    Timestamp,
};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

use crate::results::PolicyKey;

/// Label on every report bylaw writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "bylaw";
/// At most this many results in one report; beyond it the least severe are left out, so that
/// no report object nears the API server's 1.5 MiB request limit.
pub const MAX_RESULTS_PER_REPORT: usize = 700;
/// Messages longer than this (bytes) are cut, for the same reason.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// The resource a report is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceIdentity {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped resources.
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl ResourceIdentity {
    /// The identity of an object as the API server returns it; `None` without a uid or name.
    pub fn of(object: &Value) -> Option<ResourceIdentity> {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        let uid = text("/metadata/uid").filter(|s| !s.is_empty())?;
        let name = text("/metadata/name").filter(|s| !s.is_empty())?;
        Some(ResourceIdentity {
            api_version: text("/apiVersion").unwrap_or_default().to_owned(),
            kind: text("/kind").unwrap_or_default().to_owned(),
            namespace: text("/metadata/namespace")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            name: name.to_owned(),
            uid: uid.to_owned(),
        })
    }
}

/// Where results came from: the background scan re-derives its own; admission results are
/// the only record of policies that are not scanned (`background: false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Background,
    Admission,
}

#[derive(Debug)]
struct Entry {
    resource: ResourceIdentity,
    background: BTreeMap<PolicyKey, Vec<PolicyReportResult>>,
    admission: BTreeMap<PolicyKey, Vec<PolicyReportResult>>,
    dirty: bool,
    /// Fingerprint of the report the cluster holds; `None` when it holds none (or unknown).
    written: Option<u64>,
    /// Serialized size of the report last written.
    written_bytes: usize,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.background.is_empty() && self.admission.is_empty()
    }
}

/// A write the cluster needs.
#[derive(Clone, Debug, PartialEq)]
pub enum ReportChange {
    /// Create or replace the report (server-side apply).
    Apply {
        uid: String,
        /// The report's name.
        name: String,
        report: Value,
        fingerprint: u64,
        /// Serialized size of `report`.
        bytes: usize,
    },
    /// Remove the report of a resource (gone, or no results left).
    Delete {
        uid: String,
        name: String,
        namespace: Option<String>,
    },
}

/// The desired reports of every known resource.
#[derive(Debug, Default)]
pub struct ReportBook {
    /// Appended to the resource uid to name its report.
    suffix: String,
    entries: HashMap<String, Entry>,
    /// Reports to delete: uid → namespace.
    deletions: BTreeMap<String, Option<String>>,
}

/// Results equal apart from their timestamps.
fn same_results(a: &[PolicyReportResult], b: &[PolicyReportResult]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let mut y = y.clone();
            y.timestamp = x.timestamp;
            *x == y
        })
}

impl ReportBook {
    pub fn new() -> ReportBook {
        ReportBook::default()
    }

    /// A book whose reports are named `<uid><suffix>` (e.g. admission results kept apart).
    pub fn with_suffix(suffix: &str) -> ReportBook {
        ReportBook {
            suffix: suffix.to_owned(),
            ..ReportBook::default()
        }
    }

    /// The report name of a resource.
    pub fn name_of(&self, uid: &str) -> String {
        format!("{uid}{}", self.suffix)
    }

    /// The resource uid of a report name, when this book names reports that way.
    pub fn uid_of<'n>(&self, name: &'n str) -> Option<&'n str> {
        name.strip_suffix(self.suffix.as_str())
            .filter(|uid| !uid.is_empty() && !uid.ends_with('-'))
    }

    /// Number of reports written and their total serialized size.
    pub fn written_totals(&self) -> (usize, usize) {
        self.entries
            .values()
            .filter(|e| e.written.is_some())
            .fold((0, 0), |(n, b), e| (n + 1, b + e.written_bytes))
    }

    /// Drops the background results `keep` rejects (a changed policy is derived again).
    pub fn retain_background(&mut self, keep: impl Fn(&PolicyKey) -> bool) {
        for entry in self.entries.values_mut() {
            let before = entry.background.len();
            entry.background.retain(|k, _| keep(k));
            if entry.background.len() != before {
                entry.dirty = true;
            }
        }
    }

    fn entry(&mut self, resource: &ResourceIdentity) -> &mut Entry {
        self.deletions.remove(&resource.uid);
        let entry = self
            .entries
            .entry(resource.uid.clone())
            .or_insert_with(|| Entry {
                resource: resource.clone(),
                background: BTreeMap::new(),
                admission: BTreeMap::new(),
                dirty: false,
                written: None,
                written_bytes: 0,
            });
        if entry.resource != *resource {
            // Same uid, new name or version: the scope changes.
            entry.resource = resource.clone();
            entry.dirty = true;
        }
        entry
    }

    /// Sets the results of one policy on one resource; returns whether anything changed.
    /// Empty `results` removes the policy's results.
    pub fn set_results(
        &mut self,
        resource: &ResourceIdentity,
        source: Source,
        policy: &PolicyKey,
        results: Vec<PolicyReportResult>,
    ) -> bool {
        if results.is_empty() && !self.entries.contains_key(&resource.uid) {
            return false;
        }
        let entry = self.entry(resource);
        let map = match source {
            Source::Background => &mut entry.background,
            Source::Admission => &mut entry.admission,
        };
        let changed = match map.get(policy) {
            Some(old) => !same_results(old, &results),
            None => !results.is_empty(),
        };
        if changed {
            if results.is_empty() {
                map.remove(policy);
            } else {
                map.insert(policy.clone(), results);
            }
            entry.dirty = true;
        }
        changed
    }

    /// Forgets a resource; its report is deleted if one was written.
    pub fn remove_resource(&mut self, uid: &str) {
        if let Some(entry) = self.entries.remove(uid) {
            if entry.written.is_some() {
                self.deletions
                    .insert(uid.to_owned(), entry.resource.namespace.clone());
            }
        }
    }

    /// Drops the results of every policy `keep` rejects (deleted policies, reporting turned off).
    pub fn retain_policies(&mut self, keep: impl Fn(&PolicyKey) -> bool) {
        for entry in self.entries.values_mut() {
            let before = entry.background.len() + entry.admission.len();
            entry.background.retain(|k, _| keep(k));
            entry.admission.retain(|k, _| keep(k));
            if entry.background.len() + entry.admission.len() != before {
                entry.dirty = true;
            }
        }
    }

    /// Uids of the known resources of `api_version`/`kind`.
    pub fn uids_of_kind(&self, api_version: &str, kind: &str) -> Vec<String> {
        self.entries
            .values()
            .filter(|e| e.resource.api_version == api_version && e.resource.kind == kind)
            .map(|e| e.resource.uid.clone())
            .collect()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// Number of resources with at least one result.
    pub fn reported_resources(&self) -> usize {
        self.entries.values().filter(|e| !e.is_empty()).count()
    }

    /// The cluster holds nothing known any more (a new leader): everything is compared again.
    pub fn forget_written(&mut self) {
        for entry in self.entries.values_mut() {
            entry.written = None;
            entry.dirty = true;
        }
    }

    /// Records a report found in the cluster, so that an identical one is not rewritten.
    /// Returns false when no resource of the book owns it (an orphan, once the scan is complete).
    pub fn adopt_existing(&mut self, uid: &str, report: &Value) -> bool {
        match self.entries.get_mut(uid) {
            Some(entry) => {
                entry.written = Some(fingerprint_of_existing(report));
                entry.dirty = true;
                true
            }
            None => false,
        }
    }

    /// Everything to write now; the writer confirms each with [`ReportBook::written`] or hands
    /// it back with [`ReportBook::retry`].
    pub fn take_changes(&mut self) -> Vec<ReportChange> {
        let suffix = self.suffix.clone();
        let mut changes: Vec<ReportChange> = std::mem::take(&mut self.deletions)
            .into_iter()
            .map(|(uid, namespace)| ReportChange::Delete {
                name: format!("{uid}{suffix}"),
                uid,
                namespace,
            })
            .collect();
        let mut dirty: Vec<&mut Entry> = self.entries.values_mut().filter(|e| e.dirty).collect();
        dirty.sort_by(|a, b| a.resource.uid.cmp(&b.resource.uid));
        for entry in dirty {
            entry.dirty = false;
            if entry.is_empty() {
                if entry.written.is_some() {
                    changes.push(ReportChange::Delete {
                        name: format!("{}{suffix}", entry.resource.uid),
                        uid: entry.resource.uid.clone(),
                        namespace: entry.resource.namespace.clone(),
                    });
                }
                continue;
            }
            let (report, fingerprint) = report_of(entry, &suffix);
            if entry.written == Some(fingerprint) {
                continue;
            }
            let bytes = serde_json::to_vec(&report).map(|b| b.len()).unwrap_or(0);
            changes.push(ReportChange::Apply {
                name: format!("{}{suffix}", entry.resource.uid),
                uid: entry.resource.uid.clone(),
                report,
                fingerprint,
                bytes,
            });
        }
        changes
    }

    /// The change reached the cluster.
    pub fn written(&mut self, change: &ReportChange) {
        match change {
            ReportChange::Apply {
                uid,
                fingerprint,
                bytes,
                ..
            } => {
                if let Some(entry) = self.entries.get_mut(uid) {
                    entry.written = Some(*fingerprint);
                    entry.written_bytes = *bytes;
                }
            }
            ReportChange::Delete { uid, .. } => {
                if let Some(entry) = self.entries.get_mut(uid) {
                    entry.written = None;
                    entry.written_bytes = 0;
                }
            }
        }
    }

    /// The change failed; it is computed again on the next round.
    pub fn retry(&mut self, change: &ReportChange) {
        match change {
            ReportChange::Apply { uid, .. } => {
                if let Some(entry) = self.entries.get_mut(uid) {
                    entry.dirty = true;
                }
            }
            ReportChange::Delete { uid, namespace, .. } => match self.entries.get_mut(uid) {
                Some(entry) => entry.dirty = true,
                None => {
                    self.deletions.insert(uid.clone(), namespace.clone());
                }
            },
        }
    }

    /// The report a resource has now (for tests and `bylaw apply --cluster`).
    pub fn report(&self, uid: &str) -> Option<Value> {
        self.entries
            .get(uid)
            .filter(|e| !e.is_empty())
            .map(|e| report_of(e, &self.suffix).0)
    }
}

fn priority(result: Option<PolicyResult>) -> u8 {
    match result {
        Some(PolicyResult::Fail) => 0,
        Some(PolicyResult::Error) => 1,
        Some(PolicyResult::Warn) => 2,
        Some(PolicyResult::Skip) => 3,
        Some(PolicyResult::Pass) | None => 4,
    }
}

fn cut_message(result: &mut PolicyReportResult) {
    if let Some(message) = &mut result.message {
        if message.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES - 3;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("...");
        }
    }
}

/// The results of an entry in report order: by policy, rule, then result.
fn ordered_results(entry: &Entry) -> Vec<PolicyReportResult> {
    let mut results: Vec<PolicyReportResult> = entry
        .background
        .values()
        .chain(entry.admission.values())
        .flatten()
        .cloned()
        .collect();
    if results.len() > MAX_RESULTS_PER_REPORT {
        results.sort_by_key(|r| priority(r.result));
        results.truncate(MAX_RESULTS_PER_REPORT);
    }
    results.iter_mut().for_each(cut_message);
    results.sort_by(|a, b| {
        (&a.policy, &a.rule, a.result, &a.message).cmp(&(&b.policy, &b.rule, b.result, &b.message))
    });
    results
}

fn summary(results: &[PolicyReportResult]) -> PolicyReportSummary {
    let mut summary = PolicyReportSummary::default();
    for result in results {
        match result.result {
            Some(PolicyResult::Pass) => summary.pass += 1,
            Some(PolicyResult::Fail) => summary.fail += 1,
            Some(PolicyResult::Warn) => summary.warn += 1,
            Some(PolicyResult::Error) => summary.error += 1,
            Some(PolicyResult::Skip) => summary.skip += 1,
            None => {}
        }
    }
    summary
}

fn fingerprint(scope: &ObjectReference, results: &[PolicyReportResult]) -> u64 {
    let mut hasher = DefaultHasher::new();
    let stripped: Vec<PolicyReportResult> = results
        .iter()
        .cloned()
        .map(|mut r| {
            r.timestamp = None;
            r
        })
        .collect();
    serde_json::to_string(&(scope, &stripped))
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

fn fingerprint_of_existing(report: &Value) -> u64 {
    let scope: ObjectReference = report
        .get("scope")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let results: Vec<PolicyReportResult> = report
        .get("results")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok())
        .unwrap_or_default();
    fingerprint(&scope, &results)
}

fn report_of(entry: &Entry, suffix: &str) -> (Value, u64) {
    let resource = &entry.resource;
    let results = ordered_results(entry);
    let scope = ObjectReference {
        api_version: Some(resource.api_version.clone()),
        kind: Some(resource.kind.clone()),
        name: Some(resource.name.clone()),
        namespace: resource.namespace.clone(),
        uid: Some(resource.uid.clone()),
        ..ObjectReference::default()
    };
    let fingerprint = fingerprint(&scope, &results);
    let metadata = ObjectMeta {
        name: Some(format!("{}{suffix}", resource.uid)),
        namespace: resource.namespace.clone(),
        labels: Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_owned(),
            MANAGED_BY.to_owned(),
        )])),
        owner_references: Some(vec![OwnerReference {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
            name: resource.name.clone(),
            uid: resource.uid.clone(),
            ..OwnerReference::default()
        }]),
        ..ObjectMeta::default()
    };
    let summary = Some(summary(&results));
    let value = if resource.namespace.is_some() {
        serde_json::to_value(PolicyReport {
            api_version: bylaw_api::policyreport::API_VERSION.to_owned(),
            kind: PolicyReport::KIND.to_owned(),
            metadata,
            scope: Some(scope),
            scope_selector: None,
            summary,
            results: Some(results),
        })
    } else {
        serde_json::to_value(ClusterPolicyReport {
            api_version: bylaw_api::policyreport::API_VERSION.to_owned(),
            kind: ClusterPolicyReport::KIND.to_owned(),
            metadata,
            scope: Some(scope),
            scope_selector: None,
            summary,
            results: Some(results),
        })
    };
    (value.unwrap_or(Value::Null), fingerprint)
}

/// A timestamp for tests and callers that have none.
pub const NO_TIME: Timestamp = Timestamp {
    seconds: 0,
    nanos: 0,
};

#[cfg(test)]
mod tests {
    use super::*;
    use bylaw_api::policyreport::PolicyResult;

    fn pod(uid: &str) -> ResourceIdentity {
        ResourceIdentity {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some("team".into()),
            name: format!("pod-{uid}"),
            uid: uid.into(),
        }
    }

    fn result(policy: &str, rule: &str, outcome: PolicyResult, at: i64) -> PolicyReportResult {
        PolicyReportResult {
            policy: policy.into(),
            rule: Some(rule.into()),
            result: Some(outcome),
            timestamp: Some(Timestamp {
                seconds: at,
                nanos: 0,
            }),
            ..PolicyReportResult::default()
        }
    }

    fn applied(changes: &[ReportChange]) -> Vec<&Value> {
        changes
            .iter()
            .filter_map(|c| match c {
                ReportChange::Apply { report, .. } => Some(report),
                ReportChange::Delete { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_report_counts_and_orders_results_and_names_its_resource() {
        let mut book = ReportBook::new();
        let key = |s: &str| PolicyKey(s.into());
        book.set_results(
            &pod("u1"),
            Source::Background,
            &key("zeta"),
            vec![result("zeta", "r", PolicyResult::Pass, 1)],
        );
        book.set_results(
            &pod("u1"),
            Source::Background,
            &key("alpha"),
            vec![
                result("alpha", "b", PolicyResult::Fail, 1),
                result("alpha", "a", PolicyResult::Skip, 1),
            ],
        );
        let changes = book.take_changes();
        let reports = applied(&changes);
        assert_eq!(reports.len(), 1);
        let report = reports[0];
        assert_eq!(report["kind"], "PolicyReport");
        assert_eq!(report["metadata"]["name"], "u1");
        assert_eq!(report["metadata"]["namespace"], "team");
        assert_eq!(report["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(report["scope"]["name"], "pod-u1");
        assert_eq!(
            report["summary"],
            serde_json::json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 1})
        );
        let order: Vec<(&str, &str)> = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["policy"].as_str().unwrap(), r["rule"].as_str().unwrap()))
            .collect();
        assert_eq!(order, [("alpha", "a"), ("alpha", "b"), ("zeta", "r")]);
    }

    #[test]
    fn nothing_is_written_again_until_something_but_the_time_changes() {
        let mut book = ReportBook::new();
        let key = PolicyKey("p".into());
        book.set_results(
            &pod("u1"),
            Source::Background,
            &key,
            vec![result("p", "r", PolicyResult::Fail, 1)],
        );
        let changes = book.take_changes();
        assert_eq!(changes.len(), 1);
        book.written(&changes[0]);
        // A rescan an hour later finds the same.
        let changed = book.set_results(
            &pod("u1"),
            Source::Background,
            &key,
            vec![result("p", "r", PolicyResult::Fail, 3601)],
        );
        assert!(!changed);
        assert!(book.take_changes().is_empty());
        // The resource is fixed.
        book.set_results(
            &pod("u1"),
            Source::Background,
            &key,
            vec![result("p", "r", PolicyResult::Pass, 7200)],
        );
        let changes = book.take_changes();
        assert_eq!(applied(&changes)[0]["summary"]["pass"], 1);
        // A new leader finds that report in the cluster and does not rewrite it.
        let existing = applied(&changes)[0].clone();
        book.written(&changes[0]);
        book.forget_written();
        assert!(book.adopt_existing("u1", &existing));
        assert!(book.take_changes().is_empty());
        assert!(!book.adopt_existing("gone", &existing));
    }

    #[test]
    fn deleting_a_resource_or_policy_removes_its_results() {
        let mut book = ReportBook::new();
        let (a, b) = (PolicyKey("a".into()), PolicyKey("b".into()));
        for uid in ["u1", "u2"] {
            book.set_results(
                &pod(uid),
                Source::Background,
                &a,
                vec![result("a", "r", PolicyResult::Fail, 1)],
            );
        }
        book.set_results(
            &pod("u1"),
            Source::Admission,
            &b,
            vec![result("b", "r", PolicyResult::Pass, 1)],
        );
        for change in book.take_changes() {
            book.written(&change);
        }
        book.remove_resource("u2");
        book.retain_policies(|k| k != &a);
        let changes = book.take_changes();
        assert!(changes.contains(&ReportChange::Delete {
            uid: "u2".into(),
            name: "u2".into(),
            namespace: Some("team".into())
        }));
        let reports = applied(&changes);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0]["results"].as_array().unwrap().len(), 1);
        assert_eq!(reports[0]["results"][0]["policy"], "b");
        for change in &changes {
            book.written(change);
        }
        // The last result goes: the report goes.
        book.set_results(&pod("u1"), Source::Admission, &b, Vec::new());
        assert_eq!(
            book.take_changes(),
            vec![ReportChange::Delete {
                uid: "u1".into(),
                name: "u1".into(),
                namespace: Some("team".into())
            }]
        );
    }

    #[test]
    fn oversized_reports_keep_the_worst_results_and_cut_long_messages() {
        let mut book = ReportBook::new();
        let mut results: Vec<PolicyReportResult> = (0..MAX_RESULTS_PER_REPORT + 50)
            .map(|i| result("p", &format!("r{i:04}"), PolicyResult::Pass, 1))
            .collect();
        let mut failing = result("p", "zz-fail", PolicyResult::Fail, 1);
        failing.message = Some("x".repeat(5000));
        results.push(failing);
        book.set_results(
            &pod("u1"),
            Source::Background,
            &PolicyKey("p".into()),
            results,
        );
        let changes = book.take_changes();
        let report = applied(&changes)[0];
        let kept = report["results"].as_array().unwrap();
        assert_eq!(kept.len(), MAX_RESULTS_PER_REPORT);
        assert_eq!(report["summary"]["fail"], 1);
        let message = kept.last().unwrap()["message"].as_str().unwrap();
        assert_eq!(message.len(), MAX_MESSAGE_BYTES);
        assert!(message.ends_with("..."));
    }
}
