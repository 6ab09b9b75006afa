//! Kyverno's `validate.podSecurity` rule: the Kubernetes Pod Security Standards checks at a
//! given level and version, Kyverno's per-control exclusions, and its failure message.
//!
//! Behaviour follows Kyverno's evaluator (which calls the checks of its fork of
//! `k8s.io/pod-security-admission` directly instead of going through the upstream registry):
//!
//! * `baseline` runs the baseline checks; `restricted` **and `privileged`** run every check,
//!   baseline and restricted alike, without upstream's overrides (so a restricted failure can
//!   be reported by both `capabilities_baseline` and `capabilities_restricted`).
//! * For a pinned version each check runs its newest revision whose minimum version is not
//!   newer than the pinned one; a check introduced after the pinned version still runs its
//!   first revision (Kyverno issue #14521). `latest` runs the newest revision of every check.
//! * Exclusions re-run the checks on a synthetic pod (pod-level: one placeholder container;
//!   container-level: only the containers whose image matches) and drop the default field
//!   errors that the exclusion's errors name, field path by field path.
//!
//! Everything here is pure code over `serde_json::Value`.

mod checks;
mod view;

#[cfg(test)]
mod tests;

use crate::json::Lookup;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use checks::{go_quote, CheckLevel, CHECKS};
use view::{ListKind, PodView, NULL};

/// Errors from parsing a `podSecurity` level or version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodSecurityError {
    /// The level is not `privileged`, `baseline` or `restricted`.
    #[error("invalid pod security level {0:?}: must be one of privileged, baseline, restricted")]
    InvalidLevel(String),
    /// The version is not `latest` or `v1.<minor>`.
    #[error("failed to parse pod security api version {0:?}: must be \"latest\" or \"v1.x\"")]
    InvalidVersion(String),
}

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    /// The level as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = PodSecurityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            other => Err(PodSecurityError::InvalidLevel(other.to_string())),
        }
    }
}

/// A Pod Security Standards version: `latest` or `v1.<minor>`.
///
/// Keeps the text it was parsed from because Kyverno's message repeats it verbatim (an
/// omitted version means `latest` but prints as empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    minor: Option<u32>,
    raw: String,
}

impl Version {
    /// `latest`.
    pub fn latest() -> Self {
        Version {
            minor: None,
            raw: "latest".into(),
        }
    }

    /// `v1.<minor>`.
    pub fn minor(minor: u32) -> Self {
        Version {
            minor: Some(minor),
            raw: format!("v1.{minor}"),
        }
    }

    /// Whether this is `latest`.
    pub fn is_latest(&self) -> bool {
        self.minor.is_none()
    }

    /// The minor version, `None` for `latest`.
    pub fn minor_version(&self) -> Option<u32> {
        self.minor
    }

    /// The text as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether a check revision introduced in `v1.<minor>` applies at this version.
    fn includes(&self, minor: u32) -> bool {
        self.minor.is_none_or(|m| m >= minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for Version {
    type Err = PodSecurityError;

    /// `latest`, empty (Kyverno's default, meaning `latest`) or `v1.<minor>` without leading
    /// zeros.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s == "latest" {
            return Ok(Version {
                minor: None,
                raw: s.to_string(),
            });
        }
        let invalid = || PodSecurityError::InvalidVersion(s.to_string());
        let digits = s.strip_prefix("v1.").ok_or_else(invalid)?;
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !well_formed {
            return Err(invalid());
        }
        let minor = digits.parse::<u32>().map_err(|_| invalid())?;
        Ok(Version {
            minor: Some(minor),
            raw: s.to_string(),
        })
    }
}

/// One entry of `validate.podSecurity.exclude`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclusion {
    /// The PSS control name, e.g. `Capabilities`.
    pub control_name: String,
    /// Image patterns (`*`, `?`) selecting containers; empty means a pod-level exclusion.
    pub images: Vec<String>,
    /// A field path such as `spec.containers[*].securityContext.capabilities.add`; `None`
    /// (or empty) selects every field of the control.
    pub restricted_field: Option<String>,
    /// Value patterns; every forbidden value of the field must match one.
    pub values: Vec<String>,
}

/// How a field violates the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The field holds a forbidden value.
    Forbidden,
    /// The field must be set and is not.
    Required,
}

/// The offending value of a field, typed as the checks report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadValue {
    /// A string (empty means "no value to show").
    Str(String),
    Bool(bool),
    Int(i64),
    List(Vec<String>),
}

impl BadValue {
    /// Whether Kyverno prints this value (everything but the empty string).
    fn is_shown(&self) -> bool {
        !matches!(self, BadValue::Str(s) if s.is_empty())
    }

    /// The value as Go's `%+v` prints it.
    fn render(&self) -> String {
        match self {
            BadValue::Str(s) => s.clone(),
            BadValue::Bool(b) => b.to_string(),
            BadValue::Int(i) => i.to_string(),
            BadValue::List(items) => format!("[{}]", items.join(" ")),
        }
    }

    /// The values an exclusion's `values` patterns are matched against.
    fn exclusion_values(&self) -> Vec<String> {
        match self {
            BadValue::Str(s) if s.is_empty() => Vec::new(),
            BadValue::Str(s) => vec![s.clone()],
            BadValue::Bool(b) => vec![b.to_string()],
            BadValue::Int(i) => vec![i.to_string()],
            BadValue::List(items) => items.clone(),
        }
    }
}

/// One offending field of a failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    /// Field path, e.g. `spec.containers[0].securityContext.privileged`.
    pub field: String,
    pub bad_value: BadValue,
}

impl FieldError {
    pub(crate) fn forbidden(field: String, bad_value: BadValue) -> Self {
        FieldError {
            kind: FieldErrorKind::Forbidden,
            field,
            bad_value,
        }
    }

    pub(crate) fn required(field: String) -> Self {
        FieldError {
            kind: FieldErrorKind::Required,
            field,
            bad_value: BadValue::Str(String::new()),
        }
    }
}

impl fmt::Display for FieldError {
    /// Kyverno's rendering of one field error in its failure message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FieldErrorKind::Forbidden if self.bad_value.is_shown() => write!(
                f,
                "{} is forbidden, forbidden values found: {}",
                self.field,
                self.bad_value.render()
            ),
            FieldErrorKind::Forbidden => write!(f, "{}: Forbidden", self.field),
            FieldErrorKind::Required => write!(f, "{}: Required value", self.field),
        }
    }
}

/// A failed Pod Security Standards check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlViolation {
    /// The PSS control name Kyverno's exclusions use, e.g. `Privileged Containers`.
    pub control_name: String,
    /// The check ID, e.g. `privileged`.
    pub check_id: String,
    /// The Pod Security admission forbidden reason, e.g. `privileged`.
    pub reason: String,
    /// The Pod Security admission forbidden detail, naming containers and values.
    pub detail: String,
    /// The offending field paths (same order as `errors`).
    pub fields: Vec<String>,
    /// The offending fields with their values.
    pub errors: Vec<FieldError>,
}

impl ControlViolation {
    fn sync_fields(&mut self) {
        self.fields = self.errors.iter().map(|e| e.field.clone()).collect();
    }
}

/// PSS control names and the check IDs each covers.
const CONTROLS: &[(&str, &[&str])] = &[
    (
        "Capabilities",
        &["capabilities_baseline", "capabilities_restricted"],
    ),
    (
        "Seccomp",
        &["seccompProfile_baseline", "seccompProfile_restricted"],
    ),
    ("Privileged Containers", &["privileged"]),
    ("Host Ports", &["hostPorts"]),
    ("/proc Mount Type", &["procMount", "procMount_restricted"]),
    ("HostProcess", &["windowsHostProcess"]),
    ("SELinux", &["seLinuxOptions"]),
    ("Host Namespaces", &["hostNamespaces"]),
    ("HostPath Volumes", &["hostPathVolumes"]),
    ("Sysctls", &["sysctls"]),
    ("AppArmor", &["appArmorProfile"]),
    ("Privilege Escalation", &["allowPrivilegeEscalation"]),
    ("Running as Non-root", &["runAsNonRoot"]),
    ("Running as Non-root user", &["runAsUser"]),
    ("Volume Types", &["restrictedVolumes"]),
    (
        "Host Probes / Lifecycle Hooks",
        &["hostProbesAndHostLifecycle"],
    ),
];

/// Controls Kyverno treats as restricted-only (a baseline rule may not exclude them, except
/// Seccomp and Capabilities which exist at both levels).
const RESTRICTED_CONTROLS: &[&str] = &[
    "Volume Types",
    "Privilege Escalation",
    "Running as Non-root",
    "Running as Non-root user",
    "Seccomp",
    "Capabilities",
];

/// Controls whose fields are only pod-level: exclusions must not list images.
const POD_LEVEL_CONTROLS: &[&str] = &[
    "Host Namespaces",
    "HostPath Volumes",
    "Sysctls",
    "AppArmor",
    "Volume Types",
];

/// Controls whose fields are only container-level: exclusions must list images.
const CONTAINER_LEVEL_CONTROLS: &[&str] = &[
    "Capabilities",
    "Privileged Containers",
    "Host Ports",
    "/proc Mount Type",
    "Privilege Escalation",
    "Host Probes / Lifecycle Hooks",
];

fn control_check_ids(control_name: &str) -> &'static [&'static str] {
    CONTROLS
        .iter()
        .find(|(name, _)| *name == control_name)
        .map(|(_, ids)| *ids)
        .unwrap_or(&[])
}

/// The PSS control a check ID belongs to (empty for an unknown ID).
pub fn control_name_of(check_id: &str) -> &'static str {
    CONTROLS
        .iter()
        .find(|(_, ids)| ids.contains(&check_id))
        .map(|(name, _)| *name)
        .unwrap_or("")
}

/// Runs every applicable check on `pod`.
fn run_checks(level: Level, version: &Version, pod: &PodView<'_>) -> Vec<ControlViolation> {
    run_checks_after(level, version, pod, None)
}

/// [`run_checks`], given what the baseline checks found on the same pod at the same version
/// when that is known: restricted is baseline and more, so only its own checks run.
fn run_checks_after(
    level: Level,
    version: &Version,
    pod: &PodView<'_>,
    baseline: Option<&[ControlViolation]>,
) -> Vec<ControlViolation> {
    let mut out = Vec::new();
    // In `CHECKS` order, as the baseline run found them.
    let mut known = baseline.map(|found| found.iter().peekable());
    for check in CHECKS {
        if level == Level::Baseline && check.level != CheckLevel::Baseline {
            continue;
        }
        if let Some(known) = known
            .as_mut()
            .filter(|_| check.level == CheckLevel::Baseline)
        {
            out.extend(known.next_if(|v| v.check_id == check.id).cloned());
            continue;
        }
        // Kyverno starts from the first revision and moves to later ones the version allows;
        // it never skips a check for being newer than the version.
        let mut selected = check.versions.first();
        for revision in check.versions.iter().skip(1) {
            if version.includes(revision.0) {
                selected = Some(revision);
            }
        }
        let Some((_, run)) = selected else {
            continue;
        };
        if let Some(failure) = run(pod) {
            let mut violation = ControlViolation {
                control_name: control_name_of(check.id).to_string(),
                check_id: check.id.to_string(),
                reason: failure.reason,
                detail: failure.detail,
                fields: Vec::new(),
                errors: failure.errors,
            };
            violation.sync_fields();
            out.push(violation);
        }
    }
    out
}

/// Evaluates a pod against the standard at `level`/`version`, then applies `exclusions`.
///
/// `pod_metadata` and `pod_spec` are the pod's `metadata` and `spec` (see [`pod_parts`] for
/// controllers). An empty result means the pod passes.
pub fn evaluate(
    level: Level,
    version: &Version,
    pod_metadata: &Value,
    pod_spec: &Value,
    exclusions: &[Exclusion],
) -> Vec<ControlViolation> {
    let pod = PodView::full(pod_metadata, pod_spec);
    let violations = run_checks(level, version, &pod);
    exclude(level, version, &pod, violations, exclusions)
}

/// The checks of one level and version that ran against one pod of a request, before
/// exclusions: several podSecurity rules (a policy per level, a rule per set of exclusions)
/// check the same pod, and the checks are most of a rule's cost.
#[derive(Debug, Default)]
pub struct CheckRuns {
    runs: std::cell::RefCell<Vec<CheckRun>>,
}

#[derive(Debug)]
struct CheckRun {
    level: Level,
    version: Version,
    /// Addresses of the pod's metadata and spec, only ever compared: the owner of the
    /// `CheckRuns` holds the request they point into, unchanged, while it keeps them.
    pod: (usize, usize),
    violations: Vec<ControlViolation>,
}

impl CheckRuns {
    /// [`evaluate`], running the checks only the first time a level and version meet the pod.
    /// The caller keeps one `CheckRuns` per request and never lets the request change while
    /// it does (see `crate::validate::RequestMemo`).
    pub fn evaluate(
        &self,
        level: Level,
        version: &Version,
        pod_metadata: &Value,
        pod_spec: &Value,
        exclusions: &[Exclusion],
    ) -> Vec<ControlViolation> {
        let key = (
            std::ptr::from_ref(pod_metadata) as usize,
            std::ptr::from_ref(pod_spec) as usize,
        );
        let found = self.runs.borrow().iter().find_map(|run| {
            (run.level == level && run.version == *version && run.pod == key)
                .then(|| run.violations.clone())
        });
        // A pod that passed before passes again, whatever the exclusions: no view is needed.
        if found.as_ref().is_some_and(Vec::is_empty) {
            return Vec::new();
        }
        let pod = PodView::full(pod_metadata, pod_spec);
        let violations = match found {
            Some(violations) => violations,
            None => {
                // A restricted run after a baseline one (the library's podSecurity policies
                // come as a pair) runs only the restricted checks.
                let baseline = (level == Level::Restricted)
                    .then(|| {
                        self.runs.borrow().iter().find_map(|run| {
                            (run.level == Level::Baseline
                                && run.version == *version
                                && run.pod == key)
                                .then(|| run.violations.clone())
                        })
                    })
                    .flatten();
                let violations = run_checks_after(level, version, &pod, baseline.as_deref());
                self.runs.borrow_mut().push(CheckRun {
                    level,
                    version: version.clone(),
                    pod: key,
                    violations: violations.clone(),
                });
                violations
            }
        };
        exclude(level, version, &pod, violations, exclusions)
    }
}

/// Applies exclusions to violations found earlier — what Kyverno does with a
/// `PolicyException`'s `podSecurity` list after the rule's own evaluation failed.
pub fn apply_exclusions(
    level: Level,
    version: &Version,
    pod_metadata: &Value,
    pod_spec: &Value,
    violations: Vec<ControlViolation>,
    exclusions: &[Exclusion],
) -> Vec<ControlViolation> {
    let pod = PodView::full(pod_metadata, pod_spec);
    exclude(level, version, &pod, violations, exclusions)
}

fn exclude(
    level: Level,
    version: &Version,
    pod: &PodView<'_>,
    mut violations: Vec<ControlViolation>,
    exclusions: &[Exclusion],
) -> Vec<ControlViolation> {
    if violations.is_empty() {
        return violations;
    }
    let placeholder = serde_json::json!({ "name": "fake" });
    for exclusion in exclusions {
        let ids = control_check_ids(&exclusion.control_name);
        if ids.is_empty() || violations.is_empty() {
            continue;
        }
        let container_level = !exclusion.images.is_empty();
        let synthetic = if container_level {
            pod.only_containers(|c| matches_any(&exclusion.images, c.image()))
        } else {
            pod.with_placeholder_container(&placeholder)
        };
        for excluded in run_checks(level, version, &synthetic) {
            if !ids.contains(&excluded.check_id.as_str()) {
                continue;
            }
            for error in &excluded.errors {
                exempt_one(
                    exclusion,
                    error,
                    &excluded.check_id,
                    container_level,
                    (&synthetic, pod),
                    &mut violations,
                );
            }
        }
    }
    violations
}

/// Removes from `violations` the first field error of the same check that `error` (found on
/// the synthetic pod) names, if the exclusion's field and values select `error`.
fn exempt_one(
    exclusion: &Exclusion,
    error: &FieldError,
    check_id: &str,
    container_level: bool,
    (synthetic, pod): (&PodView<'_>, &PodView<'_>),
    violations: &mut Vec<ControlViolation>,
) {
    let excluded = FieldKey::of(&error.field, container_level, synthetic);
    let wanted = exclusion.restricted_field.as_deref().unwrap_or("");
    if !wanted.is_empty() && excluded.pattern != wanted {
        return;
    }
    if !exclusion.values.is_empty() {
        let all_listed = error
            .bad_value
            .exclusion_values()
            .iter()
            .all(|v| matches_any(&exclusion.values, v));
        if !all_listed {
            return;
        }
    }
    let Some(pos) = violations.iter().position(|v| v.check_id == check_id) else {
        return;
    };
    let Some(violation) = violations.get_mut(pos) else {
        return;
    };
    let hit = violation.errors.iter().position(|candidate| {
        let key = FieldKey::of(&candidate.field, container_level, pod);
        key.pattern == excluded.pattern && key.container == excluded.container
    });
    if let Some(idx) = hit {
        // Kyverno swaps the last error into the removed slot; keep that order.
        violation.errors.swap_remove(idx);
        violation.sync_fields();
    }
    if violation.errors.is_empty() {
        violations.remove(pos);
    }
}

/// A field path with indices replaced by `*`, plus — for container fields of a
/// container-level exclusion — the name of the container it belongs to.
struct FieldKey {
    pattern: String,
    container: Option<String>,
}

impl FieldKey {
    fn of(field: &str, container_level: bool, pod: &PodView<'_>) -> FieldKey {
        let pattern = star_indices(field);
        if !container_level {
            return FieldKey {
                pattern,
                container: None,
            };
        }
        // Kyverno takes the second alphabetic word as the list name and the first number as
        // the container index.
        let list = alpha_words(field).nth(1).and_then(ListKind::from_field);
        let index = first_number(field);
        let container = match (list, index) {
            (Some(kind), Some(index)) => {
                Some(pod.container_name(kind, index).unwrap_or("").to_string())
            }
            _ => None,
        };
        FieldKey { pattern, container }
    }
}

/// Replaces every run of ASCII digits with `*`.
fn star_indices(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut in_digits = false;
    for ch in field.chars() {
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('*');
                in_digits = true;
            }
        } else {
            in_digits = false;
            out.push(ch);
        }
    }
    out
}

fn alpha_words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
}

fn first_number(s: &str) -> Option<usize> {
    s.split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
}

fn matches_any(patterns: &[String], text: &str) -> bool {
    patterns
        .iter()
        .any(|p| crate::wildcard::wildcard_match(p, text))
}

/// Kyverno's list of failed checks: `(Forbidden reason: …, field error list: […])` per
/// check, concatenated.
pub fn format_checks(violations: &[ControlViolation]) -> String {
    let mut out = String::new();
    for v in violations {
        let errors: Vec<String> = v.errors.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "(Forbidden reason: {}, field error list: [{}])",
            v.reason,
            errors.join(", ")
        ));
    }
    out
}

/// The part of Kyverno's failure message after the rule name:
/// `It violates PodSecurity "<level>:<version>": <checks>`.
pub fn format_message(level: Level, version: &Version, violations: &[ControlViolation]) -> String {
    format!(
        "It violates PodSecurity \"{}:{}\": {}",
        level,
        version.as_str(),
        format_checks(violations)
    )
}

/// Kyverno's complete failure message for rule `rule_name`.
pub fn failure_message(
    rule_name: &str,
    level: Level,
    version: &Version,
    violations: &[ControlViolation],
) -> String {
    format!(
        "Validation rule '{rule_name}' failed. {}",
        format_message(level, version, violations)
    )
}

/// Rewrites field paths the way Kyverno does before reporting: for pod controllers every
/// `spec` becomes `spec.template.spec` (CronJob: `spec.jobTemplate.spec.template.spec`),
/// and — for every kind, Pod included — `metadata` becomes `spec.template.metadata`.
///
/// Kyverno applies a `PolicyException`'s exclusions after this rewrite, so call
/// [`apply_exclusions`] on the rewritten violations to reproduce it.
pub fn rewrite_paths_for_kind(violations: &mut [ControlViolation], kind: &str) {
    let spec_replacement = match kind {
        "DaemonSet"
        | "Deployment"
        | "Job"
        | "StatefulSet"
        | "ReplicaSet"
        | "ReplicationController" => Some("spec.template.spec"),
        "CronJob" => Some("spec.jobTemplate.spec.template.spec"),
        _ => None,
    };
    for v in violations.iter_mut() {
        for e in &mut v.errors {
            if let Some(replacement) = spec_replacement {
                e.field = e.field.replace("spec", replacement);
            }
            e.field = e.field.replace("metadata", "spec.template.metadata");
        }
        v.sync_fields();
    }
}

/// The pod metadata and spec Kyverno evaluates for `resource`: a Pod's own, a controller's
/// `spec.template`, and for a CronJob `spec.jobTemplate.metadata` with
/// `spec.jobTemplate.spec.template.spec` (Kyverno reads the job template's metadata, not the
/// pod template's). `None` for other kinds, which Kyverno reports as an error. Missing parts
/// come back as `null` and evaluate as empty.
pub fn pod_parts(resource: &Value) -> Option<(&Value, &Value)> {
    let kind = resource.field("kind").and_then(Value::as_str)?;
    let at = |path: &[&str]| {
        let mut v = resource;
        for key in path {
            v = v.field(key).unwrap_or(&NULL);
        }
        v
    };
    match kind {
        "Pod" => Some((at(&["metadata"]), at(&["spec"]))),
        "DaemonSet"
        | "Deployment"
        | "Job"
        | "StatefulSet"
        | "ReplicaSet"
        | "ReplicationController" => Some((
            at(&["spec", "template", "metadata"]),
            at(&["spec", "template", "spec"]),
        )),
        "CronJob" => Some((
            at(&["spec", "jobTemplate", "metadata"]),
            at(&["spec", "jobTemplate", "spec", "template", "spec"]),
        )),
        _ => None,
    }
}

/// Kyverno's load-time checks of a rule's exclusions. Errors are reported with field paths
/// relative to the rule (`podSecurity.exclude[i]…`); several errors are joined as Kubernetes
/// aggregates them (`[a, b]`).
pub fn validate_exclusions(
    level: Level,
    _version: &Version,
    exclusions: &[Exclusion],
) -> Result<(), String> {
    let mut errors = Vec::new();
    for (i, ex) in exclusions.iter().enumerate() {
        let path = format!("podSecurity.exclude[{i}]");
        let name = ex.control_name.as_str();
        if control_check_ids(name).is_empty() {
            let supported: Vec<String> = CONTROLS.iter().map(|(n, _)| go_quote(n)).collect();
            errors.push(format!(
                "{path}.controlName: Unsupported value: {}: supported values: {}",
                go_quote(name),
                supported.join(", ")
            ));
            continue;
        }
        if CONTAINER_LEVEL_CONTROLS.contains(&name) && ex.images.is_empty() {
            errors.push(format!(
                "{path}.controlName: Invalid value: {}: exclude.images must be specified for the container level control",
                go_quote(name)
            ));
        } else if POD_LEVEL_CONTROLS.contains(&name) && !ex.images.is_empty() {
            errors.push(format!(
                "{path}.controlName: Invalid value: {}: exclude.images must not be specified for the pod level control",
                go_quote(name)
            ));
        }
        let both_levels = name == "Seccomp" || name == "Capabilities";
        if level == Level::Baseline && !both_levels && RESTRICTED_CONTROLS.contains(&name) {
            errors.push(format!(
                "{path}.controlName: Invalid value: {}: Invalid control name defined at the given level",
                go_quote(name)
            ));
        }
        let has_field = ex
            .restricted_field
            .as_deref()
            .is_some_and(|f| !f.is_empty());
        if has_field && ex.values.is_empty() {
            errors.push(format!("{path}.values: Forbidden: values is required"));
        }
        if !has_field && !ex.values.is_empty() {
            errors.push(format!(
                "{path}.restrictedField: Forbidden: restrictedField is required"
            ));
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}
