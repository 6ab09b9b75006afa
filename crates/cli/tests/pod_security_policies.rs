//! The Pod Security Standards as ClusterPolicies (`policies/pod-security/{baseline,restricted}`)
//! must decide exactly as the engine's `podSecurity` rule does at version `latest`. Both are
//! written from the standard; this test runs the policies over the engine's table of standard
//! cases (`crates/engine/src/podsecurity/testdata`) and checks that each Pod fails exactly the
//! policies of the controls the table says it violates, and passes every other one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Check IDs of the engine's table → the policy that enforces that control.
const POLICY_OF_CHECK: &[(&str, &str)] = &[
    ("windowsHostProcess", "baseline-host-process"),
    ("hostNamespaces", "baseline-host-namespaces"),
    ("privileged", "baseline-privileged"),
    ("capabilities_baseline", "baseline-capabilities"),
    ("hostPathVolumes", "baseline-host-path"),
    ("hostPorts", "baseline-host-ports"),
    ("hostProbesAndHostLifecycle", "baseline-host-probes"),
    ("appArmorProfile", "baseline-apparmor"),
    ("seLinuxOptions", "baseline-selinux"),
    ("procMount", "baseline-proc-mount"),
    ("seccompProfile_baseline", "baseline-seccomp"),
    ("sysctls", "baseline-sysctls"),
    ("restrictedVolumes", "restricted-volume-types"),
    (
        "allowPrivilegeEscalation",
        "restricted-privilege-escalation",
    ),
    ("runAsNonRoot", "restricted-run-as-non-root"),
    ("runAsUser", "restricted-run-as-user"),
    ("seccompProfile_restricted", "restricted-seccomp"),
    ("capabilities_restricted", "restricted-capabilities"),
    ("procMount_restricted", "restricted-proc-mount"),
];

struct Case {
    pod_name: String,
    title: String,
    expected: BTreeSet<String>,
}

/// Cases the engine's table covers only at older versions or not at all: the relaxations for
/// Pods in a user namespace (1.35) and for Windows Pods, in the table's format.
const EXTRA_CASES: &str = r#"
- name: Unmasked procMount in a user namespace is allowed at baseline
  level: baseline
  spec:
    hostUsers: false
    containers: [{name: app, image: nginx, securityContext: {procMount: Unmasked}}]
- name: Unmasked procMount in a user namespace is forbidden at restricted
  level: restricted
  spec:
    hostUsers: false
    securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
    containers:
      - {name: app, image: nginx, securityContext: {procMount: Unmasked, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}
  fail: [procMount_restricted]
- name: adding a default capability other than NET_BIND_SERVICE is forbidden at restricted
  level: restricted
  spec:
    securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
    containers:
      - {name: app, image: nginx, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, CHOWN]}}}
  fail: [capabilities_restricted]
- name: root in a user namespace is allowed at restricted
  level: restricted
  spec:
    hostUsers: false
    securityContext: {runAsUser: 0, seccompProfile: {type: RuntimeDefault}}
    containers:
      - {name: app, image: nginx, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}
- name: Windows Pods need no Linux-only restricted fields
  level: restricted
  spec:
    os: {name: windows}
    securityContext: {runAsNonRoot: true}
    containers: [{name: app, image: mcr.microsoft.com/windows/nanoserver:ltsc2022}]
- name: a Windows Pod must still run as non-root
  level: restricted
  spec:
    os: {name: windows}
    containers: [{name: app, image: mcr.microsoft.com/windows/nanoserver:ltsc2022}]
  fail: [runAsNonRoot]
"#;

/// Reads one table of cases and writes their Pods to `pods`, returning what each must fail.
fn load_cases(table: &str, level: &str, pods: &mut Vec<Value>) -> Vec<Case> {
    let text = if table == "extra" {
        EXTRA_CASES.to_owned()
    } else {
        let path = repo_root()
            .join("crates/engine/src/podsecurity/testdata")
            .join(table);
        std::fs::read_to_string(&path).unwrap()
    };
    let cases: Vec<Value> = serde_yaml_ng::from_str(&text).unwrap();
    let policy_of: BTreeMap<&str, &str> = POLICY_OF_CHECK.iter().copied().collect();
    let mut out = Vec::new();
    // Cases of another level (Kyverno's handling of `level: privileged`) are not ours.
    for (i, case) in cases
        .iter()
        .enumerate()
        .filter(|(_, c)| c["level"] == level)
    {
        // The table is written for `latest`; a case pinned to an older version is not ours.
        assert!(case.get("version").is_none(), "{table}: {case}");
        assert!(case.get("exclude").is_none(), "{table}: {case}");
        let pod_name = format!("{level}-{table}-{i}").replace(".yaml", "");
        let mut metadata = case.get("metadata").cloned().unwrap_or_else(|| json!({}));
        metadata["name"] = json!(pod_name);
        metadata["namespace"] = json!("pss");
        pods.push(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": case["spec"]}),
        );
        let expected = case
            .get("fail")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|id| {
                let id = id.as_str().unwrap();
                let policy = policy_of
                    .get(id)
                    .unwrap_or_else(|| panic!("no policy enforces check {id}"));
                (*policy).to_owned()
            })
            .collect();
        out.push(Case {
            pod_name,
            title: case["name"].as_str().unwrap().to_owned(),
            expected,
        });
    }
    out
}

/// Runs `bylaw apply` with the policy directories over the Pods; returns the policies each Pod
/// fails (an `error` counts: the policy could not decide, which is a defect here too) and the
/// policies that were evaluated at all.
fn failing_policies(
    dirs: &[&str],
    pods: &Path,
) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bylaw"));
    command.current_dir(repo_root()).arg("apply");
    for dir in dirs {
        command.arg(dir);
    }
    let out = command
        .arg("-r")
        .arg(pods)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "policies are Audit, so apply exits 0: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut failing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut evaluated = BTreeSet::new();
    for result in results {
        let policy = result["policy"].as_str().unwrap().to_owned();
        evaluated.insert(policy.clone());
        let pod = result["resource"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        match result["status"].as_str().unwrap() {
            "fail" | "error" => {
                failing.entry(pod).or_default().insert(policy);
            }
            "pass" | "skip" => {}
            other => panic!("unexpected status {other}: {result}"),
        }
    }
    (failing, evaluated)
}

fn check_level(level: &str, tables: &[(&str, &str)], dirs: &[&str]) {
    let mut pods = Vec::new();
    let mut cases = Vec::new();
    for (table, table_level) in tables {
        cases.extend(load_cases(table, table_level, &mut pods));
    }
    let dir = tempfile::tempdir().unwrap();
    let pods_file = dir.path().join("pods.yaml");
    let stream: Vec<String> = pods
        .iter()
        .map(|p| serde_yaml_ng::to_string(p).unwrap())
        .collect();
    std::fs::write(&pods_file, stream.join("---\n")).unwrap();

    let (failing, evaluated) = failing_policies(dirs, &pods_file);

    // The engine's own podSecurity rule must agree with the table on every Pod, so the table
    // (and the extra cases above) describe the standard as the engine implements it.
    let reference = dir.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    std::fs::write(
        reference.join("policy.yaml"),
        format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: reference}}\n\
             spec:\n  rules:\n    - name: pss\n      match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n\
             \x20     validate: {{podSecurity: {{level: {level}, version: latest}}}}\n"
        ),
    )
    .unwrap();
    let (engine_failing, _) = failing_policies(&[reference.to_str().unwrap()], &pods_file);
    for case in &cases {
        assert_eq!(
            engine_failing.contains_key(&case.pod_name),
            !case.expected.is_empty(),
            "podSecurity {level} disagrees with the table on {} ({})",
            case.pod_name,
            case.title
        );
    }
    let mut mismatches = Vec::new();
    let mut caught = BTreeSet::new();
    for case in &cases {
        let actual = failing.get(&case.pod_name).cloned().unwrap_or_default();
        caught.extend(actual.iter().cloned());
        if actual != case.expected {
            mismatches.push(format!(
                "{} ({}): expected to fail {:?}, failed {:?}",
                case.pod_name, case.title, case.expected, actual
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{level}: {} of {} cases differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
    // Every policy of the level ran and caught at least one case, so none is vacuous.
    let own: BTreeSet<&String> = evaluated
        .iter()
        .filter(|p| p.starts_with(&format!("{level}-")))
        .collect();
    let uncaught: Vec<&&String> = own.iter().filter(|p| !caught.contains(**p)).collect();
    assert!(uncaught.is_empty(), "{level}: never failed: {uncaught:?}");
    assert!(own.len() >= 7, "{level}: only {own:?} ran");
}

#[test]
fn baseline_policies_decide_as_the_pod_security_standard() {
    check_level(
        "baseline",
        &[("baseline.yaml", "baseline"), ("extra", "baseline")],
        &["policies/pod-security/baseline"],
    );
}

#[test]
fn baseline_and_restricted_policies_decide_as_the_restricted_standard() {
    check_level(
        "restricted",
        &[("restricted.yaml", "restricted"), ("extra", "restricted")],
        &[
            "policies/pod-security/baseline",
            "policies/pod-security/restricted",
        ],
    );
}
