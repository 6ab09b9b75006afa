//! The Pod Security Standards checks, one function per check revision.
//!
//! Each check mirrors the Kubernetes `pod-security-admission` policy check of the same ID as
//! vendored by Kyverno (its fork adds a field error list to every failure, which Kyverno
//! needs for `restrictedField`/`values` exclusions and prints in its message). Reasons and
//! details keep the upstream wording because users compare them with `kubectl` output.

use crate::json::Lookup;
use std::collections::BTreeSet;

use serde_json::Value;

use super::view::{
    map_bool, map_int, map_obj, map_str, map_str_list, obj_field, ContainerRef, PodView,
};
use super::{BadValue, FieldError};

/// A failed check before it is named for the caller.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    pub reason: String,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

/// The level a check belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckLevel {
    Baseline,
    Restricted,
}

pub(crate) type CheckFn = fn(&PodView<'_>) -> Option<Failure>;

/// One check and its revisions, as `(first policy minor version, implementation)`, oldest
/// first.
pub(crate) struct CheckDef {
    pub id: &'static str,
    pub level: CheckLevel,
    pub versions: &'static [(u32, CheckFn)],
}

/// All checks, in the order Kubernetes registers them (its source files sorted by name).
pub(crate) static CHECKS: &[CheckDef] = &[
    CheckDef {
        id: "allowPrivilegeEscalation",
        level: CheckLevel::Restricted,
        versions: &[
            (8, allow_privilege_escalation_v1_8),
            (25, allow_privilege_escalation_v1_25),
        ],
    },
    CheckDef {
        id: "appArmorProfile",
        level: CheckLevel::Baseline,
        versions: &[(0, app_armor_profile_v1_0)],
    },
    CheckDef {
        id: "capabilities_baseline",
        level: CheckLevel::Baseline,
        versions: &[(0, capabilities_baseline_v1_0)],
    },
    CheckDef {
        id: "capabilities_restricted",
        level: CheckLevel::Restricted,
        versions: &[
            (22, capabilities_restricted_v1_22),
            (25, capabilities_restricted_v1_25),
        ],
    },
    CheckDef {
        id: "hostNamespaces",
        level: CheckLevel::Baseline,
        versions: &[(0, host_namespaces_v1_0)],
    },
    CheckDef {
        id: "hostPathVolumes",
        level: CheckLevel::Baseline,
        versions: &[(0, host_path_volumes_v1_0)],
    },
    CheckDef {
        id: "hostPorts",
        level: CheckLevel::Baseline,
        versions: &[(0, host_ports_v1_0)],
    },
    CheckDef {
        id: "hostProbesAndHostLifecycle",
        level: CheckLevel::Baseline,
        versions: &[(34, host_probes_v1_34)],
    },
    CheckDef {
        id: "privileged",
        level: CheckLevel::Baseline,
        versions: &[(0, privileged_v1_0)],
    },
    CheckDef {
        id: "procMount",
        level: CheckLevel::Baseline,
        versions: &[(0, proc_mount_strict), (35, proc_mount_baseline_v1_35)],
    },
    CheckDef {
        id: "procMount_restricted",
        level: CheckLevel::Restricted,
        versions: &[(35, proc_mount_strict)],
    },
    CheckDef {
        id: "restrictedVolumes",
        level: CheckLevel::Restricted,
        versions: &[(0, restricted_volumes_v1_0)],
    },
    CheckDef {
        id: "runAsNonRoot",
        level: CheckLevel::Restricted,
        versions: &[(0, run_as_non_root_v1_0), (35, run_as_non_root_v1_35)],
    },
    CheckDef {
        id: "runAsUser",
        level: CheckLevel::Restricted,
        versions: &[(23, run_as_user_v1_23), (35, run_as_user_v1_35)],
    },
    CheckDef {
        id: "seLinuxOptions",
        level: CheckLevel::Baseline,
        versions: &[(0, se_linux_options_v1_0), (31, se_linux_options_v1_31)],
    },
    CheckDef {
        id: "seccompProfile_baseline",
        level: CheckLevel::Baseline,
        versions: &[
            (0, seccomp_baseline_annotations_v1_0),
            (19, seccomp_baseline_v1_19),
        ],
    },
    CheckDef {
        id: "seccompProfile_restricted",
        level: CheckLevel::Restricted,
        versions: &[
            (19, seccomp_restricted_v1_19),
            (25, seccomp_restricted_v1_25),
        ],
    },
    CheckDef {
        id: "sysctls",
        level: CheckLevel::Baseline,
        versions: &[
            (0, sysctls_v1_0),
            (27, sysctls_v1_27),
            (29, sysctls_v1_29),
            (32, sysctls_v1_32),
        ],
    },
    CheckDef {
        id: "windowsHostProcess",
        level: CheckLevel::Baseline,
        versions: &[(0, windows_host_process_v1_0)],
    },
];

// ---------------------------------------------------------------------------------------------
// Helpers mirroring the upstream message builders.

pub(crate) fn pluralize<'s>(singular: &'s str, plural: &'s str, count: usize) -> &'s str {
    if count == 1 {
        singular
    } else {
        plural
    }
}

/// `"a", "b"` — every item in double quotes, comma separated.
pub(crate) fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let inner: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("\"{}\"", inner.join("\", \""))
}

/// Go's `%q` for the strings that occur here (escapes quotes, backslashes and control
/// characters).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

fn forbidden(field: String, bad_value: BadValue) -> FieldError {
    FieldError::forbidden(field, bad_value)
}

fn required(field: String) -> FieldError {
    FieldError::required(field)
}

fn fail(reason: impl Into<String>, detail: String, errors: Vec<FieldError>) -> Option<Failure> {
    Some(Failure {
        reason: reason.into(),
        detail,
        errors,
    })
}

// ---------------------------------------------------------------------------------------------
// allowPrivilegeEscalation (restricted)

fn allow_privilege_escalation_v1_8(pod: &PodView<'_>) -> Option<Failure> {
    let mut bad = Vec::new();
    let mut errors = Vec::new();
    for c in &pod.containers {
        // Paths are formatted only for containers that fail: most pods pass.
        let path = || c.path("securityContext.allowPrivilegeEscalation");
        match c.security_context() {
            None => {
                bad.push(c.name());
                errors.push(required(path()));
            }
            Some(sc) => match map_bool(sc, "allowPrivilegeEscalation") {
                // The Kyverno fork reports the unset field as the literal string "nil".
                None => {
                    bad.push(c.name());
                    errors.push(forbidden(path(), BadValue::Str("nil".into())));
                }
                Some(true) => {
                    bad.push(c.name());
                    errors.push(forbidden(path(), BadValue::Bool(true)));
                }
                Some(false) => {}
            },
        }
    }
    if bad.is_empty() {
        return None;
    }
    fail(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
        errors,
    )
}

fn allow_privilege_escalation_v1_25(pod: &PodView<'_>) -> Option<Failure> {
    if pod.is_windows() {
        return None;
    }
    allow_privilege_escalation_v1_8(pod)
}

// ---------------------------------------------------------------------------------------------
// appArmorProfile (baseline)

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn app_armor_type_allowed(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

fn app_armor_annotation_allowed(v: &str) -> bool {
    v.is_empty() || v == "runtime/default" || v.starts_with("localhost/")
}

fn app_armor_profile_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut setters: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    let mut bad_types = BTreeSet::new();

    if let Some(profile) = pod
        .security_context()
        .and_then(|sc| map_obj(sc, "appArmorProfile"))
    {
        let t = map_str(profile, "type").unwrap_or("");
        if !app_armor_type_allowed(t) {
            setters.push("pod".into());
            errors.push(forbidden(
                "spec.securityContext.appArmorProfile.type".into(),
                BadValue::Str(t.into()),
            ));
            bad_types.insert(t.to_string());
        }
    }

    let mut bad_containers = Vec::new();
    for c in &pod.containers {
        let Some(profile) = c
            .security_context()
            .and_then(|sc| map_obj(sc, "appArmorProfile"))
        else {
            continue;
        };
        let t = map_str(profile, "type").unwrap_or("");
        if !app_armor_type_allowed(t) {
            bad_containers.push(c.name());
            errors.push(forbidden(
                c.path("securityContext.appArmorProfile.type"),
                BadValue::Str(t.into()),
            ));
            bad_types.insert(t.to_string());
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }

    let mut bad_annotations = Vec::new();
    for (key, value) in pod.annotations() {
        if key.starts_with(APPARMOR_ANNOTATION_PREFIX) && !app_armor_annotation_allowed(value) {
            bad_annotations.push(format!("{key}={}", go_quote(value)));
            errors.push(forbidden(
                format!("metadata.annotations[{key}]"),
                BadValue::Str(value.into()),
            ));
        }
    }
    let mut bad_values: Vec<String> = bad_types.into_iter().collect();
    if !bad_annotations.is_empty() {
        bad_annotations.sort();
        setters.push(pluralize("annotation", "annotations", bad_annotations.len()).into());
        bad_values.extend(bad_annotations);
    }

    if setters.is_empty() {
        return None;
    }
    fail(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            bad_values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&bad_values)
        ),
        errors,
    )
}

// ---------------------------------------------------------------------------------------------
// capabilities (baseline and restricted)

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn capabilities_of<'a>(c: &ContainerRef<'a>) -> Option<&'a serde_json::Map<String, Value>> {
    c.security_context()
        .and_then(|sc| map_obj(sc, "capabilities"))
}

fn capabilities_baseline_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut bad = Vec::new();
    let mut errors = Vec::new();
    let mut all_forbidden = BTreeSet::new();
    for c in &pod.containers {
        let Some(caps) = capabilities_of(c) else {
            continue;
        };
        let forbidden_here: BTreeSet<String> = map_str_list(caps, "add")
            .into_iter()
            .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
            .map(str::to_string)
            .collect();
        if !forbidden_here.is_empty() {
            bad.push(c.name());
            all_forbidden.extend(forbidden_here.iter().cloned());
            errors.push(forbidden(
                c.path("securityContext.capabilities.add"),
                BadValue::List(forbidden_here.into_iter().collect()),
            ));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let caps: Vec<String> = all_forbidden.into_iter().collect();
    fail(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(&caps)
        ),
        errors,
    )
}

fn capabilities_restricted_v1_22(pod: &PodView<'_>) -> Option<Failure> {
    let mut missing_drop = Vec::new();
    let mut missing_drop_errors = Vec::new();
    let mut adding = Vec::new();
    let mut adding_errors = Vec::new();
    let mut all_forbidden = BTreeSet::new();

    for c in &pod.containers {
        let drop_path = || c.path("securityContext.capabilities.drop");
        let Some(caps) = capabilities_of(c) else {
            missing_drop.push(c.name());
            missing_drop_errors.push(required(drop_path()));
            continue;
        };
        let drop = map_str_list(caps, "drop");
        if !drop.contains(&"ALL") {
            missing_drop.push(c.name());
            if drop.is_empty() {
                missing_drop_errors.push(required(drop_path()));
            } else {
                let dropped: BTreeSet<String> = drop.iter().map(|s| s.to_string()).collect();
                missing_drop_errors.push(forbidden(
                    drop_path(),
                    BadValue::List(dropped.into_iter().collect()),
                ));
            }
        }
        let forbidden_here: BTreeSet<String> = map_str_list(caps, "add")
            .into_iter()
            .filter(|cap| *cap != "NET_BIND_SERVICE")
            .map(str::to_string)
            .collect();
        if !forbidden_here.is_empty() {
            adding.push(c.name());
            all_forbidden.extend(forbidden_here.iter().cloned());
            adding_errors.push(forbidden(
                c.path("securityContext.capabilities.add"),
                BadValue::List(forbidden_here.into_iter().collect()),
            ));
        }
    }

    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop)
        ));
    }
    if !adding.is_empty() {
        let caps: Vec<String> = all_forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&caps)
        ));
    }
    if details.is_empty() {
        return None;
    }
    missing_drop_errors.extend(adding_errors);
    fail(
        "unrestricted capabilities",
        details.join("; "),
        missing_drop_errors,
    )
}

fn capabilities_restricted_v1_25(pod: &PodView<'_>) -> Option<Failure> {
    if pod.is_windows() {
        return None;
    }
    capabilities_restricted_v1_22(pod)
}

// ---------------------------------------------------------------------------------------------
// hostNamespaces, hostPathVolumes, hostPorts, hostProbesAndHostLifecycle (baseline)

fn host_namespaces_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut data = Vec::new();
    let mut errors = Vec::new();
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod.spec.field(field).and_then(Value::as_bool) == Some(true) {
            data.push(format!("{field}=true"));
            errors.push(forbidden(format!("spec.{field}"), BadValue::Bool(true)));
        }
    }
    if data.is_empty() {
        return None;
    }
    fail("host namespaces", data.join(", "), errors)
}

fn volumes<'a>(
    pod: &PodView<'a>,
) -> impl Iterator<Item = (usize, &'a serde_json::Map<String, Value>)> {
    pod.spec
        .field("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| v.as_object().map(|m| (i, m)))
}

fn present(map: &serde_json::Map<String, Value>, key: &str) -> bool {
    map.field(key).is_some_and(|v| !v.is_null())
}

fn host_path_volumes_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for (i, volume) in volumes(pod) {
        if present(volume, "hostPath") {
            names.push(map_str(volume, "name").unwrap_or(""));
            let path = map_obj(volume, "hostPath")
                .and_then(|hp| map_str(hp, "path"))
                .unwrap_or("");
            errors.push(forbidden(
                format!("spec.volumes[{i}].hostPath"),
                BadValue::Str(path.into()),
            ));
        }
    }
    if names.is_empty() {
        return None;
    }
    fail(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names)
        ),
        errors,
    )
}

fn host_ports_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut bad = Vec::new();
    let mut errors = Vec::new();
    let mut ports = BTreeSet::new();
    for c in &pod.containers {
        let mut found = false;
        let list = c.value.field("ports").and_then(Value::as_array);
        for (i, port) in list.into_iter().flatten().enumerate() {
            let host_port = port
                .as_object()
                .and_then(|p| map_int(p, "hostPort"))
                .unwrap_or(0);
            if host_port != 0 {
                found = true;
                ports.insert(host_port.to_string());
                errors.push(forbidden(
                    c.path(&format!("ports[{i}].hostPort")),
                    BadValue::Int(host_port),
                ));
            }
        }
        if found {
            bad.push(c.name());
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    fail(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
        errors,
    )
}

fn host_probes_v1_34(pod: &PodView<'_>) -> Option<Failure> {
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    let mut errors = Vec::new();
    for c in &pod.containers {
        let mut handlers: Vec<(String, &serde_json::Map<String, Value>)> = Vec::new();
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(p) = obj_field(c.value, probe) {
                handlers.push((probe.to_string(), p));
            }
        }
        if let Some(lifecycle) = obj_field(c.value, "lifecycle") {
            for hook in ["postStart", "preStop"] {
                if let Some(h) = map_obj(lifecycle, hook) {
                    handlers.push((format!("lifecycle.{hook}"), h));
                }
            }
        }
        for (prefix, handler) in handlers {
            for action in ["httpGet", "tcpSocket"] {
                let host = map_obj(handler, action)
                    .and_then(|a| map_str(a, "host"))
                    .unwrap_or("");
                if !host.is_empty() {
                    bad.insert(c.name().to_string());
                    hosts.insert(host.to_string());
                    errors.push(forbidden(
                        c.path(&format!("{prefix}.{action}.host")),
                        BadValue::Str(host.into()),
                    ));
                }
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    let bad: Vec<String> = bad.into_iter().collect();
    let hosts: Vec<String> = hosts.into_iter().collect();
    fail(
        "probe or lifecycle host",
        format!(
            "{} {} {} {} {}",
            pluralize("container", "containers", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        ),
        errors,
    )
}

// ---------------------------------------------------------------------------------------------
// privileged, procMount (baseline), procMount_restricted

fn privileged_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut bad = Vec::new();
    let mut errors = Vec::new();
    for c in &pod.containers {
        if c.security_context()
            .and_then(|sc| map_bool(sc, "privileged"))
            == Some(true)
        {
            bad.push(c.name());
            errors.push(forbidden(
                c.path("securityContext.privileged"),
                BadValue::Bool(true),
            ));
        }
    }
    if bad.is_empty() {
        return None;
    }
    fail(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
        errors,
    )
}

/// Only `Default` (or unset) is allowed, whatever the pod's user namespace.
fn proc_mount_strict(pod: &PodView<'_>) -> Option<Failure> {
    let mut bad = Vec::new();
    let mut errors = Vec::new();
    let mut types = BTreeSet::new();
    for c in &pod.containers {
        let Some(pm) = c.security_context().and_then(|sc| sc.field("procMount")) else {
            continue;
        };
        if pm.is_null() {
            continue;
        }
        let pm = pm.as_str().unwrap_or("");
        if pm != "Default" {
            bad.push(c.name());
            types.insert(pm.to_string());
            errors.push(forbidden(
                c.path("securityContext.procMount"),
                BadValue::Str(pm.into()),
            ));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    fail(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&types)
        ),
        errors,
    )
}

fn proc_mount_baseline_v1_35(pod: &PodView<'_>) -> Option<Failure> {
    if pod.in_user_namespace() {
        return None;
    }
    proc_mount_strict(pod)
}

// ---------------------------------------------------------------------------------------------
// restrictedVolumes (restricted)

const ALLOWED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Restricted volume sources in the order the check tests them.
const RESTRICTED_VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

fn restricted_volumes_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut names = Vec::new();
    let mut types = BTreeSet::new();
    let mut errors = Vec::new();
    for (i, volume) in volumes(pod) {
        if ALLOWED_VOLUME_SOURCES.iter().any(|s| present(volume, s)) {
            continue;
        }
        let source = RESTRICTED_VOLUME_SOURCES
            .iter()
            .find(|s| present(volume, s))
            .copied()
            .unwrap_or("unknown");
        names.push(map_str(volume, "name").unwrap_or(""));
        types.insert(source);
        errors.push(forbidden(
            format!("spec.volumes[{i}].{source}"),
            BadValue::Str(String::new()),
        ));
    }
    if names.is_empty() {
        return None;
    }
    let types: Vec<&str> = types.into_iter().collect();
    fail(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names),
            pluralize("uses", "use", names.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
        errors,
    )
}

// ---------------------------------------------------------------------------------------------
// runAsNonRoot, runAsUser (restricted)

fn run_as_non_root_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut setters: Vec<String> = Vec::new();
    let mut setter_errors = Vec::new();
    let mut pod_non_root = false;
    match pod
        .security_context()
        .and_then(|sc| map_bool(sc, "runAsNonRoot"))
    {
        Some(false) => {
            setters.push("pod".into());
            setter_errors.push(forbidden(
                "spec.securityContext.runAsNonRoot".into(),
                BadValue::Bool(false),
            ));
        }
        Some(true) => pod_non_root = true,
        None => {}
    }

    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    let mut implicit_errors = Vec::new();
    for c in &pod.containers {
        let path = || c.path("securityContext.runAsNonRoot");
        match c
            .security_context()
            .and_then(|sc| map_bool(sc, "runAsNonRoot"))
        {
            Some(false) => {
                explicit.push(c.name());
                setter_errors.push(forbidden(path(), BadValue::Bool(false)));
            }
            Some(true) => {}
            None => {
                if !pod_non_root {
                    implicit.push(c.name());
                    implicit_errors.push(required(path()));
                }
            }
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }

    let mut details = Vec::new();
    if !setters.is_empty() {
        details.push(format!(
            "{} must not set securityContext.runAsNonRoot=false",
            setters.join(" and ")
        ));
    }
    if !implicit.is_empty() {
        details.push(format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicit)
        ));
    }
    if details.is_empty() {
        return None;
    }
    setter_errors.extend(implicit_errors);
    fail("runAsNonRoot != true", details.join("\n"), setter_errors)
}

fn run_as_non_root_v1_35(pod: &PodView<'_>) -> Option<Failure> {
    if pod.in_user_namespace() {
        return None;
    }
    run_as_non_root_v1_0(pod)
}

fn run_as_user_v1_23(pod: &PodView<'_>) -> Option<Failure> {
    let mut setters: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    if pod
        .security_context()
        .and_then(|sc| map_int(sc, "runAsUser"))
        == Some(0)
    {
        setters.push("pod".into());
        errors.push(forbidden(
            "spec.securityContext.runAsUser".into(),
            BadValue::Int(0),
        ));
    }
    let mut explicit = Vec::new();
    for c in &pod.containers {
        if c.security_context().and_then(|sc| map_int(sc, "runAsUser")) == Some(0) {
            explicit.push(c.name());
            errors.push(forbidden(
                c.path("securityContext.runAsUser"),
                BadValue::Int(0),
            ));
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
        errors,
    )
}

fn run_as_user_v1_35(pod: &PodView<'_>) -> Option<Failure> {
    if pod.in_user_namespace() {
        return None;
    }
    run_as_user_v1_23(pod)
}

// ---------------------------------------------------------------------------------------------
// seLinuxOptions (baseline)

const SELINUX_TYPES_V1_0: &[&str] = &["", "container_t", "container_init_t", "container_kvm_t"];
const SELINUX_TYPES_V1_31: &[&str] = &[
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

fn se_linux_options_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    se_linux_options(pod, SELINUX_TYPES_V1_0)
}

fn se_linux_options_v1_31(pod: &PodView<'_>) -> Option<Failure> {
    se_linux_options(pod, SELINUX_TYPES_V1_31)
}

fn se_linux_options(pod: &PodView<'_>, allowed_types: &[&str]) -> Option<Failure> {
    let mut bad_types = BTreeSet::new();
    let mut set_user = false;
    let mut set_role = false;

    // Returns the field errors of one seLinuxOptions object; empty when it is valid.
    let mut inspect = |opts: &serde_json::Map<String, Value>, prefix: &str| {
        let mut errs = Vec::new();
        let t = map_str(opts, "type").unwrap_or("");
        if !allowed_types.contains(&t) {
            bad_types.insert(t.to_string());
            errs.push(forbidden(format!("{prefix}.type"), BadValue::Str(t.into())));
        }
        let user = map_str(opts, "user").unwrap_or("");
        if !user.is_empty() {
            set_user = true;
            errs.push(forbidden(
                format!("{prefix}.user"),
                BadValue::Str(user.into()),
            ));
        }
        let role = map_str(opts, "role").unwrap_or("");
        if !role.is_empty() {
            set_role = true;
            errs.push(forbidden(
                format!("{prefix}.role"),
                BadValue::Str(role.into()),
            ));
        }
        errs
    };

    let mut setters: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    if let Some(opts) = pod
        .security_context()
        .and_then(|sc| map_obj(sc, "seLinuxOptions"))
    {
        let errs = inspect(opts, "spec.securityContext.seLinuxOptions");
        if !errs.is_empty() {
            setters.push("pod".into());
            errors.extend(errs);
        }
    }
    let mut bad_containers = Vec::new();
    let mut container_errors = Vec::new();
    for c in &pod.containers {
        if let Some(opts) = c
            .security_context()
            .and_then(|sc| map_obj(sc, "seLinuxOptions"))
        {
            let errs = inspect(opts, &c.path("securityContext.seLinuxOptions"));
            if !errs.is_empty() {
                bad_containers.push(c.name());
                container_errors.extend(errs);
            }
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
        errors.extend(container_errors);
    }
    if setters.is_empty() {
        return None;
    }
    let mut bad_data = Vec::new();
    if !bad_types.is_empty() {
        let types: Vec<String> = bad_types.into_iter().collect();
        bad_data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if set_user {
        bad_data.push("user may not be set".to_string());
    }
    if set_role {
        bad_data.push("role may not be set".to_string());
    }
    fail(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            bad_data.join("; ")
        ),
        errors,
    )
}

// ---------------------------------------------------------------------------------------------
// seccompProfile (baseline and restricted)

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn seccomp_type_valid(t: &str) -> bool {
    t == "RuntimeDefault" || t == "Localhost"
}

fn seccomp_annotation_valid(v: &str) -> bool {
    v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/")
}

/// Before v1.19 seccomp was configured through alpha annotations.
fn seccomp_baseline_annotations_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut by_value: std::collections::BTreeMap<String, Vec<FieldError>> = Default::default();
    let mut check = |key: String| {
        if let Some(v) = pod.annotation(&key) {
            if !seccomp_annotation_valid(v) {
                by_value
                    .entry(format!("{key}={}", go_quote(v)))
                    .or_default()
                    .push(forbidden(
                        format!("metadata.annotations[{key}]"),
                        BadValue::Str(v.into()),
                    ));
            }
        }
    };
    check(SECCOMP_POD_ANNOTATION.to_string());
    for c in &pod.containers {
        check(format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", c.name()));
    }
    if by_value.is_empty() {
        return None;
    }
    let values: Vec<String> = by_value.keys().cloned().collect();
    let errors: Vec<FieldError> = by_value.into_values().flatten().collect();
    fail(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", values.len()),
            values.join(", ")
        ),
        errors,
    )
}

/// Explicitly bad seccomp types (pod and containers), shared by baseline and restricted.
struct SeccompScan<'a> {
    setters: Vec<String>,
    errors: Vec<FieldError>,
    bad_values: BTreeSet<String>,
    pod_valid: bool,
    implicit: Vec<&'a str>,
    implicit_errors: Vec<FieldError>,
}

fn scan_seccomp<'a>(pod: &PodView<'a>) -> SeccompScan<'a> {
    let mut scan = SeccompScan {
        setters: Vec::new(),
        errors: Vec::new(),
        bad_values: BTreeSet::new(),
        pod_valid: false,
        implicit: Vec::new(),
        implicit_errors: Vec::new(),
    };
    if let Some(profile) = pod
        .security_context()
        .and_then(|sc| map_obj(sc, "seccompProfile"))
    {
        let t = map_str(profile, "type").unwrap_or("");
        if seccomp_type_valid(t) {
            scan.pod_valid = true;
        } else {
            scan.setters.push("pod".into());
            scan.errors.push(forbidden(
                "spec.securityContext.seccompProfile.type".into(),
                BadValue::Str(t.into()),
            ));
            scan.bad_values.insert(t.to_string());
        }
    }
    let mut explicit = Vec::new();
    for c in &pod.containers {
        let path = || c.path("securityContext.seccompProfile.type");
        match c
            .security_context()
            .and_then(|sc| map_obj(sc, "seccompProfile"))
        {
            Some(profile) => {
                let t = map_str(profile, "type").unwrap_or("");
                if !seccomp_type_valid(t) {
                    explicit.push(c.name());
                    scan.errors.push(forbidden(path(), BadValue::Str(t.into())));
                    scan.bad_values.insert(t.to_string());
                }
            }
            None => {
                if !scan.pod_valid {
                    scan.implicit.push(c.name());
                    scan.implicit_errors.push(required(path()));
                }
            }
        }
    }
    if !explicit.is_empty() {
        scan.setters.push(containers_phrase(&explicit));
    }
    scan
}

fn explicit_seccomp_failure(scan: SeccompScan<'_>) -> Option<Failure> {
    let values: Vec<String> = scan.bad_values.into_iter().collect();
    fail(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            scan.setters.join(" and "),
            join_quote(&values)
        ),
        scan.errors,
    )
}

fn seccomp_baseline_v1_19(pod: &PodView<'_>) -> Option<Failure> {
    let scan = scan_seccomp(pod);
    if scan.setters.is_empty() {
        return None;
    }
    explicit_seccomp_failure(scan)
}

fn seccomp_restricted_v1_19(pod: &PodView<'_>) -> Option<Failure> {
    let scan = scan_seccomp(pod);
    if !scan.setters.is_empty() {
        return explicit_seccomp_failure(scan);
    }
    if scan.implicit.is_empty() {
        return None;
    }
    fail(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&scan.implicit)
        ),
        scan.implicit_errors,
    )
}

fn seccomp_restricted_v1_25(pod: &PodView<'_>) -> Option<Failure> {
    if pod.is_windows() {
        return None;
    }
    seccomp_restricted_v1_19(pod)
}

// ---------------------------------------------------------------------------------------------
// sysctls (baseline)

const SYSCTLS_V1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
const SYSCTLS_ADDED_V1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
const SYSCTLS_ADDED_V1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SYSCTLS_ADDED_V1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];

fn sysctls_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    sysctls(pod, &[SYSCTLS_V1_0])
}

fn sysctls_v1_27(pod: &PodView<'_>) -> Option<Failure> {
    sysctls(pod, &[SYSCTLS_V1_0, SYSCTLS_ADDED_V1_27])
}

fn sysctls_v1_29(pod: &PodView<'_>) -> Option<Failure> {
    sysctls(
        pod,
        &[SYSCTLS_V1_0, SYSCTLS_ADDED_V1_27, SYSCTLS_ADDED_V1_29],
    )
}

fn sysctls_v1_32(pod: &PodView<'_>) -> Option<Failure> {
    sysctls(
        pod,
        &[
            SYSCTLS_V1_0,
            SYSCTLS_ADDED_V1_27,
            SYSCTLS_ADDED_V1_29,
            SYSCTLS_ADDED_V1_32,
        ],
    )
}

fn sysctls(pod: &PodView<'_>, allowed: &[&[&str]]) -> Option<Failure> {
    let list = pod
        .security_context()
        .and_then(|sc| sc.field("sysctls"))
        .and_then(Value::as_array);
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for (i, sysctl) in list.into_iter().flatten().enumerate() {
        let name = sysctl.field("name").and_then(Value::as_str).unwrap_or("");
        if !allowed.iter().any(|set| set.contains(&name)) {
            names.push(name);
            errors.push(forbidden(
                format!("spec.securityContext.sysctls[{i}].name"),
                BadValue::Str(name.into()),
            ));
        }
    }
    if names.is_empty() {
        return None;
    }
    fail("forbidden sysctls", names.join(", "), errors)
}

// ---------------------------------------------------------------------------------------------
// windowsHostProcess (baseline)

fn host_process_set(sc: Option<&serde_json::Map<String, Value>>) -> bool {
    sc.and_then(|sc| map_obj(sc, "windowsOptions"))
        .and_then(|w| map_bool(w, "hostProcess"))
        == Some(true)
}

fn windows_host_process_v1_0(pod: &PodView<'_>) -> Option<Failure> {
    let mut bad = Vec::new();
    let mut container_errors = Vec::new();
    for c in &pod.containers {
        if host_process_set(c.security_context()) {
            bad.push(c.name());
            container_errors.push(forbidden(
                c.path("securityContext.windowsOptions.hostProcess"),
                BadValue::Bool(true),
            ));
        }
    }
    let mut setters: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    if host_process_set(pod.security_context()) {
        setters.push("pod".into());
        errors.push(forbidden(
            "spec.securityContext.windowsOptions.hostProcess".into(),
            BadValue::Bool(true),
        ));
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
        errors.extend(container_errors);
    }
    if setters.is_empty() {
        return None;
    }
    fail(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
        errors,
    )
}
