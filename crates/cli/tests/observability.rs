//! The Grafana dashboard and the alert rules query only what bylaw exports, and docs/metrics.md
//! describes everything it exports. The exposition comes from the real metrics registry with a
//! sample recorded in every family, so a new family fails this test until it is documented.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bylaw_runtime::metrics::{ExecutionCause, PolicyChange, PolicyIdentity, ResourceLabels};
use bylaw_runtime::{Metrics, Operation, Phase, RuleOutcome, RuleResult, RuleType};
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Sample name → label names, and the family names of `# TYPE` lines, of an exposition where
/// every family has at least one sample.
struct Exposition {
    samples: BTreeMap<String, BTreeSet<String>>,
    families: BTreeSet<String>,
}

fn exposition() -> Exposition {
    let metrics = Metrics::new("test");
    let pod = ResourceLabels {
        kind: "Pod",
        namespace: Some("shop"),
        operation: Operation::Create,
    };
    metrics.record_admission(Phase::Validate, pod, false, Duration::from_micros(300));
    metrics.record_admission_failure(Phase::Validate, false, "deadline_exceeded");
    let outcome = RuleOutcome {
        policy: "require-labels".into(),
        policy_namespace: None,
        rule: "team".into(),
        rule_type: RuleType::Validate,
        result: RuleResult::Fail,
        message: String::new(),
        enforce: false,
        background: true,
        duration: Duration::from_micros(20),
    };
    metrics.record_rule_outcome(&outcome, ExecutionCause::AdmissionRequest, pod);
    let policy = PolicyIdentity {
        name: "require-labels",
        namespace: None,
        enforce: false,
        background: true,
    };
    metrics.set_rule_info(&policy, "team", RuleType::Validate, true, true);
    metrics.record_policy_change(&policy, PolicyChange::Create);
    metrics.record_results_dropped("full", 1);
    metrics.record_load_error("invalid");
    metrics.set_policies_not_loaded(&[("invalid", 1)]);
    metrics.record_policy_evaluations(std::slice::from_ref(&outcome));
    let generate = bylaw_controller::generate::GenerateMetrics::register(&metrics);
    generate.set_depth(3);
    generate.reconciled(true);
    generate.object("add-networkpolicy", None, "create");
    generate.failure("add-networkpolicy", None, "forbidden");
    metrics.record_background_outcome(&outcome, "Pod", Some("shop"));
    let reports = bylaw_controller::reports::ReportMetrics::register(&metrics);
    reports.observe_scan("full", Duration::from_millis(40));
    reports.scanned("Pod");
    reports.write("apply", true);
    reports.set_totals(1, 4096);

    let text = metrics.encode_prometheus_text().unwrap();
    let mut samples: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        let labels = samples.entry(line[..name_end].to_owned()).or_default();
        if let Some(open) = line.find('{') {
            let close = line.rfind('}').unwrap();
            for pair in split_label_pairs(&line[open + 1..close]) {
                labels.insert(pair.split('=').next().unwrap().to_owned());
            }
        }
    }
    for family in &families {
        assert!(
            samples.keys().any(|s| s.starts_with(family.as_str())),
            "family {family} has no sample: record one in this test"
        );
    }
    Exposition { samples, families }
}

/// `a="x,y",b="z"` → [`a="x,y"`, `b="z"`].
fn split_label_pairs(text: &str) -> Vec<&str> {
    let mut pairs = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                pairs.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < text.len() {
        pairs.push(&text[start..]);
    }
    pairs
}

/// Words of PromQL that are not metric names.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "count",
    "max",
    "min",
    "avg",
    "topk",
    "bottomk",
    "sort",
    "sort_desc",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "absent",
    "vector",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
];
const LABEL_LIST_WORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Metric names and label names an expression uses.
#[derive(Debug, Default)]
struct Uses {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

fn promql_uses(expr: &str) -> Uses {
    let chars: Vec<char> = expr.chars().collect();
    let mut uses = Uses::default();
    let mut i = 0;
    let mut label_list_next = false;
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_string = |i: &mut usize| {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            skip_string(&mut i);
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c == '{' {
            // A selector: `label op "value", …`.
            i += 1;
            while i < chars.len() && chars[i] != '}' {
                if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
                    skip_string(&mut i);
                } else if ident(chars[i]) {
                    let start = i;
                    while i < chars.len() && ident(chars[i]) {
                        i += 1;
                    }
                    uses.labels.insert(chars[start..i].iter().collect());
                } else {
                    i += 1;
                }
            }
            i += 1;
        } else if c == '(' && label_list_next {
            label_list_next = false;
            i += 1;
            while i < chars.len() && chars[i] != ')' {
                if ident(chars[i]) {
                    let start = i;
                    while i < chars.len() && ident(chars[i]) {
                        i += 1;
                    }
                    uses.labels.insert(chars[start..i].iter().collect());
                } else {
                    i += 1;
                }
            }
            i += 1;
        } else if ident(c) {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if LABEL_LIST_WORDS.contains(&word.as_str()) {
                label_list_next = true;
            } else if !PROMQL_WORDS.contains(&word.as_str()) {
                uses.metrics.insert(word);
            }
        } else {
            i += 1;
        }
    }
    uses
}

/// Problems with one expression: unknown metrics, labels no metric of the expression has.
fn check_expr(expr: &str, exposition: &Exposition) -> Vec<String> {
    let uses = promql_uses(expr);
    let mut problems = Vec::new();
    let mut known_labels = BTreeSet::new();
    for metric in &uses.metrics {
        match exposition.samples.get(metric) {
            Some(labels) => known_labels.extend(labels.iter().cloned()),
            None => problems.push(format!("unknown metric {metric}")),
        }
    }
    if uses.metrics.is_empty() {
        problems.push("names no metric".to_owned());
    }
    for label in uses.labels.difference(&known_labels) {
        problems.push(format!(
            "label {label} is not a label of {:?}",
            uses.metrics
        ));
    }
    problems
}

/// Grafana's variables, replaced the way Prometheus will see them.
fn substitute_grafana_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$namespace", ".*")
        .replace("$policy", ".*")
}

pub fn dashboard_queries() -> Vec<(String, String)> {
    let path = repo_root().join("helm/bylaw/files/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            queries.push((
                panel["title"].as_str().unwrap().to_owned(),
                substitute_grafana_variables(expr),
            ));
        }
    }
    queries
}

#[test]
fn promql_scanner_finds_metrics_and_labels() {
    let uses = promql_uses(
        r#"histogram_quantile(0.99, sum by (le, request_webhook) (rate(bylaw_x_bucket{a="b,c", d=~"e"}[5m] offset 1d))) > 0.5 and on(f) bylaw_y"#,
    );
    assert_eq!(
        uses.metrics.into_iter().collect::<Vec<_>>(),
        ["bylaw_x_bucket", "bylaw_y"]
    );
    assert_eq!(
        uses.labels.into_iter().collect::<Vec<_>>(),
        ["a", "d", "f", "le", "request_webhook"]
    );
}

#[test]
fn unknown_metrics_and_labels_are_reported() {
    let exposition = exposition();
    assert!(check_expr("sum(rate(bylaw_admission_requests_total[5m]))", &exposition).is_empty());
    assert_eq!(
        check_expr(
            "sum by (team) (bylaw_admission_requests_total)",
            &exposition
        ),
        ["label team is not a label of {\"bylaw_admission_requests_total\"}"]
    );
    assert_eq!(
        check_expr("rate(kyverno_policy_results_total[5m])", &exposition),
        ["unknown metric kyverno_policy_results_total"]
    );
}

#[test]
fn dashboard_queries_name_only_exported_metrics_and_labels() {
    let exposition = exposition();
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let mut problems = Vec::new();
    for (title, expr) in &queries {
        for problem in check_expr(expr, &exposition) {
            problems.push(format!("panel {title:?}: {problem}: {expr}"));
        }
    }
    // Template variables read label values of exported metrics.
    let path = repo_root().join("helm/bylaw/files/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(definition) = variable["definition"].as_str() else {
            continue;
        };
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap();
        let (metric, label) = inner.split_once(", ").unwrap();
        let labels = exposition.samples.get(metric);
        if !labels.is_some_and(|l| l.contains(label)) {
            problems.push(format!("variable {}: {definition}", variable["name"]));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn alert_rules_name_only_exported_metrics_and_labels() {
    let exposition = exposition();
    let path = repo_root().join("helm/bylaw/files/prometheus-rules.yaml");
    let rules: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut problems = Vec::new();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            alerts.insert(name.to_owned());
            for problem in check_expr(rule["expr"].as_str().unwrap(), &exposition) {
                problems.push(format!("alert {name}: {problem}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for wanted in [
        "BylawAdmissionLatencyHigh",
        "BylawWebhookRefusing",
        "BylawWebhookFailingOpen",
        "BylawPolicyNotReady",
        "BylawViolationsRising",
    ] {
        assert!(alerts.contains(wanted), "missing alert {wanted}");
    }
}

#[test]
fn metrics_doc_lists_every_metric_and_label() {
    let exposition = exposition();
    let doc = std::fs::read_to_string(repo_root().join("docs/metrics.md")).unwrap();
    let mut missing = Vec::new();
    for family in &exposition.families {
        if !doc.contains(&format!("| `{family}` |")) {
            missing.push(format!("metric {family}"));
        }
    }
    let labels: BTreeSet<&String> = exposition.samples.values().flatten().collect();
    for label in labels {
        if label != "le" && !doc.contains(&format!("`{label}`")) {
            missing.push(format!("label {label}"));
        }
    }
    assert!(missing.is_empty(), "docs/metrics.md lacks: {missing:?}");
}
