//! The `bylaw` binary as a user runs it: exit codes, output and error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bylaw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bylaw"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run bylaw")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Test files below `dir`, counted independently of `bylaw test`'s own search.
fn count_suites(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            if path.is_dir() {
                count_suites(&path)
            } else {
                usize::from(path.file_name().is_some_and(|n| n == "kyverno-test.yaml"))
            }
        })
        .sum()
}

#[test]
fn every_example_and_shipped_policy_passes_bylaw_test() {
    let out = bylaw(&["test", "examples", "policies"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let suites =
        count_suites(&repo_root().join("examples")) + count_suites(&repo_root().join("policies"));
    assert!(
        suites >= 14,
        "examples or policies went missing: {suites} suites"
    );
    assert!(
        text.contains(&format!("{suites} suites passed, 0 suites failed")),
        "{text}"
    );
}

#[test]
fn cel_policies_run_in_bylaw_test_with_their_messages() {
    let out = bylaw(&[
        "test",
        "examples/validating-admission-policy",
        "examples/validating-policy",
        "--detailed-results",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    // The binding's parameters and messageExpression reach the result.
    assert!(
        text.contains("deployment worker has 1 replicas, production needs 3"),
        "{text}"
    );
    // resource.Get reads the suite's context file; autogen covers the Deployment.
    assert!(
        text.contains("Deployment/web") && text.contains("found docker.io/library/nginx:1.27"),
        "{text}"
    );
    assert!(text.contains("7 rows passed, 0 rows failed"), "{text}");
}

#[test]
fn an_invalid_cel_expression_names_its_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: policies.kyverno.io/v1\nkind: ValidatingPolicy\nmetadata:\n  name: broken\nspec:\n  matchConstraints:\n    resourceRules:\n    - {apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [pods]}\n  validations:\n  - expression: object.spec.containers.all(c,\n",
    )
    .unwrap();
    let out = bylaw(&[
        "apply",
        policy.to_str().unwrap(),
        "-r",
        "examples/disallow-latest-tag/resource.yaml",
    ]);
    assert_ne!(out.status.code(), Some(0));
    let text = stderr(&out);
    assert!(text.contains("policy.yaml"), "{text}");
    assert!(text.contains("spec.validations[0].expression"), "{text}");
}

#[test]
fn apply_blocks_on_an_enforced_failure_and_names_the_field() {
    let out = bylaw(&[
        "apply",
        "examples/disallow-latest-tag/policy.yaml",
        "-r",
        "examples/disallow-latest-tag/resource.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Pod/shop/floating"), "{text}");
    assert!(text.contains("/spec/containers/0/image/"), "{text}");
    assert!(text.contains("pass: 5, fail: 3,"), "{text}");
}

#[test]
fn apply_audit_failures_do_not_block_and_can_be_warnings() {
    let args = [
        "apply",
        "examples/require-team-label/policy.yaml",
        "-r",
        "examples/require-team-label/resource.yaml",
    ];
    let out = bylaw(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("pass: 1, fail: 2, warn: 0"),
        "{}",
        stdout(&out)
    );
    let mut warn = args.to_vec();
    warn.push("--audit-warn");
    let out = bylaw(&warn);
    assert!(
        stdout(&out).contains("pass: 1, fail: 0, warn: 2"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn apply_writes_a_policy_report() {
    let out = bylaw(&[
        "apply",
        "examples/require-team-label/policy.yaml",
        "-r",
        "examples/require-team-label/resource.yaml",
        "-p",
        "-o",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["kind"], "ClusterPolicyReport");
    assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(report["summary"]["fail"], 2);
    assert_eq!(report["summary"]["pass"], 1);
    let results = report["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert!(results
        .iter()
        .any(|r| r["result"] == "fail" && r["resources"][0]["name"] == "orphan-config"));
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n",
    )
    .unwrap();
    let out = bylaw(&[
        "apply",
        "examples/disallow-latest-tag/policy.yaml",
        "-r",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("broken.yaml:"), "{err}");
    assert!(
        err.contains(":5:") || err.contains(":4:"),
        "line number missing: {err}"
    );
}

#[test]
fn invalid_policy_names_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: broken}
spec:
  rules:
    - name: r
      match: {any: [{resources: {kinds: [Pod]}}]}
      validate:
        deny:
          conditions:
            any:
              - {key: a, operator: Equalz, value: b}
"#,
    )
    .unwrap();
    let out = bylaw(&[
        "apply",
        policy.to_str().unwrap(),
        "-r",
        "examples/disallow-latest-tag/resource.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("spec.rules[0].validate.deny.conditions.any[0].operator"),
        "{err}"
    );
    assert!(err.contains("Equalz"), "{err}");
}

#[test]
fn a_test_row_naming_a_missing_rule_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root().join("examples/disallow-latest-tag");
    for f in ["policy.yaml", "resource.yaml"] {
        std::fs::copy(root.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("kyverno-test.yaml"),
        r#"apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: typo}
policies: [policy.yaml]
resources: [resource.yaml]
results:
  - {policy: disallow-latest-tag, rule: forbid-latset, kind: Pod, resources: [pinned], result: pass}
  - {policy: disallow-latest-tag, rule: forbid-latest, kind: Pod, resources: [no-such-pod], result: pass}
"#,
    )
    .unwrap();
    let out = bylaw(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("rule \"forbid-latset\" not found"), "{text}");
    assert!(
        text.contains("resource Pod/no-such-pod not found"),
        "{text}"
    );
    assert!(text.contains("0 rows passed, 2 rows failed"), "{text}");
}

#[test]
fn test_output_formats() {
    let out = bylaw(&["test", "examples", "-o", "json"]);
    let suites: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let expected = count_suites(&repo_root().join("examples"));
    assert_eq!(suites.as_array().map(Vec::len), Some(expected));
    let out = bylaw(&["test", "examples", "-o", "junit"]);
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");
}

#[test]
fn jp_query_uses_kyverno_functions() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.yaml");
    std::fs::write(&input, "name: Web-Frontend\nimages: [nginx, redis]\n").unwrap();
    let out = bylaw(&[
        "jp",
        "query",
        "-i",
        input.to_str().unwrap(),
        "-u",
        "to_lower(name)",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "web-frontend");
    let out = bylaw(&["jp", "function", "truncate"]);
    assert!(stdout(&out).contains("truncate("), "{}", stdout(&out));
}

#[test]
fn crds_print_every_definition() {
    let out = bylaw(&["crds"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for name in [
        "clusterpolicies.kyverno.io",
        "policies.kyverno.io",
        "policyexceptions.kyverno.io",
        "validatingpolicies.policies.kyverno.io",
        "namespacedvalidatingpolicies.policies.kyverno.io",
        "policyreports.wgpolicyk8s.io",
        "clusterpolicyreports.wgpolicyk8s.io",
    ] {
        assert!(text.contains(&format!("name: {name}")), "{name} missing");
    }
}

#[test]
fn version_names_the_commit() {
    let out = bylaw(&["version"]);
    assert!(
        stdout(&out).starts_with("bylaw 0.1.0 (commit "),
        "{}",
        stdout(&out)
    );
}

#[test]
fn hostile_nesting_and_wildcards_end_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // A resource nested 10,000 levels deep: a clean error naming the file, not a stack overflow.
    let deep = dir.path().join("deep.yaml");
    let mut text = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: ");
    text.push_str(&"[".repeat(10_000));
    text.push_str(&"]".repeat(10_000));
    text.push('\n');
    std::fs::write(&deep, text).unwrap();
    let out = bylaw(&[
        "apply",
        "examples/require-team-label/policy.yaml",
        "-r",
        deep.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("deep.yaml"), "{}", stderr(&out));

    // A pathological wildcard pattern against a long value finishes (and fails) promptly.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: wildcard}}
spec:
  rules:
    - name: r
      match: {{any: [{{resources: {{kinds: [ConfigMap]}}}}]}}
      validate:
        pattern:
          data:
            key: "{}b"
"#,
            "*a".repeat(500)
        ),
    )
    .unwrap();
    let resource = dir.path().join("cm.yaml");
    std::fs::write(
        &resource,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: long, namespace: x}}\ndata:\n  key: \"{}\"\n",
            "a".repeat(20_000)
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = bylaw(&[
        "apply",
        policy.to_str().unwrap(),
        "-r",
        resource.to_str().unwrap(),
    ]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "pathological wildcard did not finish promptly ({:?}): backtracking blow-up?",
        started.elapsed()
    );
    assert!(stdout(&out).contains("fail: 1"), "{}", stdout(&out));
}

#[test]
fn apply_prints_and_writes_mutated_and_generated_resources() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = bylaw(&[
        "apply",
        "examples/add-default-networkpolicy/policy.yaml",
        "examples/add-team-label/policy.yaml",
        "-r",
        "examples/add-default-networkpolicy/resource.yaml",
        "-r",
        "examples/add-team-label/resource.yaml",
        "--output-dir",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Mutated Pod/shop/cart (by add-team-label):"),
        "{text}"
    );
    assert!(text.contains("team: unassigned"), "{text}");
    assert!(!text.contains("Mutated Pod/shop/search"), "{text}");
    assert!(
        text.contains("Generated NetworkPolicy checkout/default-deny-ingress"),
        "{text}"
    );
    assert!(
        !text.contains("kube-node-lease/default-deny-ingress"),
        "{text}"
    );
    // The summary counts mutate and generate results too; nothing failed.
    assert!(
        text.contains("pass: 2, fail: 0, warn: 0, error: 0, skip: 1"),
        "{text}"
    );

    let mutated = std::fs::read_to_string(out_dir.join("cart-mutated.yaml")).unwrap();
    let mutated: serde_json::Value = serde_yaml_ng::from_str(&mutated).unwrap();
    assert_eq!(mutated["metadata"]["labels"]["team"], "unassigned");
    assert_eq!(mutated["metadata"]["labels"]["app"], "cart");

    let generated =
        std::fs::read_to_string(out_dir.join("add-default-networkpolicy-generated.yaml")).unwrap();
    let generated: serde_json::Value = serde_yaml_ng::from_str(&generated).unwrap();
    assert_eq!(generated["kind"], "NetworkPolicy");
    assert_eq!(generated["metadata"]["namespace"], "checkout");
    let labels = &generated["metadata"]["labels"];
    assert_eq!(labels["owner"], "payments");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "bylaw");
    assert_eq!(
        labels["generate.kyverno.io/policy-name"],
        "add-default-networkpolicy"
    );
    assert_eq!(
        labels["generate.kyverno.io/rule-name"],
        "default-deny-ingress"
    );
    assert_eq!(labels["generate.kyverno.io/trigger-kind"], "Namespace");
}

#[test]
fn apply_validates_the_mutated_resource() {
    let dir = tempfile::tempdir().unwrap();
    let require = dir.path().join("require-team.yaml");
    std::fs::write(
        &require,
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-team}
spec:
  validationFailureAction: Enforce
  rules:
    - name: team
      match: {any: [{resources: {kinds: [Pod]}}]}
      validate:
        message: a team label is required
        pattern: {metadata: {labels: {team: "?*"}}}
"#,
    )
    .unwrap();
    let resources = "examples/add-team-label/resource.yaml";
    let alone = bylaw(&["apply", require.to_str().unwrap(), "-r", resources]);
    assert_eq!(alone.status.code(), Some(1), "{}", stdout(&alone));
    let with_mutation = bylaw(&[
        "apply",
        "examples/add-team-label/policy.yaml",
        require.to_str().unwrap(),
        "-r",
        resources,
    ]);
    assert_eq!(
        with_mutation.status.code(),
        Some(0),
        "{}",
        stdout(&with_mutation)
    );
}

#[test]
fn test_shows_where_a_generated_resource_differs() {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root().join("examples/add-default-networkpolicy");
    for f in ["policy.yaml", "resource.yaml", "kyverno-test.yaml"] {
        std::fs::copy(root.join(f), dir.path().join(f)).unwrap();
    }
    let expected = std::fs::read_to_string(root.join("generated-networkpolicy.yaml")).unwrap();
    std::fs::write(
        dir.path().join("generated-networkpolicy.yaml"),
        expected.replace("owner: payments", "owner: search"),
    )
    .unwrap();
    let out = bylaw(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(r#"/metadata/labels/owner: expected "search", got "payments""#),
        "{text}"
    );
    assert!(text.contains("1 rows passed, 1 rows failed"), "{text}");
}

/// Clones the Secret `default/regcred` into every Namespace created.
const CLONE_SECRET_POLICY: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: sync-secrets}
spec:
  rules:
    - name: sync-image-pull-secret
      match: {any: [{resources: {kinds: [Namespace]}}]}
      generate:
        apiVersion: v1
        kind: Secret
        name: regcred
        namespace: "{{request.object.metadata.name}}"
        synchronize: true
        clone: {namespace: default, name: regcred}
"#;

#[test]
fn test_clones_from_the_clone_source_resource() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("policy.yaml", CLONE_SECRET_POLICY);
    write(
        "resource.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n",
    );
    let source = "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockerconfigjson\n\
                  metadata: {name: regcred, namespace: NS, uid: 1234, resourceVersion: '7'}\n\
                  data: {.dockerconfigjson: e30=}\n";
    write("source.yaml", &source.replace("NS", "default"));
    write(
        "generated.yaml",
        &source
            .replace("NS", "team-a")
            .replace(", uid: 1234, resourceVersion: '7'", ""),
    );
    write(
        "kyverno-test.yaml",
        r#"apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: clone}
policies: [policy.yaml]
resources: [resource.yaml]
results:
  - policy: sync-secrets
    rule: sync-image-pull-secret
    kind: Namespace
    resources: [team-a]
    cloneSourceResource: source.yaml
    generatedResource: generated.yaml
    result: pass
"#,
    );
    let out = bylaw(&["test", dir.path().to_str().unwrap(), "--detailed-results"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("generated Secret team-a/regcred"),
        "{}",
        stdout(&out)
    );

    // Without the clone source the rule cannot run: an error, not a silent pass.
    let suite = std::fs::read_to_string(dir.path().join("kyverno-test.yaml")).unwrap();
    write(
        "kyverno-test.yaml",
        &suite.replace("    cloneSourceResource: source.yaml\n", ""),
    );
    let out = bylaw(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .contains("want pass, got error: clone source Secret default/regcred not found"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn apply_clones_from_another_input_resource() {
    // Every `-r` document exists for generate rules: the Secret given after the Namespaces is
    // the clone source of each of them, and the Pods in between do not disturb it.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, CLONE_SECRET_POLICY).unwrap();
    let resources = dir.path().join("resources.yaml");
    std::fs::write(
        &resources,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: team-a}\n\
         spec: {containers: [{name: c, image: nginx}]}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n---\n\
         apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockerconfigjson\n\
         metadata: {name: regcred, namespace: default}\n\
         data: {.dockerconfigjson: e30=}\n",
    )
    .unwrap();
    let out = bylaw(&[
        "apply",
        policy.to_str().unwrap(),
        "-r",
        resources.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for namespace in ["team-a", "team-b"] {
        let header = format!(
            "Generated Secret {namespace}/regcred (policy sync-secrets, rule \
             sync-image-pull-secret, for Namespace/{namespace}):"
        );
        let generated = text
            .split_once(&header)
            .unwrap_or_else(|| panic!("no {header:?} in {text}"))
            .1;
        let document = generated.split("\n\n").next().unwrap();
        assert!(document.contains(".dockerconfigjson: e30="), "{text}");
        assert!(
            document.contains(&format!("namespace: {namespace}")),
            "{text}"
        );
    }
    assert!(
        text.contains("pass: 2, fail: 0, warn: 0, error: 0, skip: 0"),
        "{text}"
    );

    // Without the Secret among the inputs there is nothing to clone: an error per Namespace.
    std::fs::write(
        &resources,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n",
    )
    .unwrap();
    let out = bylaw(&[
        "apply",
        policy.to_str().unwrap(),
        "-r",
        resources.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("clone source Secret default/regcred not found"),
        "{text}"
    );
}

#[test]
fn apply_reads_a_policy_directory_as_serve_does() {
    // One walker: hidden directories (test fixtures in a policy repository) are skipped by
    // `bylaw apply DIR` as by `bylaw serve --policies DIR`.
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root().join("examples/require-team-label");
    std::fs::copy(root.join("policy.yaml"), dir.path().join("policy.yaml")).unwrap();
    let hidden = dir.path().join(".kyverno-test");
    std::fs::create_dir(&hidden).unwrap();
    std::fs::copy(
        repo_root().join("examples/disallow-latest-tag/policy.yaml"),
        hidden.join("policy.yaml"),
    )
    .unwrap();
    let out = bylaw(&[
        "apply",
        dir.path().to_str().unwrap(),
        "-r",
        "examples/disallow-latest-tag/resource.yaml",
        "-o",
        "json",
    ]);
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let policies: std::collections::BTreeSet<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["policy"].as_str())
        .collect();
    assert_eq!(
        policies.into_iter().collect::<Vec<_>>(),
        ["require-team-label"]
    );
}

#[test]
fn apply_says_which_skipped_documents_are_not_policies() {
    // A policy folder with its sample resources and a kind bylaw does not run yet.
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root().join("examples/require-team-label");
    std::fs::copy(root.join("policy.yaml"), dir.path().join("policy.yaml")).unwrap();
    std::fs::copy(root.join("resource.yaml"), dir.path().join("resource.yaml")).unwrap();
    std::fs::write(
        dir.path().join("mutating.yaml"),
        "apiVersion: policies.kyverno.io/v1\nkind: MutatingPolicy\nmetadata:\n  name: add-labels\nspec: {}\n",
    )
    .unwrap();
    let out = bylaw(&[
        "apply",
        dir.path().to_str().unwrap(),
        "-r",
        root.join("resource.yaml").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("skipping MutatingPolicy \"add-labels\": this policy kind is not supported by bylaw yet"),
        "{err}"
    );
    assert!(
        err.contains("skipping ConfigMap \"payments-config\": not a policy"),
        "{err}"
    );
}
