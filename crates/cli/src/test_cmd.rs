//! `bylaw test`: runs `kyverno-test.yaml` suites and compares every expected result row with
//! what the engine produced. It exits 0 only if every row of every suite matched.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bylaw_engine::compile::CompiledPolicy;
use bylaw_engine::context::{ContextError, ContextProvider};
use bylaw_engine::engine::report_status;
use bylaw_engine::generate::{labels::strip_generate_labels, ResourceRef};
use bylaw_engine::request::{metadata_str, UserInfo};
use bylaw_engine::response::PolicyResponse;
use bylaw_engine::response::RuleStatus;
use serde::Serialize;
use serde_json::Value;

use crate::load::{self, get_ci, read_documents, Values};
use crate::run::run_resource;

/// One expected row of a suite, for one resource.
#[derive(Debug, Clone, Serialize)]
pub struct RowResult {
    pub policy: String,
    pub rule: String,
    pub resource: String,
    pub kind: String,
    pub expected: String,
    /// What the engine produced; `None` when nothing was found to compare with.
    pub actual: Option<String>,
    pub passed: bool,
    pub reason: String,
    pub message: String,
}

/// The outcome of one suite file.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteResult {
    pub path: PathBuf,
    pub name: String,
    /// Set when the suite could not be run at all (bad file, invalid policy, …).
    pub error: Option<String>,
    pub rows: Vec<RowResult>,
}

impl SuiteResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.rows.iter().all(|r| r.passed)
    }
}

/// Filters rows by `policy=…,rule=…,resource=…` (each part optional; `*` wildcards allowed).
#[derive(Debug, Default, Clone)]
pub struct CaseSelector {
    policy: Option<String>,
    rule: Option<String>,
    resource: Option<String>,
}

impl CaseSelector {
    pub fn parse(text: &str) -> Result<CaseSelector> {
        let mut sel = CaseSelector::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .with_context(|| format!("--test-case-selector: {part:?} is not key=value"))?;
            let value = Some(value.trim().to_owned());
            match key.trim() {
                "policy" => sel.policy = value,
                "rule" => sel.rule = value,
                "resource" => sel.resource = value,
                other => anyhow::bail!(
                    "--test-case-selector: unknown key {other:?} (want policy, rule or resource)"
                ),
            }
        }
        Ok(sel)
    }

    fn accepts(&self, policy: &str, rule: &str, resource: &str) -> bool {
        let ok = |want: &Option<String>, have: &str| {
            want.as_deref()
                .is_none_or(|w| bylaw_engine::wildcard::wildcard_match(w, have))
        };
        ok(&self.policy, policy) && ok(&self.rule, rule) && ok(&self.resource, resource)
    }
}

/// Finds every suite file named `file_name` below `dir` (dot-folders included), sorted.
pub fn find_suites(dir: &Path, file_name: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if dir.is_file() {
        found.push(dir.to_path_buf());
        return Ok(found);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = std::fs::read_dir(&current)
            .with_context(|| format!("cannot list {}", current.display()))?;
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().and_then(|n| n.to_str()) == Some(file_name) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// One evaluated (policy, resource) pair.
struct Evaluated {
    policy_key: String,
    resource_kind: String,
    resource_name: String,
    resource_namespace: String,
    rules: Vec<(String, RuleStatus, String)>,
    /// The resource after this policy's mutations (and every earlier policy's).
    patched: Value,
    /// `(rule, object)` for every object this policy's generate rules produced.
    generated: Vec<(String, Value)>,
}

/// Runs one suite file.
pub fn run_suite(path: &Path, selector: &CaseSelector) -> SuiteResult {
    let mut result = SuiteResult {
        path: path.to_path_buf(),
        name: String::new(),
        error: None,
        rows: Vec::new(),
    };
    match run_suite_inner(path, selector, &mut result) {
        Ok(()) => {}
        Err(err) => result.error = Some(format!("{err:#}")),
    }
    result
}

fn run_suite_inner(path: &Path, selector: &CaseSelector, out: &mut SuiteResult) -> Result<()> {
    let docs = read_documents(path)?;
    let doc = docs
        .first()
        .with_context(|| format!("{}: empty test file", path.display()))?
        .value
        .clone();
    let base = path.parent().unwrap_or(Path::new("."));
    out.name = get_ci(&doc, "metadata")
        .and_then(|m| get_ci(m, "name"))
        .or_else(|| get_ci(&doc, "name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let paths = |key: &str| -> Vec<PathBuf> {
        bylaw_engine::matching::string_list(get_ci(&doc, key))
            .iter()
            .map(|p| base.join(p))
            .collect()
    };

    let mut policy_docs = Vec::new();
    for p in paths("policies") {
        policy_docs.extend(read_documents(&p)?);
    }
    let mut exception_docs = Vec::new();
    for p in paths("exceptions") {
        exception_docs.extend(read_documents(&p)?);
    }
    policy_docs.extend(exception_docs);
    let bundle = load::compile_documents(&policy_docs)?;
    let mut resources = Vec::new();
    for p in paths("resources") {
        resources.extend(read_documents(&p)?);
    }
    for resource in &mut resources {
        load::default_namespace(&mut resource.value);
    }
    let mut values = match get_ci(&doc, "variables").and_then(Value::as_str) {
        Some(v) => load::read_values(&base.join(v))?,
        None => Values::default(),
    };
    if let Some(inline) = get_ci(&doc, "values") {
        let parsed = Values::parse(inline);
        merge_values(&mut values, parsed);
    }
    let user = match get_ci(&doc, "userinfo").and_then(Value::as_str) {
        Some(u) => load::read_user_info(&base.join(u))?,
        None => UserInfo::default(),
    };
    let rows = get_ci(&doc, "results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Clone sources a row names are part of the pretend cluster generate rules see, as in
    // Kyverno's CLI.
    let mut clone_sources = Vec::new();
    for row in &rows {
        if let Some(file) = get_ci(row, "cloneSourceResource")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
        {
            for mut source in read_documents(&base.join(file))? {
                load::default_namespace(&mut source.value);
                if !clone_sources.contains(&source.value) {
                    clone_sources.push(source.value);
                }
            }
        }
    }

    // Evaluate every policy against every resource.
    let mut evaluated = Vec::new();
    for resource in &resources {
        let object = &resource.value;
        if !object.is_object() {
            continue;
        }
        let name = metadata_str(object, "name").to_owned();
        let namespace = metadata_str(object, "namespace").to_owned();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        for run in run_resource(&bundle, &values, &user, object, &clone_sources) {
            evaluated.push(Evaluated {
                policy_key: run.policy.key(),
                resource_kind: kind.clone(),
                resource_name: name.clone(),
                resource_namespace: namespace.clone(),
                rules: statuses(run.policy, &run.response),
                patched: run.resource,
                generated: run.generated,
            });
        }
    }

    for row in &rows {
        let field = |k: &str| {
            get_ci(row, k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let policy = field("policy");
        let rule = field("rule");
        let kind = field("kind");
        let namespace = field("namespace");
        let mut expected = field("result");
        if expected.is_empty() {
            expected = field("status");
        }
        let patched_file = ["patchedResource", "patchedResources"]
            .iter()
            .find_map(|k| get_ci(row, k).and_then(Value::as_str))
            .filter(|f| !f.is_empty())
            .map(|f| base.join(f));
        let generated_file = get_ci(row, "generatedResource")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
            .map(|f| base.join(f));
        let mut names = bylaw_engine::matching::string_list(get_ci(row, "resources"));
        let single = field("resource");
        if names.is_empty() && !single.is_empty() {
            names.push(single);
        }
        for resource in names {
            if !selector.accepts(&policy, &rule, &resource) {
                continue;
            }
            out.rows.push(compare_row(
                &bundle.policies,
                &evaluated,
                RowKey {
                    policy: &policy,
                    rule: &rule,
                    kind: &kind,
                    namespace: &namespace,
                    resource: &resource,
                    expected: &expected,
                    patched_file: patched_file.clone(),
                    generated_file: generated_file.clone(),
                },
                &bundle.unsupported,
            ));
        }
    }
    Ok(())
}

fn statuses(
    policy: &CompiledPolicy,
    response: &PolicyResponse,
) -> Vec<(String, RuleStatus, String)> {
    response
        .rules
        .iter()
        .map(|r| (r.name.clone(), report_status(policy, r), r.message.clone()))
        .collect()
}

fn merge_values(into: &mut Values, from: Values) {
    into.global.extend(from.global);
    into.rule_values.extend(from.rule_values);
    into.foreach_values.extend(from.foreach_values);
    into.resource_values.extend(from.resource_values);
    into.namespace_labels.extend(from.namespace_labels);
}

struct RowKey<'a> {
    policy: &'a str,
    rule: &'a str,
    kind: &'a str,
    namespace: &'a str,
    resource: &'a str,
    expected: &'a str,
    /// `patchedResource(s)`: a file holding the expected resource after mutation.
    patched_file: Option<PathBuf>,
    /// `generatedResource`: a file holding the objects a generate rule should produce.
    generated_file: Option<PathBuf>,
}

fn compare_row(
    policies: &[CompiledPolicy],
    evaluated: &[Evaluated],
    key: RowKey<'_>,
    unsupported: &[(String, String, PathBuf)],
) -> RowResult {
    let mut row = RowResult {
        policy: key.policy.to_owned(),
        rule: key.rule.to_owned(),
        resource: key.resource.to_owned(),
        kind: key.kind.to_owned(),
        expected: key.expected.to_owned(),
        actual: None,
        passed: false,
        reason: String::new(),
        message: String::new(),
    };
    let rule_names = [
        key.rule.to_owned(),
        format!("autogen-{}", key.rule),
        format!("autogen-cronjob-{}", key.rule),
    ];
    let Some(policy) = policies.iter().find(|p| p.key() == key.policy) else {
        row.reason = match unsupported.iter().find(|(_, name, _)| name == key.policy) {
            Some((kind, _, _)) => format!("policy kind {kind} is not supported by bylaw yet"),
            None => format!("policy {:?} not found", key.policy),
        };
        return row;
    };
    if !policy.rules.iter().any(|r| rule_names.contains(&r.name)) {
        row.reason = format!("rule {:?} not found in policy {:?}", key.rule, key.policy);
        return row;
    }
    let candidates: Vec<&Evaluated> = evaluated
        .iter()
        .filter(|e| {
            e.policy_key == key.policy
                && e.resource_kind == key.kind
                && (e.resource_name == key.resource
                    || format!("{}/{}", e.resource_namespace, e.resource_name) == key.resource)
                && (key.namespace.is_empty() || e.resource_namespace == key.namespace)
        })
        .collect();
    if candidates.is_empty() {
        row.reason = format!("resource {}/{} not found", key.kind, key.resource);
        return row;
    }
    let found: Vec<&(String, RuleStatus, String)> = candidates
        .iter()
        .flat_map(|e| e.rules.iter())
        .filter(|(name, _, _)| rule_names.contains(name))
        .collect();
    if found.is_empty() {
        // The rule exists but did not select the resource: Kyverno reports nothing, which
        // only a `skip` expectation describes.
        row.actual = Some("skip".to_owned());
        row.passed = key.expected == "skip";
        row.reason = if row.passed {
            "Excluded".to_owned()
        } else {
            format!(
                "want {}, got no result: the rule did not match the resource",
                key.expected
            )
        };
        return row;
    }
    if let Some(file) = &key.patched_file {
        let mismatch = candidates
            .iter()
            .find_map(|c| compare_patched(&c.patched, file).err());
        row.actual = found.first().map(|(_, s, _)| s.as_str().to_owned());
        // For a mutation, `fail` expects the patched resource NOT to look like the file, as in
        // Kyverno's CLI.
        if key.expected == "fail" {
            expect_difference(&mut row, mismatch.is_some(), "patched", file);
            return row;
        }
        if let Some(reason) = mismatch {
            row.reason = reason;
            return row;
        }
    }
    if let Some(file) = &key.generated_file {
        let generated: Vec<&Value> = candidates
            .iter()
            .flat_map(|c| c.generated.iter())
            .filter(|(rule, _)| rule_names.contains(rule))
            .map(|(_, object)| object)
            .collect();
        let mismatch = if generated.is_empty() {
            Some(format!(
                "the rule generated nothing to compare with {}",
                file.display()
            ))
        } else {
            generated
                .iter()
                .find_map(|object| compare_generated(object, file).err())
        };
        row.actual = found.first().map(|(_, s, _)| s.as_str().to_owned());
        row.message = found.first().map(|(_, _, m)| m.clone()).unwrap_or_default();
        // As for mutations, `fail` expects the generated object NOT to look like the file.
        if key.expected == "fail" {
            expect_difference(&mut row, mismatch.is_some(), "generated", file);
            return row;
        }
        if let Some(reason) = mismatch {
            let status = row.actual.as_deref().unwrap_or("no result");
            row.reason = if status == key.expected {
                reason
            } else {
                format!(
                    "want {}, got {status}: {}",
                    key.expected,
                    if row.message.is_empty() {
                        reason
                    } else {
                        row.message.clone()
                    }
                )
            };
            return row;
        }
    }
    // Every matching response must agree with the expectation.
    for (_, status, message) in &found {
        row.actual = Some(status.as_str().to_owned());
        row.message = message.clone();
        if status.as_str() != key.expected {
            row.passed = false;
            row.reason = format!("want {}, got {}", key.expected, status.as_str());
            return row;
        }
    }
    row.passed = true;
    row.reason = "Ok".to_owned();
    row
}

/// Compares a mutated resource with the expected one in `file` (the document with the same
/// apiVersion, kind, namespace and name), ignoring nulls and empty maps and lists as Kyverno's
/// CLI does. The error lists the JSON paths that differ.
fn compare_patched(actual: &Value, file: &Path) -> Result<(), String> {
    let docs = read_documents(file).map_err(|e| format!("{e:#}"))?;
    let id = |v: &Value| {
        (
            v.get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            v.get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            metadata_str(v, "namespace").to_owned(),
            metadata_str(v, "name").to_owned(),
        )
    };
    let want_id = id(actual);
    let expected = docs
        .into_iter()
        .map(|mut d| {
            load::default_namespace(&mut d.value);
            d.value
        })
        .find(|d| id(d) == want_id)
        .ok_or_else(|| {
            format!(
                "{}: no {}/{} named {:?} to compare the patched resource with",
                file.display(),
                want_id.0,
                want_id.1,
                want_id.3
            )
        })?;
    let (actual, expected) = (tidy(actual), tidy(&expected));
    if actual == expected {
        return Ok(());
    }
    Err(format!(
        "patched resource differs from {}: {}",
        file.display(),
        describe_differences(&expected, &actual)
    ))
}

/// Compares an object a generate rule produced with the document in `file` that has the same
/// kind, name and namespace (a document without apiVersion or namespace matches any). The
/// labels generation adds are ignored on both sides, as Kyverno's CLI does, and so are nulls
/// and empty maps and lists.
fn compare_generated(actual: &Value, file: &Path) -> Result<(), String> {
    let docs = read_documents(file).map_err(|e| format!("{e:#}"))?;
    let id = ResourceRef::of(actual);
    let expected = docs
        .into_iter()
        .map(|d| d.value)
        .find(|d| {
            let want = ResourceRef::of(d);
            want.kind == id.kind
                && want.name == id.name
                && (want.api_version.is_empty() || want.api_version == id.api_version)
                && (want.namespace.is_empty() || want.namespace == id.namespace)
        })
        .ok_or_else(|| {
            format!(
                "{}: no document for the generated {id} to compare with",
                file.display()
            )
        })?;
    let mut expected = expected;
    if metadata_str(&expected, "namespace").is_empty() && !id.namespace.is_empty() {
        if let Some(metadata) = expected.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.insert("namespace".into(), Value::String(id.namespace.clone()));
        }
    }
    let mut actual = actual.clone();
    strip_generate_labels(&mut actual);
    strip_generate_labels(&mut expected);
    let (actual, expected) = (tidy(&actual), tidy(&expected));
    if actual == expected {
        return Ok(());
    }
    Err(format!(
        "generated {id} differs from {}: {}",
        file.display(),
        describe_differences(&expected, &actual)
    ))
}

/// The first few differences between two documents as `path: expected X, got Y`.
fn describe_differences(expected: &Value, actual: &Value) -> String {
    const SHOWN: usize = 5;
    let short = |v: &Value| {
        let text = v.to_string();
        if text.chars().count() > 60 {
            format!("{}…", text.chars().take(60).collect::<String>())
        } else {
            text
        }
    };
    let mut found = Vec::new();
    let mut stack = vec![(String::new(), Some(expected), Some(actual))];
    while let Some((path, want, have)) = stack.pop() {
        let at = if path.is_empty() { "/" } else { path.as_str() };
        match (want, have) {
            (Some(Value::Object(w)), Some(Value::Object(h))) => {
                let mut keys: Vec<&String> = w.keys().chain(h.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys.into_iter().rev() {
                    let child = format!("{path}/{}", bylaw_engine::mutate::escape_token(key));
                    stack.push((child, w.get(key), h.get(key)));
                }
            }
            (Some(Value::Array(w)), Some(Value::Array(h))) if w.len() == h.len() => {
                for (i, (wv, hv)) in w.iter().zip(h.iter()).enumerate().rev() {
                    stack.push((format!("{path}/{i}"), Some(wv), Some(hv)));
                }
            }
            (Some(w), Some(h)) if w == h => {}
            (Some(w), Some(h)) => {
                found.push(format!("{at}: expected {}, got {}", short(w), short(h)))
            }
            (Some(w), None) => found.push(format!("{at}: missing (expected {})", short(w))),
            (None, Some(h)) => found.push(format!("{at}: unexpected {}", short(h))),
            (None, None) => {}
        }
    }
    let more = found.len().saturating_sub(SHOWN);
    let mut text = found.into_iter().take(SHOWN).collect::<Vec<_>>().join("; ");
    if more > 0 {
        text.push_str(&format!("; … and {more} more"));
    }
    text
}

/// Drops nulls and empty maps and lists, recursively (list elements included), as Kyverno's
/// CLI tidies objects before comparing them.
fn tidy(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), tidy(v)))
                .filter(|(_, v)| !is_empty_value(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(tidy)
                .filter(|v| !is_empty_value(v))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// A row expecting `fail` next to an expected-resource file passes when the resource differs
/// from the file, or when the rule itself failed.
fn expect_difference(row: &mut RowResult, differs: bool, what: &str, file: &Path) {
    row.passed = differs || row.actual.as_deref() == Some("fail");
    row.reason = if row.passed {
        format!("Ok (the {what} resource differs, as expected)")
    } else {
        format!("want the {what} resource to differ from {}", file.display())
    };
}

/// Counts of rows by outcome.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Totals {
    pub suites_passed: usize,
    pub suites_failed: usize,
    pub rows_passed: usize,
    pub rows_failed: usize,
}

pub fn totals(results: &[SuiteResult]) -> Totals {
    let mut t = Totals::default();
    for suite in results {
        if suite.passed() {
            t.suites_passed += 1;
        } else {
            t.suites_failed += 1;
        }
        for row in &suite.rows {
            if row.passed {
                t.rows_passed += 1;
            } else {
                t.rows_failed += 1;
            }
        }
    }
    t
}

/// A suite's pretend cluster for generate rules: the values file, plus the objects that exist
/// (the resource under test and the clone sources the suite names).
pub(crate) struct Cluster<'a> {
    pub values: &'a Values,
    pub objects: bylaw_engine::generate::ObjectStore,
}

impl ContextProvider for Cluster<'_> {
    fn rule_values(&self, policy: &str, rule: &str) -> Option<&serde_json::Map<String, Value>> {
        self.values.rule_values(policy, rule)
    }

    fn foreach_values(&self, policy: &str, rule: &str) -> Option<&serde_json::Map<String, Value>> {
        self.values.foreach_values(policy, rule)
    }

    fn resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ContextError> {
        self.objects.resource(api_version, kind, namespace, name)
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        selector: Option<&Value>,
    ) -> Result<Vec<Value>, ContextError> {
        self.objects
            .list_resources(api_version, kind, namespace, selector)
    }
}
