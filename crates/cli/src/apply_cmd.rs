//! `bylaw apply`: evaluate policies against resources from files and report each result.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bylaw_engine::engine::{effective_action, report_status};
use bylaw_engine::request::metadata_str;
use bylaw_engine::response::{FailureAction, MessageFormat, RuleStatus};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use crate::cluster::ClusterData;
use crate::load::{self, read_documents, Values};
use crate::run::{run_resource, Phase, Setting};
use crate::{output, ApplyFormat, MessageFormatArg};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Policy files or directories.
    #[arg(required = true)]
    policies: Vec<PathBuf>,
    /// Resource files or directories to evaluate.
    #[arg(short = 'r', long = "resource", required_unless_present = "cluster", num_args = 1..)]
    resources: Vec<PathBuf>,
    /// Evaluate the resources of a live cluster (the kinds the policies select), read-only:
    /// nothing is installed or changed.
    #[arg(long = "cluster")]
    cluster: bool,
    /// Kubeconfig for `--cluster` (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long = "kubeconfig", requires = "cluster")]
    kubeconfig: Option<PathBuf>,
    /// With `--cluster`, only this namespace's resources (cluster-scoped ones are still read).
    #[arg(short = 'n', long = "namespace", requires = "cluster")]
    namespace: Option<String>,
    /// A values file (cli.kyverno.io Values) with variables for rules and resources.
    #[arg(short = 'f', long = "values-file")]
    values_file: Option<PathBuf>,
    /// Set a variable, `key=value` (repeatable).
    #[arg(short = 's', long = "set")]
    set: Vec<String>,
    /// A user info file (roles, clusterRoles, userInfo).
    #[arg(short = 'u', long = "userinfo")]
    userinfo: Option<PathBuf>,
    /// PolicyException files or directories.
    #[arg(short = 'e', long = "exceptions")]
    exceptions: Vec<PathBuf>,
    /// Print the results as a ClusterPolicyReport.
    #[arg(short = 'p', long = "policy-report")]
    policy_report: bool,
    /// Output format for the results.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ApplyFormat::Table)]
    output: ApplyFormat,
    /// Report failures of Audit rules as warnings.
    #[arg(long = "audit-warn")]
    audit_warn: bool,
    /// Print every rule result, not only failures.
    #[arg(long = "detailed-results")]
    detailed_results: bool,
    /// Also write mutated resources (`<name>-mutated.yaml`) and generated resources
    /// (`<policy>-generated.yaml`) into this directory.
    #[arg(long = "output-dir")]
    output_dir: Option<PathBuf>,
    /// Rule messages as bylaw writes them (with what was found and wanted) or exactly as
    /// Kyverno does.
    #[arg(long = "message-format", value_enum, default_value_t = MessageFormatArg::Bylaw)]
    message_format: MessageFormatArg,
    /// A custom kind whose objects live outside namespaces (`Kind` or `group/Kind`;
    /// repeatable). CustomResourceDefinitions among the inputs are read too.
    #[arg(long = "cluster-scoped")]
    cluster_scoped: Vec<String>,
}

/// One rule result of one policy on one resource.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyResult {
    pub policy: String,
    pub rule: String,
    pub resource: String,
    pub status: RuleStatus,
    pub action: &'static str,
    pub message: String,
}

impl ApplyResult {
    fn new(
        policy: &bylaw_engine::compile::CompiledPolicy,
        rule: &bylaw_engine::response::RuleResponse,
        resource: &str,
        (status, action): (RuleStatus, &'static str),
        format: MessageFormat,
    ) -> Self {
        ApplyResult {
            policy: policy.key(),
            rule: rule.name.to_string(),
            resource: resource.to_owned(),
            status,
            action,
            message: rule.message_in(format).into_owned(),
        }
    }
}

pub fn run(args: ApplyArgs) -> Result<ExitCode> {
    let ApplyArgs {
        policies,
        resources,
        cluster,
        kubeconfig,
        namespace,
        values_file,
        set,
        userinfo,
        exceptions,
        policy_report,
        output: format,
        audit_warn,
        detailed_results,
        output_dir,
        message_format,
        cluster_scoped,
    } = args;
    let message_format: MessageFormat = message_format.into();
    let mut docs = Vec::new();
    for p in policies.iter().chain(exceptions.iter()) {
        docs.extend(read_documents(p)?);
    }
    let bundle = load::compile_documents(&docs)?;
    for (kind, name, file) in &bundle.unsupported {
        // Policy directories often hold their tests and sample resources too.
        let why = if kind.ends_with("Policy") || kind.ends_with("PolicyBinding") {
            "this policy kind is not supported by bylaw yet"
        } else {
            "not a policy"
        };
        output::warn(&format!(
            "{}: skipping {kind} {name:?}: {why}",
            file.display()
        ));
    }
    if bundle.policies.is_empty() {
        anyhow::bail!("no ClusterPolicy or Policy found in the given policy paths");
    }
    let mut values = match &values_file {
        Some(path) => load::read_values(path)?,
        None => Values::default(),
    };
    for assignment in &set {
        values.set(assignment)?;
    }
    let user = match &userinfo {
        Some(path) => load::read_user_info(path)?,
        None => Default::default(),
    };
    let mut objects = Vec::new();
    for r in &resources {
        objects.extend(
            read_documents(r).with_context(|| format!("reading resources from {}", r.display()))?,
        );
    }

    if cluster {
        objects.extend(crate::cluster_resources::read(
            &bundle,
            kubeconfig,
            namespace.as_deref(),
        )?);
    }

    let mut scopes = load::Scopes::with_flags(&cluster_scoped);
    scopes.learn(docs.iter().chain(&objects).map(|d| &d.value));
    for doc in &mut objects {
        load::default_namespace(&mut doc.value, &scopes);
    }
    // Every input resource exists as far as generate rules are concerned, so clone sources
    // can be given with `-r`.
    let existing: Vec<Value> = objects.into_iter().map(|d| d.value).collect();
    // Offline: configMap and apiCall context entries are left unloaded, as in Kyverno's CLI
    // without a cluster.
    let offline = ClusterData::default();
    // A table without `--detailed-results` shows only the results that did not pass and
    // counts the rest: those are counted, not kept, so memory follows the failures.
    let table_only = !policy_report && format == ApplyFormat::Table;
    let mut results = Results {
        kept: Vec::new(),
        counts: StatusCounts::default(),
        keep_all: !table_only || detailed_results,
    };
    let mut outputs = Outputs::default();
    let mut blocked = false;
    for object in &existing {
        if !object.is_object() {
            continue;
        }
        let name = metadata_str(object, "name");
        let namespace = metadata_str(object, "namespace");
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let resource_id = if namespace.is_empty() {
            format!("{kind}/{name}")
        } else {
            format!("{kind}/{namespace}/{name}")
        };
        let mut mutated_by = Vec::new();
        let mut current = object.clone();
        let setting = Setting {
            values: &values,
            user: &user,
            cluster: &offline,
            existing: &existing,
        };
        for run in run_resource(&bundle, &setting, object, None) {
            let policy = run.policy;
            for rule in &run.response.rules {
                let mut status = report_status(policy, rule);
                let mut action = NO_ACTION;
                if run.phase == Phase::Validate {
                    let effective = effective_action(
                        policy,
                        &rule.name,
                        namespace,
                        run.namespace_labels.as_ref(),
                    );
                    action = effective.as_str();
                    if status == RuleStatus::Fail {
                        if effective == FailureAction::Enforce {
                            blocked = true;
                        } else if audit_warn {
                            status = RuleStatus::Warn;
                        }
                    }
                }
                results.push(ApplyResult::new(
                    policy,
                    rule,
                    &resource_id,
                    (status, action),
                    message_format,
                ));
            }
            match run.phase {
                Phase::Mutate => {
                    if *run.resource != current {
                        mutated_by.push(policy.key());
                        current = std::rc::Rc::unwrap_or_clone(run.resource);
                    }
                }
                Phase::Generate => {
                    for (rule, object) in run.generated {
                        outputs.generated.push(Generated {
                            policy: policy.key(),
                            rule,
                            trigger: resource_id.clone(),
                            object,
                        });
                    }
                }
                Phase::Validate | Phase::Unevaluated | Phase::MutateExisting => {}
            }
        }
        if !mutated_by.is_empty() {
            outputs
                .mutated
                .push((resource_id.clone(), mutated_by, current));
        }
    }

    if let Some(dir) = &output_dir {
        outputs.write(dir)?;
    }
    if policy_report {
        let report = cluster_policy_report(&results.kept);
        match format {
            ApplyFormat::Json => output::json(&report)?,
            _ => output::text(&bylaw_api::yaml::to_yaml_string(&report)),
        }
    } else {
        match format {
            ApplyFormat::Json => output::json(&results.kept)?,
            ApplyFormat::Yaml => output::text(&bylaw_api::yaml::to_yaml_string(
                &serde_json::to_value(&results.kept)?,
            )),
            ApplyFormat::Table => {
                outputs.print();
                print_results(&results.kept, &results.counts, detailed_results)
            }
        }
    }
    // As in Kyverno's CLI, a rule that could not be evaluated (unsupported feature, bad
    // variable, …) makes the run fail like a blocking violation.
    let errors = results.counts.error > 0;
    Ok(if blocked || errors {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The ACTION column of mutate and generate results: failure actions belong to validation.
const NO_ACTION: &str = "-";

/// One object a generate rule produced.
struct Generated {
    policy: String,
    rule: String,
    /// The trigger, as `Kind/namespace/name`.
    trigger: String,
    object: Value,
}

/// The resources `bylaw apply` shows besides the results.
#[derive(Default)]
struct Outputs {
    /// (resource, policies that changed it, the resource after every mutation)
    mutated: Vec<(String, Vec<String>, Value)>,
    generated: Vec<Generated>,
}

impl Outputs {
    fn print(&self) {
        for (resource, policies, object) in &self.mutated {
            output::line(&format!("Mutated {resource} (by {}):", policies.join(", ")));
            output::text(&format!("---\n{}", bylaw_api::yaml::to_yaml_string(object)));
            output::line("");
        }
        for generated in &self.generated {
            let id = bylaw_engine::generate::ResourceRef::of(&generated.object);
            output::line(&format!(
                "Generated {id} (policy {}, rule {}, for {}):",
                generated.policy, generated.rule, generated.trigger
            ));
            output::text(&format!(
                "---\n{}",
                bylaw_api::yaml::to_yaml_string(&generated.object)
            ));
            output::line("");
        }
    }

    /// `<name>-mutated.yaml` per mutated resource, `<policy>-generated.yaml` per policy.
    fn write(&self, dir: &std::path::Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let write = |file: String, text: &str| -> Result<()> {
            let path = dir.join(file.replace('/', "_"));
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
        };
        for (_, _, object) in &self.mutated {
            let name = metadata_str(object, "name");
            write(
                format!("{name}-mutated.yaml"),
                &bylaw_api::yaml::to_yaml_string(object),
            )?;
        }
        let mut by_policy: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for generated in &self.generated {
            by_policy
                .entry(generated.policy.as_str())
                .or_default()
                .push(bylaw_api::yaml::to_yaml_string(&generated.object));
        }
        for (policy, documents) in by_policy {
            write(format!("{policy}-generated.yaml"), &documents.join("---\n"))?;
        }
        Ok(())
    }
}

/// Rule results of a run: every one, or (for the plain table) only those it prints.
struct Results {
    kept: Vec<ApplyResult>,
    counts: StatusCounts,
    keep_all: bool,
}

impl Results {
    fn push(&mut self, result: ApplyResult) {
        self.counts.add(result.status);
        if self.keep_all || !matches!(result.status, RuleStatus::Pass | RuleStatus::Skip) {
            self.kept.push(result);
        }
    }
}

/// Results per status, for the summary line.
#[derive(Default)]
struct StatusCounts {
    pass: usize,
    fail: usize,
    warn: usize,
    error: usize,
    skip: usize,
}

impl StatusCounts {
    fn add(&mut self, status: RuleStatus) {
        let count = match status {
            RuleStatus::Pass => &mut self.pass,
            RuleStatus::Fail => &mut self.fail,
            RuleStatus::Warn => &mut self.warn,
            RuleStatus::Error => &mut self.error,
            RuleStatus::Skip => &mut self.skip,
        };
        *count += 1;
    }
}

fn print_results(results: &[ApplyResult], counts: &StatusCounts, detailed: bool) {
    let mut table = vec![vec![
        "POLICY".to_owned(),
        "RULE".to_owned(),
        "RESOURCE".to_owned(),
        "RESULT".to_owned(),
        "ACTION".to_owned(),
        "MESSAGE".to_owned(),
    ]];
    for r in results {
        if !detailed && matches!(r.status, RuleStatus::Pass | RuleStatus::Skip) {
            continue;
        }
        table.push(vec![
            r.policy.clone(),
            r.rule.clone(),
            r.resource.clone(),
            r.status.as_str().to_owned(),
            r.action.to_owned(),
            r.message.clone(),
        ]);
    }
    if table.len() > 1 {
        output::print_table(&table, "");
        output::line("");
    }
    output::line(&format!(
        "pass: {}, fail: {}, warn: {}, error: {}, skip: {}",
        counts.pass, counts.fail, counts.warn, counts.error, counts.skip
    ));
}

/// A `wgpolicyk8s.io/v1alpha2` ClusterPolicyReport of the results, sorted for stable output.
fn cluster_policy_report(results: &[ApplyResult]) -> Value {
    let mut sorted: Vec<&ApplyResult> = results.iter().collect();
    sorted
        .sort_by(|a, b| (&a.policy, &a.rule, &a.resource).cmp(&(&b.policy, &b.rule, &b.resource)));
    let count = |s: RuleStatus| results.iter().filter(|r| r.status == s).count();
    let entries: Vec<Value> = sorted
        .iter()
        .map(|r| {
            let mut parts = r.resource.splitn(3, '/');
            let kind = parts.next().unwrap_or("");
            let (namespace, name) = match (parts.next(), parts.next()) {
                (Some(ns), Some(name)) => (ns, name),
                (Some(name), None) => ("", name),
                _ => ("", ""),
            };
            let mut resource = json!({"kind": kind, "name": name});
            if !namespace.is_empty() {
                resource["namespace"] = json!(namespace);
            }
            json!({
                "source": "bylaw",
                "policy": r.policy,
                "rule": r.rule,
                "result": r.status.as_str(),
                "scored": true,
                "message": r.message,
                "resources": [resource],
            })
        })
        .collect();
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "ClusterPolicyReport",
        "metadata": {"name": "merged"},
        "summary": {
            "pass": count(RuleStatus::Pass),
            "fail": count(RuleStatus::Fail),
            "warn": count(RuleStatus::Warn),
            "error": count(RuleStatus::Error),
            "skip": count(RuleStatus::Skip),
        },
        "results": entries,
    })
}
