//! `bylaw test`: runs `kyverno-test.yaml` suites and compares every expected result row with
//! what the engine produced. It exits 0 only if every row of every suite matched.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bylaw_engine::compile::{unsupported_message, CompiledPolicy};
use bylaw_engine::engine::report_status;
use bylaw_engine::generate::{labels::strip_generate_labels, ResourceRef};
use bylaw_engine::request::{metadata_str, Operation, UserInfo};
use bylaw_engine::response::PolicyResponse;
use bylaw_engine::response::{MessageFormat, RuleStatus};
use serde::Serialize;
use serde_json::Value;

use bylaw_runtime::sources::Hidden;

use crate::cluster::ClusterData;
use crate::load::{self, get_ci, read_documents, PolicyBundle, Values};
use crate::run::{run_resource, Setting};

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

/// The outcome of one Test document of a suite file.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteResult {
    pub path: PathBuf,
    pub name: String,
    /// Set when the suite could not be run at all (bad file, invalid policy, unsupported
    /// field, nothing to check, …).
    pub error: Option<String>,
    pub rows: Vec<RowResult>,
    /// The `--test-case-selector` selected none of the suite's rows, so it was not run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deselected: bool,
}

impl SuiteResult {
    fn new(path: &Path) -> SuiteResult {
        SuiteResult {
            path: path.to_path_buf(),
            name: String::new(),
            error: None,
            rows: Vec::new(),
            deselected: false,
        }
    }

    /// A suite passes only when it checked something and every row matched.
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && !self.deselected
            && !self.rows.is_empty()
            && self.rows.iter().all(|r| r.passed)
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
        self.accepts_row(policy, rule) && Self::part_accepts(&self.resource, resource)
    }

    /// Policy and rule only: a row without `resources` is selected by them, as in Kyverno.
    fn accepts_row(&self, policy: &str, rule: &str) -> bool {
        Self::part_accepts(&self.policy, policy) && Self::part_accepts(&self.rule, rule)
    }

    fn part_accepts(want: &Option<String>, have: &str) -> bool {
        want.as_deref()
            .is_none_or(|w| bylaw_engine::wildcard::wildcard_match(w, have))
    }
}

/// Finds every suite file named `file_name` below `dir` (dot-folders included, as Kyverno's
/// CLI looks into `.kyverno-test`), sorted.
pub fn find_suites(dir: &Path, file_name: &str) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let named = |path: &Path| path.file_name().and_then(|n| n.to_str()) == Some(file_name);
    bylaw_runtime::sources::walk_files(dir, Hidden::Include, &named, &mut found)?;
    Ok(found)
}

/// Test document fields bylaw reads. A field outside this list that holds anything fails the
/// suite: bylaw must not report success for inputs it ignored.
const TEST_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "policies",
    "resources",
    "exceptions",
    "variables",
    "values",
    "userinfo",
    "results",
    "clusterResources",
    "targetResources",
    "apiCallResponses",
    "globalContextEntries",
    // Parameter objects of CEL policies (`paramKind`/`paramRef`).
    "paramResources",
    // A `cli.kyverno.io` Context: images and resources for CEL policies; Kyverno's CLI gives
    // classic policies nothing from it either.
    "context",
];

/// Result row fields bylaw reads. `failOnMissingResources` is how bylaw always compares rows
/// that name their resources; the `is…Policy` flags only say which kind the policy is.
const RESULT_FIELDS: &[&str] = &[
    "policy",
    "rule",
    "kind",
    "result",
    "status",
    "resources",
    "resource",
    "namespace",
    "patchedResource",
    "patchedResources",
    "generatedResource",
    "cloneSourceResource",
    "failOnMissingResources",
    "operation",
    "isValidatingAdmissionPolicy",
    "isMutatingAdmissionPolicy",
    "isValidatingPolicy",
    "isMutatingPolicy",
    "isGeneratingPolicy",
    "isImageValidatingPolicy",
    "isDeletingPolicy",
];

/// The fields of a Test document (and of its result rows) that bylaw does not support, as
/// paths (`httpPayloads`, `results[2].operation`). Fields without a value (null, empty, false)
/// ask for nothing and are accepted. Keys match case-insensitively, as in Kyverno.
fn unsupported_fields(doc: &Value) -> Vec<String> {
    fn holds_something(value: &Value) -> bool {
        match value {
            Value::Null | Value::Bool(false) => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(m) => !m.is_empty(),
            _ => true,
        }
    }
    fn unknown<'v>(
        object: &'v serde_json::Map<String, Value>,
        known: &'v [&str],
    ) -> impl Iterator<Item = &'v String> + 'v {
        object.iter().filter_map(move |(key, value)| {
            let is_known = known.iter().any(|k| k.eq_ignore_ascii_case(key));
            (!is_known && holds_something(value)).then_some(key)
        })
    }
    let Some(object) = doc.as_object() else {
        return Vec::new();
    };
    let mut found: Vec<String> = unknown(object, TEST_FIELDS).cloned().collect();
    let rows = get_ci(doc, "results").and_then(Value::as_array);
    for (index, row) in rows.into_iter().flatten().enumerate() {
        if let Some(row) = row.as_object() {
            found.extend(unknown(row, RESULT_FIELDS).map(|key| format!("results[{index}].{key}")));
        }
    }
    found
}

/// One evaluated (policy, resource) pair.
struct Evaluated {
    /// An existing object a mutate-existing rule patched (`targetResources`), not a resource
    /// the policies were evaluated for.
    is_target: bool,
    /// The operation a row asked for explicitly; `None` for the default run (the values file's
    /// `request.operation`, else CREATE).
    operation: Option<Operation>,
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

impl Evaluated {
    /// How rows name the resource: `namespace/name`, or `name` when cluster-scoped.
    fn resource_id(&self) -> String {
        if self.resource_namespace.is_empty() {
            self.resource_name.clone()
        } else {
            format!("{}/{}", self.resource_namespace, self.resource_name)
        }
    }
}

/// How suites are run and reported.
#[derive(Debug, Default, Clone)]
pub struct SuiteOptions {
    pub selector: CaseSelector,
    /// How rule messages are shown (`--message-format`).
    pub message_format: MessageFormat,
    /// Kinds named cluster-scoped on the command line (`--cluster-scoped`).
    pub cluster_scoped: Vec<String>,
}

/// Runs every Test document of one suite file.
pub fn run_suites(path: &Path, options: &SuiteOptions) -> Vec<SuiteResult> {
    let docs = match read_documents(path) {
        Ok(docs) if !docs.is_empty() => docs,
        Ok(_) => {
            let mut result = SuiteResult::new(path);
            result.error = Some(format!("{}: empty test file", path.display()));
            return vec![result];
        }
        Err(err) => {
            let mut result = SuiteResult::new(path);
            result.error = Some(format!("{err:#}"));
            return vec![result];
        }
    };
    docs.iter()
        .map(|doc| {
            let mut result = SuiteResult::new(path);
            if let Err(err) = run_suite(path, &doc.value, options, &mut result) {
                result.error = Some(format!("{err:#}"));
            } else if result.rows.is_empty() && !result.deselected {
                result.error =
                    Some("no result row was evaluated: the suite checks nothing".to_owned());
            }
            result
        })
        .collect()
}

fn run_suite(
    path: &Path,
    doc: &Value,
    options: &SuiteOptions,
    out: &mut SuiteResult,
) -> Result<()> {
    let selector = &options.selector;
    let format = options.message_format;
    let base = path.parent().unwrap_or(Path::new("."));
    out.name = get_ci(doc, "metadata")
        .and_then(|m| get_ci(m, "name"))
        .or_else(|| get_ci(doc, "name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let unsupported = unsupported_fields(doc);
    if !unsupported.is_empty() {
        anyhow::bail!("unsupported in bylaw: {}", unsupported.join(", "));
    }
    let rows: Vec<RowSpec> = get_ci(doc, "results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, row)| RowSpec::parse(row, base).with_context(|| format!("results[{index}]")))
        .collect::<Result<_>>()?;
    if rows.is_empty() {
        anyhow::bail!("the suite has no result rows: it checks nothing");
    }
    let selected: Vec<&RowSpec> = rows.iter().filter(|r| r.selected_by(selector)).collect();
    if selected.is_empty() {
        out.deselected = true;
        return Ok(());
    }
    let paths = |key: &str| -> Vec<PathBuf> {
        bylaw_engine::matching::string_list(get_ci(doc, key))
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
    let mut targets: Vec<Value> = Vec::new();
    for p in paths("targetResources") {
        targets.extend(read_documents(&p)?.into_iter().map(|d| d.value));
    }
    let cluster_files = paths("clusterResources");
    let cluster_objects = ClusterData::read_cluster_resources(&cluster_files, base)?;
    // Custom kinds are cluster-scoped when a CustomResourceDefinition among the inputs says so.
    let mut scopes = load::Scopes::with_flags(&options.cluster_scoped);
    scopes.learn(
        policy_docs
            .iter()
            .chain(&resources)
            .map(|d| &d.value)
            .chain(&targets)
            .chain(&cluster_objects),
    );
    for resource in &mut resources {
        load::default_namespace(&mut resource.value, &scopes);
    }
    for target in &mut targets {
        load::default_namespace(target, &scopes);
    }
    let mut values = match get_ci(doc, "variables").and_then(Value::as_str) {
        Some(v) => load::read_values(&base.join(v))?,
        None => Values::default(),
    };
    if let Some(inline) = get_ci(doc, "values") {
        let parsed = Values::parse(inline);
        merge_values(&mut values, parsed);
    }
    if let Some(context) = get_ci(doc, "context").and_then(Value::as_str) {
        values.load_context(&base.join(context), &scopes)?;
    }
    for p in paths("paramResources") {
        values.load_objects(&p, &scopes)?;
    }
    let user = match get_ci(doc, "userinfo").and_then(Value::as_str) {
        Some(u) => load::read_user_info(&base.join(u))?,
        None => UserInfo::default(),
    };
    // Clone sources a row names are part of the pretend cluster generate rules see, as in
    // Kyverno's CLI.
    let mut clone_sources = Vec::new();
    for file in rows.iter().filter_map(|r| r.clone_source_file.as_ref()) {
        for mut source in read_documents(file)? {
            load::default_namespace(&mut source.value, &scopes);
            if !clone_sources.contains(&source.value) {
                clone_sources.push(source.value);
            }
        }
    }

    // Evaluate every policy against every resource: once as the values file says, and once
    // more for each operation a row names, as Kyverno's CLI does.
    let mut runs: Vec<Option<Operation>> = vec![None];
    for operation in selected.iter().filter_map(|r| r.operation) {
        if !runs.contains(&Some(operation)) {
            runs.push(Some(operation));
        }
    }
    let cluster = cluster_data(doc, base, &resources, &targets, cluster_objects)?;
    let setting = Setting {
        values: &values,
        user: &user,
        cluster: &cluster,
        existing: &clone_sources,
    };
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
        for &operation in &runs {
            for run in run_resource(&bundle, &setting, object, operation) {
                for (response, patched) in &run.patched_targets {
                    let id = ResourceRef::of(patched);
                    if !targets.iter().any(|t| ResourceRef::of(t) == id) {
                        continue;
                    }
                    evaluated.push(Evaluated {
                        is_target: true,
                        operation,
                        policy_key: run.policy.key(),
                        resource_kind: id.kind,
                        resource_name: id.name,
                        resource_namespace: id.namespace,
                        rules: vec![(
                            response.name.to_string(),
                            report_status(run.policy, response),
                            response.message_in(format).into_owned(),
                        )],
                        patched: patched.clone(),
                        generated: Vec::new(),
                    });
                }
                evaluated.push(Evaluated {
                    is_target: false,
                    operation,
                    policy_key: run.policy.key(),
                    resource_kind: kind.clone(),
                    resource_name: name.clone(),
                    resource_namespace: namespace.clone(),
                    rules: statuses(run.policy, &run.response, format),
                    patched: std::rc::Rc::unwrap_or_clone(run.resource),
                    generated: run.generated,
                });
            }
        }
    }

    let suite = Suite {
        bundle: &bundle,
        evaluated: &evaluated,
        scopes: &scopes,
    };
    for row in selected {
        if row.resources.is_empty() {
            out.rows.extend(suite.check_every_result(row, selector));
        } else {
            for resource in &row.resources {
                if selector.accepts(&row.policy, &row.rule, resource) {
                    out.rows.push(suite.check(row, &row.kind, resource));
                }
            }
        }
    }
    Ok(())
}

/// The suite's pretend cluster: its resources and `clusterResources` (read by configMap and
/// apiCall entries only when `clusterResources` is given, as in Kyverno's CLI), the mocked API
/// answers and the global context entries.
fn cluster_data(
    doc: &Value,
    base: &Path,
    resources: &[load::Document],
    targets: &[Value],
    cluster_objects: Vec<Value>,
) -> Result<ClusterData> {
    let enabled = get_ci(doc, "clusterResources")
        .and_then(Value::as_array)
        .is_some_and(|files| !files.is_empty());
    let mut objects: Vec<Value> = resources.iter().map(|r| r.value.clone()).collect();
    objects.extend(targets.iter().cloned());
    objects.extend(cluster_objects);
    Ok(ClusterData {
        enabled,
        objects: bylaw_engine::generate::ObjectStore(objects),
        api_mocks: match get_ci(doc, "apiCallResponses") {
            Some(mocks) => ClusterData::parse_api_mocks(mocks)?,
            None => Vec::new(),
        },
        global_entries: match get_ci(doc, "globalContextEntries") {
            Some(entries) => ClusterData::parse_global_entries(entries, base)?,
            None => Default::default(),
        },
    })
}

fn statuses(
    policy: &CompiledPolicy,
    response: &PolicyResponse,
    format: MessageFormat,
) -> Vec<(String, RuleStatus, String)> {
    response
        .rules
        .iter()
        .map(|r| {
            let message = r.message_in(format).into_owned();
            (r.name.to_string(), report_status(policy, r), message)
        })
        .collect()
}

fn merge_values(into: &mut Values, from: Values) {
    into.objects.0.extend(from.objects.0);
    into.images.extend(from.images);
    into.global.extend(from.global);
    into.rule_values.extend(from.rule_values);
    into.foreach_values.extend(from.foreach_values);
    into.resource_values.extend(from.resource_values);
    into.namespace_labels.extend(from.namespace_labels);
    into.subresources.extend(from.subresources);
}

/// One result row of a Test document, as written.
struct RowSpec {
    policy: String,
    /// Empty: every rule of the policy, as in Kyverno.
    rule: String,
    kind: String,
    namespace: String,
    expected: String,
    /// `resources` (or the deprecated `resource`); empty: every result of the policy and rule.
    resources: Vec<String>,
    /// `patchedResource(s)`: a file holding the expected resource after mutation.
    patched_file: Option<PathBuf>,
    /// `generatedResource`: a file holding the objects a generate rule should produce.
    generated_file: Option<PathBuf>,
    clone_source_file: Option<PathBuf>,
    /// A row without `resources` also fails for a resource missing from its patched file.
    fail_on_missing: bool,
    /// `operation`: the row is checked against a run as this admission operation.
    operation: Option<Operation>,
}

impl RowSpec {
    fn parse(row: &Value, base: &Path) -> Result<RowSpec> {
        let field = |k: &str| {
            get_ci(row, k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let file = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| get_ci(row, k).and_then(Value::as_str))
                .filter(|f| !f.is_empty())
                .map(|f| base.join(f))
        };
        let mut expected = field("result");
        if expected.is_empty() {
            expected = field("status");
        }
        let mut resources = bylaw_engine::matching::string_list(get_ci(row, "resources"));
        let single = field("resource");
        if resources.is_empty() && !single.is_empty() {
            resources.push(single);
        }
        // Kyverno's CLI takes exactly these spellings.
        let operation = match field("operation").as_str() {
            "" => None,
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            other => anyhow::bail!(
                "operation: invalid operation {other:?}, must be one of CREATE, UPDATE, DELETE"
            ),
        };
        Ok(RowSpec {
            operation,
            policy: field("policy"),
            rule: field("rule"),
            kind: field("kind"),
            namespace: field("namespace"),
            expected,
            resources,
            patched_file: file(&["patchedResource", "patchedResources"]),
            generated_file: file(&["generatedResource"]),
            clone_source_file: file(&["cloneSourceResource"]),
            fail_on_missing: get_ci(row, "failOnMissingResources")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// Kyverno's selection: policy and rule must match; a row naming resources needs one
    /// the selector accepts.
    fn selected_by(&self, selector: &CaseSelector) -> bool {
        selector.accepts_row(&self.policy, &self.rule)
            && (self.resources.is_empty()
                || self
                    .resources
                    .iter()
                    .any(|r| selector.accepts(&self.policy, &self.rule, r)))
    }

    /// Whether a rule response answers this row: the rule or a rule autogen made from it.
    fn names_rule(&self, name: &str) -> bool {
        self.rule.is_empty()
            || name == self.rule
            || name
                .strip_prefix("autogen-")
                .is_some_and(|rest| rest == self.rule || rest == format!("cronjob-{}", self.rule))
    }

    fn new_result(&self, kind: &str, resource: &str) -> RowResult {
        RowResult {
            policy: self.policy.clone(),
            rule: self.rule.clone(),
            resource: resource.to_owned(),
            kind: kind.to_owned(),
            expected: self.expected.clone(),
            actual: None,
            passed: false,
            reason: String::new(),
            message: String::new(),
        }
    }
}

/// A suite's policies and what they produced, for checking rows.
struct Suite<'a> {
    bundle: &'a PolicyBundle,
    evaluated: &'a [Evaluated],
    scopes: &'a load::Scopes,
}

impl Suite<'_> {
    /// Whether a rule response answers the row: a rule the row names, or any rule of a CEL
    /// policy kind, whose rows name no rule because the policy is one check.
    fn answers(&self, row: &RowSpec, name: &str) -> bool {
        row.names_rule(name)
            || self
                .bundle
                .policies
                .iter()
                .any(|p| p.key() == row.policy && p.kind.is_ruleless())
    }

    /// The row's policy when it exists and its rule is one bylaw evaluates; otherwise the
    /// failing result to report.
    fn resolve(
        &self,
        row: &RowSpec,
        kind: &str,
        resource: &str,
    ) -> Result<&CompiledPolicy, Box<RowResult>> {
        let mut result = row.new_result(kind, resource);
        let Some(policy) = self.bundle.policies.iter().find(|p| p.key() == row.policy) else {
            result.reason = match self
                .bundle
                .unsupported
                .iter()
                .find(|(_, name, _)| *name == row.policy)
            {
                Some((kind, _, _)) => format!("policy kind {kind} is not supported by bylaw yet"),
                None => format!("policy {:?} not found", row.policy),
            };
            return Err(Box::new(result));
        };
        if !policy.rules.iter().any(|r| self.answers(row, &r.name)) {
            result.reason = format!("rule {:?} not found in policy {:?}", row.rule, row.policy);
            return Err(Box::new(result));
        }
        if let Some(unsupported) = policy
            .unsupported_rules()
            .into_iter()
            .find(|u| self.answers(row, &u.rule))
        {
            // Never a pass, whatever the row expects: bylaw did not check it.
            result.actual = Some(RuleStatus::Error.as_str().to_owned());
            result.message = unsupported_message(unsupported.feature);
            result.reason = format!(
                "want {}, got error: unsupported in bylaw: {} (rule {:?})",
                row.expected, unsupported.feature, unsupported.rule
            );
            return Err(Box::new(result));
        }
        Ok(policy)
    }

    /// A row without `resources`: checked against every result of its policy and rule (for
    /// resources of its kind, when it names one), one row result per resource, as Kyverno's
    /// CLI does. A row that finds no result at all fails.
    fn check_every_result(&self, row: &RowSpec, selector: &CaseSelector) -> Vec<RowResult> {
        let any_kind = if row.kind.is_empty() { "*" } else { &row.kind };
        if let Err(failed) = self.resolve(row, any_kind, "*") {
            return vec![*failed];
        }
        let mut results = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let (mut deselected, mut not_in_patched_file) = (0, 0);
        for e in self.evaluated {
            let answers = e.operation == row.operation
                && e.policy_key == row.policy
                && (row.kind.is_empty() || e.resource_kind == row.kind)
                && (row.namespace.is_empty() || e.resource_namespace == row.namespace)
                && e.rules.iter().any(|(name, _, _)| self.answers(row, name));
            let resource = e.resource_id();
            if !answers || !seen.insert((e.resource_kind.clone(), resource.clone())) {
                continue;
            }
            if !selector.accepts(&row.policy, &row.rule, &resource) {
                deselected += 1;
                continue;
            }
            // Kyverno leaves out resources its patched file does not describe.
            if let (Some(file), false) = (&row.patched_file, row.fail_on_missing) {
                if matches!(expected_patched(&e.patched, file, self.scopes), Ok(None)) {
                    not_in_patched_file += 1;
                    continue;
                }
            }
            results.push(self.check(row, &e.resource_kind, &resource));
        }
        if results.is_empty() && deselected == 0 {
            let mut failed = row.new_result(any_kind, "*");
            failed.reason = if not_in_patched_file > 0 {
                format!(
                    "the row has no resources and none of the {not_in_patched_file} resources \
                     with a result is in {}: nothing to check",
                    row.patched_file
                        .as_deref()
                        .map(|f| f.display().to_string())
                        .unwrap_or_default()
                )
            } else {
                format!(
                    "the row has no resources and no resource{} has a result of policy {:?}{}: \
                     nothing to check",
                    if row.kind.is_empty() {
                        String::new()
                    } else {
                        format!(" of kind {}", row.kind)
                    },
                    row.policy,
                    if row.rule.is_empty() {
                        String::new()
                    } else {
                        format!(", rule {:?}", row.rule)
                    },
                )
            };
            results.push(failed);
        }
        results
    }

    /// Checks one row against one resource.
    fn check(&self, row: &RowSpec, kind: &str, resource: &str) -> RowResult {
        let policy = match self.resolve(row, kind, resource) {
            Ok(policy) => policy,
            Err(failed) => return *failed,
        };
        let mut result = row.new_result(kind, resource);
        let candidates: Vec<&Evaluated> = self
            .evaluated
            .iter()
            .filter(|e| {
                e.operation == row.operation
                    && e.policy_key == policy.key()
                    && e.resource_kind == kind
                    && (e.resource_name == resource || e.resource_id() == resource)
                    && (row.namespace.is_empty() || e.resource_namespace == row.namespace)
            })
            .collect();
        if candidates.is_empty() {
            result.reason = format!("resource {kind}/{resource} not found");
            return result;
        }
        let found: Vec<&(String, RuleStatus, String)> = candidates
            .iter()
            .flat_map(|e| e.rules.iter())
            .filter(|(name, _, _)| self.answers(row, name))
            .collect();
        if found.is_empty() {
            // The rule exists but did not select the resource: Kyverno reports nothing, which
            // only a `skip` expectation describes.
            result.actual = Some("skip".to_owned());
            result.passed = row.expected == "skip";
            result.reason = if result.passed {
                "Excluded".to_owned()
            } else {
                format!(
                    "want {}, got no result: the rule did not match the resource",
                    row.expected
                )
            };
            return result;
        }
        if let Some(file) = &row.patched_file {
            // A mutate-existing rule's result is the patched target, not the trigger.
            let patched: Vec<&&Evaluated> = if candidates.iter().any(|c| c.is_target) {
                candidates.iter().filter(|c| c.is_target).collect()
            } else {
                candidates.iter().collect()
            };
            let mismatch = patched
                .iter()
                .find_map(|c| compare_patched(&c.patched, file, self.scopes).err());
            result.actual = found.first().map(|(_, s, _)| s.as_str().to_owned());
            // For a mutation, `fail` expects the patched resource NOT to look like the file,
            // as in Kyverno's CLI.
            if row.expected == "fail" {
                expect_difference(&mut result, mismatch.is_some(), "patched", file);
                return result;
            }
            if let Some(reason) = mismatch {
                result.reason = reason;
                return result;
            }
        }
        if let Some(file) = &row.generated_file {
            let generated: Vec<&Value> = candidates
                .iter()
                .flat_map(|c| c.generated.iter())
                .filter(|(rule, _)| self.answers(row, rule))
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
            result.actual = found.first().map(|(_, s, _)| s.as_str().to_owned());
            result.message = found.first().map(|(_, _, m)| m.clone()).unwrap_or_default();
            // As for mutations, `fail` expects the generated object NOT to look like the file.
            if row.expected == "fail" {
                expect_difference(&mut result, mismatch.is_some(), "generated", file);
                return result;
            }
            if let Some(reason) = mismatch {
                let status = result.actual.as_deref().unwrap_or("no result");
                result.reason = if status == row.expected {
                    reason
                } else {
                    format!(
                        "want {}, got {status}: {}",
                        row.expected,
                        if result.message.is_empty() {
                            reason
                        } else {
                            result.message.clone()
                        }
                    )
                };
                return result;
            }
        }
        // Every matching response must agree with the expectation.
        for (_, status, message) in &found {
            result.actual = Some(status.as_str().to_owned());
            result.message = message.clone();
            if status.as_str() != row.expected {
                result.passed = false;
                result.reason = format!("want {}, got {}", row.expected, status.as_str());
                return result;
            }
        }
        result.passed = true;
        result.reason = "Ok".to_owned();
        result
    }
}

/// Compares a mutated resource with the expected one in `file` (the document with the same
/// apiVersion, kind, namespace and name), ignoring nulls and empty maps and lists as Kyverno's
/// CLI does. The error lists the JSON paths that differ.
fn compare_patched(actual: &Value, file: &Path, scopes: &load::Scopes) -> Result<(), String> {
    let expected = expected_patched(actual, file, scopes)?.ok_or_else(|| {
        let kind = actual.get("kind").and_then(Value::as_str).unwrap_or("");
        format!(
            "{}: no {kind} named {:?} to compare the patched resource with",
            file.display(),
            metadata_str(actual, "name")
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

/// The document of `file` with the same apiVersion, kind, namespace and name as `actual`
/// (namespaced documents without a namespace are in `default`), if there is one.
fn expected_patched(
    actual: &Value,
    file: &Path,
    scopes: &load::Scopes,
) -> Result<Option<Value>, String> {
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
    Ok(docs
        .into_iter()
        .map(|mut d| {
            load::default_namespace(&mut d.value, scopes);
            d.value
        })
        .find(|d| id(d) == want_id))
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
