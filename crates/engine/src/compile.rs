//! Compile once: a ClusterPolicy/Policy document becomes a [`CompiledPolicy`] with its autogen
//! rules added, match blocks parsed, static patterns pre-parsed and everything checked, so that
//! evaluation does no parsing and an invalid policy is rejected with a field path.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::conditions::Operator;
use crate::jmespath;
use crate::matching::{string_list, LabelSelector, MatchBlock};
use crate::pattern::Pattern;
use crate::podsecurity;
use crate::response::FailureAction;
use crate::variables;

/// An invalid policy: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct CompileError {
    pub path: String,
    pub reason: String,
}

impl CompileError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        CompileError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// `parent.field`, or `field` at the top.
pub fn field_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// Whether the policy is cluster-wide or confined to its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    ClusterPolicy,
    Policy,
    /// `policies.kyverno.io` ValidatingPolicy (CEL).
    ValidatingPolicy,
    /// `policies.kyverno.io` NamespacedValidatingPolicy (CEL, confined to its namespace).
    NamespacedValidatingPolicy,
    /// `admissionregistration.k8s.io` ValidatingAdmissionPolicy (CEL).
    ValidatingAdmissionPolicy,
}

impl PolicyKind {
    /// The kind as written in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::ClusterPolicy => "ClusterPolicy",
            PolicyKind::Policy => "Policy",
            PolicyKind::ValidatingPolicy => "ValidatingPolicy",
            PolicyKind::NamespacedValidatingPolicy => "NamespacedValidatingPolicy",
            PolicyKind::ValidatingAdmissionPolicy => "ValidatingAdmissionPolicy",
        }
    }

    /// Kinds whose results are not reported per named rule (a whole CEL policy is one check).
    pub fn is_ruleless(self) -> bool {
        matches!(
            self,
            PolicyKind::ValidatingPolicy
                | PolicyKind::NamespacedValidatingPolicy
                | PolicyKind::ValidatingAdmissionPolicy
        )
    }
}

/// What the API server should do when bylaw cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailurePolicy {
    Fail,
    Ignore,
}

/// `validationFailureActionOverrides` / `failureActionOverrides` entry.
#[derive(Debug, Clone)]
pub struct ActionOverride {
    pub action: FailureAction,
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<LabelSelector>,
}

/// A policy ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub kind: PolicyKind,
    pub name: std::sync::Arc<str>,
    /// Set for a namespaced Policy: it only ever applies in this namespace.
    pub namespace: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub validation_failure_action: FailureAction,
    pub action_overrides: Vec<ActionOverride>,
    pub background: bool,
    pub admission: bool,
    pub failure_policy: FailurePolicy,
    pub emit_warning: bool,
    pub webhook_timeout_seconds: Option<u32>,
    /// `policies.kyverno.io/scored: "false"` turns failures into warnings.
    pub scored: bool,
    /// The policy's own rules followed by generated autogen rules.
    pub rules: Vec<CompiledRule>,
    /// The document it was compiled from.
    pub source: Arc<Value>,
    /// Whether any rule refers to the `images` context variable (so it must be computed).
    pub uses_images: bool,
    /// Whether any rule refers to `element<N>` / `elementIndex<N>` (nested foreach levels), so
    /// foreach must set them besides `element` / `elementIndex`.
    pub uses_nested_elements: bool,
    /// Whether any rule could read `metadata.managedFields` of the request's objects (see
    /// [`crate::managed_fields`]); when none can, they need not be decoded.
    pub reads_managed_fields: bool,
    /// The same for its validate rules alone: admission's validate phase runs only those.
    pub validation_reads_managed_fields: bool,
    /// Whether any rule selects by namespace labels for some kind (see
    /// [`CompiledRule::depends_on_namespace_labels`]); most policies answer no once, here.
    pub selects_by_namespace_labels: bool,
    /// Which rules each kind can reach, which validate, whether one says Enforce (see
    /// [`CompiledPolicy::rules_for_kind`]).
    pub rule_index: RuleIndex,
}

/// What every request asks of a policy's rules, answered once when the policy is compiled:
/// which rules name which kinds (a policy's rules are mostly autogen copies for other kinds,
/// and finding that out rule by rule read each rule's match data, several cache lines of it,
/// on every request), which rules validate, and whether one of them says Enforce. Built for
/// up to 64 rules. Rules are only ever built by compiling; the index records how many it
/// describes and is ignored when the count changes.
#[derive(Debug, Clone, Default)]
pub struct RuleIndex {
    /// Each named kind, with the rules (one bit each) that name it.
    kinds: Vec<(Box<str>, u64)>,
    /// Rules without a list of plain kinds (wildcards, `*`, no kinds): always candidates.
    unfiltered: u64,
    /// Rules that name plain kinds and nothing else, with no exclude block: for a request of
    /// one of their kinds, whether it is the main resource decides alone
    /// ([`crate::matching::selects_main_resource`]).
    kinds_alone: u64,
    /// Validate rules (one bit each).
    validate: u64,
    /// A validate rule of its own says Enforce (its `failureAction` or an override).
    rule_enforces: bool,
    /// How many rules the index was built over; another count means it no longer describes
    /// the policy, which is then scanned rule by rule.
    rules: usize,
}

/// Most rules a [`RuleIndex`] covers (one bit each).
const INDEXED_RULES: usize = 64;

impl RuleIndex {
    /// The index of `rules`, in their order.
    pub fn of(rules: &[CompiledRule]) -> RuleIndex {
        if rules.len() > INDEXED_RULES {
            return RuleIndex {
                rules: usize::MAX,
                ..RuleIndex::default()
            };
        }
        let mut index = RuleIndex {
            rules: rules.len(),
            ..RuleIndex::default()
        };
        for (i, rule) in rules.iter().enumerate() {
            let bit = 1u64 << i;
            if let RuleBody::Validate(validate) = &rule.body {
                index.validate |= bit;
                index.rule_enforces |= validate_rule_enforces(validate);
            }
            if rule.match_kinds.is_some()
                && rule.match_by_kinds_alone
                && matches!(rule.exclude_block, crate::matching::MatchBlock::Empty)
            {
                index.kinds_alone |= bit;
            }
            match &rule.match_kinds {
                None => index.unfiltered |= bit,
                Some(kinds) => {
                    for kind in kinds {
                        match index.kinds.iter_mut().find(|(k, _)| **k == **kind) {
                            Some((_, rules)) => *rules |= bit,
                            None => index.kinds.push((kind.as_str().into(), bit)),
                        }
                    }
                }
            }
        }
        index
    }
}

/// Whether a validate rule of its own says Enforce: its `failureAction` or one of its
/// `failureActionOverrides`.
fn validate_rule_enforces(validate: &ValidateRule) -> bool {
    validate.failure_action == Some(FailureAction::Enforce)
        || validate
            .action_overrides
            .iter()
            .any(|o| o.action == FailureAction::Enforce)
}

impl CompiledPolicy {
    /// Whether anything in the policy says Enforce, which makes Kyverno count it as an
    /// enforcing policy: its `validationFailureAction`, an override, or a rule's own action.
    pub fn says_enforce(&self) -> bool {
        self.validation_failure_action == FailureAction::Enforce
            || self
                .action_overrides
                .iter()
                .any(|o| o.action == FailureAction::Enforce)
            || if self.rule_index.rules == self.rules.len() {
                self.rule_index.rule_enforces
            } else {
                self.rules.iter().any(|rule| match &rule.body {
                    RuleBody::Validate(validate) => validate_rule_enforces(validate),
                    _ => false,
                })
            }
    }

    /// The rules that a request of `kind` can reach, in order: those naming `kind` among
    /// their plain kinds and those that name no such list. The others cannot select it
    /// ([`CompiledRule::match_kinds`]). Every rule when the index does not describe the rules.
    pub fn rules_for_kind<'p>(&'p self, kind: &str) -> impl Iterator<Item = &'p CompiledRule> {
        self.rules_for_kind_marked(kind).map(|(rule, _)| rule)
    }

    /// [`CompiledPolicy::rules_for_kind`], each rule marked when its kind alone selects the
    /// request, past [`crate::matching::selects_main_resource`]: it names plain kinds and
    /// nothing else and excludes nothing (what [`crate::validate::rule_selects`] finds for it
    /// without reading its match data).
    pub(crate) fn rules_for_kind_marked<'p>(
        &'p self,
        kind: &str,
    ) -> impl Iterator<Item = (&'p CompiledRule, bool)> {
        let index = &self.rule_index;
        let (mask, kinds_alone) = if index.rules == self.rules.len() {
            let named = index
                .kinds
                .iter()
                .find(|(k, _)| crate::json::same_key(k, kind))
                .map_or(0, |(_, rules)| *rules);
            (named | index.unfiltered, named & index.kinds_alone)
        } else {
            (u64::MAX, 0)
        };
        self.rules
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i >= INDEXED_RULES || mask & (1u64 << i) != 0)
            .map(move |(i, rule)| (rule, i < INDEXED_RULES && kinds_alone & (1u64 << i) != 0))
    }

    /// `namespace/name` for a Policy, `name` for a ClusterPolicy.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.to_string(),
        }
    }

    pub fn has_validate(&self) -> bool {
        // Asked for every policy of every review: the index answers without reading the rules.
        if self.rule_index.rules == self.rules.len() {
            return self.rule_index.validate != 0;
        }
        self.rules
            .iter()
            .any(|r| matches!(r.body, RuleBody::Validate(_)))
    }

    pub fn has_mutate(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.body, RuleBody::Mutate(_)))
    }

    /// The rules bylaw cannot evaluate, each with the feature that stops it (`verifyImages`,
    /// `validate.cel`, …). A policy with any of them must not be served as if it were enforced:
    /// the server reports it as not Ready (`Unsupported`) and the CLI reports an error result.
    pub fn unsupported_rules(&self) -> Vec<UnsupportedRule> {
        self.rules
            .iter()
            .filter_map(|rule| {
                let feature = match &rule.body {
                    RuleBody::VerifyImages(_) => Some("verifyImages"),
                    RuleBody::Validate(validate) => validate.check.unsupported_feature(),
                    RuleBody::Mutate(_) | RuleBody::Generate(_) => None,
                }?;
                Some(UnsupportedRule {
                    rule: rule.name.to_string(),
                    feature,
                })
            })
            .collect()
    }
}

/// The message of an error result for a rule needing `feature`, which bylaw cannot evaluate.
pub fn unsupported_message(feature: &str) -> String {
    format!("unsupported in bylaw: {feature}; the rule cannot be evaluated")
}

/// A rule bylaw does not evaluate, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedRule {
    /// The rule's name (autogen rules included).
    pub rule: String,
    /// The feature bylaw lacks, as written in the policy (`verifyImages`, `validate.cel`).
    pub feature: &'static str,
}

/// One rule, compiled.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub name: std::sync::Arc<str>,
    /// Generated by autogen from a Pod rule.
    pub autogen: bool,
    pub match_block: MatchBlock,
    /// The only kinds `match_block` can select, when it names them all without wildcards:
    /// a request of another kind is passed over without looking at the block.
    pub match_kinds: Option<Vec<String>>,
    /// `match_block` names plain kinds and nothing else
    /// ([`MatchBlock::selects_by_kinds_alone`]): past `match_kinds` it selects the main
    /// resource, which is checked without walking the block.
    pub match_by_kinds_alone: bool,
    pub exclude_block: MatchBlock,
    pub context: Vec<Value>,
    pub preconditions: Option<ConditionBlock>,
    pub body: RuleBody,
    /// The rule as written (after autogen), for rule kinds evaluated elsewhere.
    pub source: Value,
}

impl CompiledRule {
    /// Whether the rule's match or exclude block (or a CEL rule's match constraints) selects
    /// by the labels of the request's namespace, for a request of this kind. Such a rule
    /// cannot be decided when those labels are unknown.
    pub fn depends_on_namespace_labels(&self, request: &crate::request::Request) -> bool {
        if request.kind.kind == "Namespace" {
            return false;
        }
        self.cel_selects_by_namespace_labels()
            || self.match_block.has_namespace_selector_for(request)
            || self.exclude_block.has_namespace_selector_for(request)
    }

    /// Whether a CEL rule's match constraints have a `namespaceSelector`.
    fn cel_selects_by_namespace_labels(&self) -> bool {
        match &self.body {
            RuleBody::Validate(v) => match &v.check {
                ValidateCheck::Cel(cel) => cel
                    .constraints
                    .as_ref()
                    .is_some_and(|c| c.namespace_selector.is_some()),
                _ => false,
            },
            _ => false,
        }
    }
}

/// Whether any of `rules` selects by namespace labels, for whichever kind.
pub(crate) fn rules_select_by_namespace_labels(rules: &[CompiledRule]) -> bool {
    rules.iter().any(|rule| {
        rule.cel_selects_by_namespace_labels()
            || rule.match_block.has_namespace_selector()
            || rule.exclude_block.has_namespace_selector()
    })
}

/// What a rule does.
#[derive(Debug, Clone)]
pub enum RuleBody {
    Validate(ValidateRule),
    Mutate(Value),
    Generate(Value),
    VerifyImages(Value),
}

/// A `validate` rule.
#[derive(Debug, Clone)]
pub struct ValidateRule {
    pub message: Option<String>,
    pub failure_action: Option<FailureAction>,
    pub action_overrides: Vec<ActionOverride>,
    pub allow_existing_violations: bool,
    pub check: ValidateCheck,
}

/// The check inside a validate rule or a foreach entry.
#[derive(Debug, Clone)]
pub enum ValidateCheck {
    Pattern(PatternSource),
    AnyPattern(Vec<PatternSource>),
    Deny(ConditionBlock),
    Foreach(Vec<ForeachValidate>),
    PodSecurity(PodSecurityRule),
    /// CEL validations (`validate.cel`, or a whole CEL policy), see [`crate::cel`].
    Cel(Arc<crate::cel::rule::CelRule>),
    /// A check bylaw cannot evaluate yet (`cel`, `manifests`, `assert`): evaluates to an error
    /// naming the feature, never a silent pass.
    Unsupported(&'static str),
}

impl ValidateCheck {
    /// The unsupported feature this check (or a foreach entry nested in it) needs, if any.
    pub fn unsupported_feature(&self) -> Option<&'static str> {
        match self {
            ValidateCheck::Unsupported(feature) => Some(feature),
            ValidateCheck::Foreach(entries) => entries
                .iter()
                .find_map(|entry| entry.check.unsupported_feature()),
            ValidateCheck::Pattern(_)
            | ValidateCheck::AnyPattern(_)
            | ValidateCheck::Deny(_)
            | ValidateCheck::PodSecurity(_)
            | ValidateCheck::Cel(_) => None,
        }
    }
}

/// A pattern known at load time is parsed once; one with variables is parsed after
/// substitution.
#[derive(Debug, Clone)]
pub enum PatternSource {
    Static(Arc<Pattern>),
    Dynamic(Value),
}

impl PatternSource {
    fn compile(value: &Value, path: &str) -> Result<PatternSource, CompileError> {
        if variables::has_variables(value) {
            return Ok(PatternSource::Dynamic(value.clone()));
        }
        Pattern::compile(value)
            .map(|p| PatternSource::Static(Arc::new(p)))
            .map_err(|e| CompileError::new(path, e.to_string()))
    }
}

/// One entry of `validate.foreach`.
#[derive(Debug, Clone)]
pub struct ForeachValidate {
    pub list: String,
    /// `list` compiled once, when it holds no variable and parses; otherwise it is
    /// substituted and compiled at evaluation, which also reports its errors.
    pub list_expression: Option<jmespath::Expression>,
    pub element_scope: Option<bool>,
    pub context: Vec<Value>,
    pub preconditions: Option<ConditionBlock>,
    pub check: ValidateCheck,
}

/// `validate.podSecurity`.
#[derive(Debug, Clone)]
pub struct PodSecurityRule {
    pub level: podsecurity::Level,
    pub version: podsecurity::Version,
    pub exclusions: Vec<podsecurity::Exclusion>,
}

/// A condition as written: key and value are substituted at evaluation time. Only
/// `compile_condition` builds one, and nothing changes it afterwards, so the flags derived from
/// `key` and `value` stay true to them (the fields are the crate's own for that reason).
#[derive(Debug, Clone)]
pub struct RawCondition {
    pub(crate) key: Value,
    pub(crate) operator: Operator,
    pub(crate) value: Value,
    pub(crate) message: Option<String>,
    /// Whether substitution can change `key` and `value` (a string or key of them holds
    /// `{{`); what it cannot change is used as written, without a copy.
    pub(crate) key_substitutes: bool,
    pub(crate) value_substitutes: bool,
    /// `key` and `value` when each is a string that is exactly one variable (the usual
    /// `"{{ request.operation }}"`), compiled for evaluation without substitution's scan.
    pub(crate) key_variable: Option<variables::WholeVariable>,
    pub(crate) value_variable: Option<variables::WholeVariable>,
}

/// `any`/`all` conditions (the legacy plain list is `all`).
#[derive(Debug, Clone, Default)]
pub struct ConditionBlock {
    pub any: Vec<RawCondition>,
    pub all: Vec<RawCondition>,
    /// `any` was written (even empty): Kyverno treats an absent `any` as satisfied.
    pub has_any: bool,
    /// Every operand and message is a literal or one variable that reads only `request`
    /// ([`RawCondition::reads_only_request`]): against one request, the block has one answer.
    pub(crate) reads_only_request: bool,
}

impl ConditionBlock {
    /// `any` and `all` as compiled, with [`ConditionBlock::reads_only_request`] worked out.
    fn new(any: Vec<RawCondition>, all: Vec<RawCondition>, has_any: bool) -> ConditionBlock {
        let reads_only_request = any.iter().chain(&all).all(RawCondition::reads_only_request);
        ConditionBlock {
            any,
            all,
            has_any,
            reads_only_request,
        }
    }

    /// Whether both blocks say the same: the same conditions, written the same way.
    pub(crate) fn same_conditions(&self, other: &ConditionBlock) -> bool {
        let same = |a: &[RawCondition], b: &[RawCondition]| {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.same_condition(b))
        };
        self.has_any == other.has_any && same(&self.any, &other.any) && same(&self.all, &other.all)
    }
}

impl RawCondition {
    /// Whether the condition reads nothing but `request`: each operand is a literal or one
    /// variable whose expression only follows paths from `request`, and the message has no
    /// variables. Text around a variable, functions and every other name say no.
    fn reads_only_request(&self) -> bool {
        let operand = |substitutes: bool, variable: &Option<variables::WholeVariable>| {
            !substitutes
                || variable
                    .as_ref()
                    .is_some_and(variables::WholeVariable::reads_only_request)
        };
        operand(self.key_substitutes, &self.key_variable)
            && operand(self.value_substitutes, &self.value_variable)
            && !self
                .message
                .as_deref()
                .is_some_and(crate::variables::has_open_braces)
    }

    fn same_condition(&self, other: &RawCondition) -> bool {
        self.operator == other.operator
            && self.key == other.key
            && self.value == other.value
            && self.message == other.message
    }
}

/// Whether a document mentions the `images` context variable anywhere (in `{{ }}`, a foreach
/// list or a JMESPath). Erring towards true only costs the image parsing it saves. A key is
/// only read for variables when it holds `{{`: a field named `images` (a podSecurity
/// exclusion's image list) is data, not a reference.
pub fn refers_to_images(doc: &Value) -> bool {
    match doc {
        Value::String(s) => s.contains("images"),
        Value::Array(items) => items.iter().any(refers_to_images),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| (k.contains("images") && k.contains("{{")) || refers_to_images(v)),
        _ => false,
    }
}

/// Whether a document mentions `element<digit>` or `elementIndex<digit>` anywhere.
pub fn refers_to_nested_elements(doc: &Value) -> bool {
    // Mutation asks this of every foreach entry per request, so it scans bytes rather than
    // setting up a substring search per string and word.
    fn mentions(text: &str) -> bool {
        let bytes = text.as_bytes();
        let digit_at = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_digit);
        (0..bytes.len()).any(|at| {
            bytes
                .get(at..)
                .is_some_and(|rest| rest.starts_with(b"element"))
                && (digit_at(at + "element".len())
                    || (bytes
                        .get(at + "element".len()..)
                        .is_some_and(|rest| rest.starts_with(b"Index"))
                        && digit_at(at + "elementIndex".len())))
        })
    }
    match doc {
        Value::String(s) => mentions(s),
        Value::Array(items) => items.iter().any(refers_to_nested_elements),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| mentions(k) || refers_to_nested_elements(v)),
        _ => false,
    }
}

/// `podSecurity.exclude` of a rule, or `podSecurity` of a PolicyException.
pub fn pod_security_exclusions(value: Option<&Value>) -> Vec<podsecurity::Exclusion> {
    let text = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(str::to_owned);
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|e| podsecurity::Exclusion {
                    control_name: text(e, "controlName").unwrap_or_default(),
                    images: string_list(e.get("images")),
                    restricted_field: text(e, "restrictedField"),
                    values: string_list(e.get("values")),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Compiles a ClusterPolicy or Policy document.
pub fn compile_policy(doc: &Value) -> Result<CompiledPolicy, CompileError> {
    let kind = match doc.get("kind").and_then(Value::as_str) {
        Some("ClusterPolicy") => PolicyKind::ClusterPolicy,
        Some("Policy") => PolicyKind::Policy,
        Some(other) => {
            return Err(CompileError::new(
                "kind",
                format!("expected ClusterPolicy or Policy, got {other:?}"),
            ))
        }
        None => return Err(CompileError::new("kind", "missing")),
    };
    let metadata = doc.get("metadata").cloned().unwrap_or(Value::Null);
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CompileError::new("metadata.name", "a policy needs a name"))?
        .to_owned();
    let namespace = match kind {
        PolicyKind::ClusterPolicy
        | PolicyKind::ValidatingPolicy
        | PolicyKind::NamespacedValidatingPolicy
        | PolicyKind::ValidatingAdmissionPolicy => None,
        PolicyKind::Policy => Some(
            metadata
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_owned(),
        ),
    };
    let annotations: BTreeMap<String, String> = metadata
        .get("annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let spec = doc
        .get("spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| CompileError::new("spec", "a policy needs a spec object"))?;

    let validation_failure_action = match spec.get("validationFailureAction") {
        None | Some(Value::Null) => FailureAction::Audit,
        Some(v) => parse_action(v, "spec.validationFailureAction")?,
    };
    let action_overrides = compile_overrides(
        spec.get("validationFailureActionOverrides"),
        "spec.validationFailureActionOverrides",
    )?;
    let failure_policy = match spec.get("failurePolicy").and_then(Value::as_str) {
        None | Some("Fail") => FailurePolicy::Fail,
        Some("Ignore") => FailurePolicy::Ignore,
        Some(other) => {
            return Err(CompileError::new(
                "spec.failurePolicy",
                format!("must be Fail or Ignore, got {other:?}"),
            ))
        }
    };
    let bool_field = |field: &str, default: bool| -> Result<bool, CompileError> {
        match spec.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(CompileError::new(
                format!("spec.{field}"),
                format!("must be a boolean, got {other}"),
            )),
        }
    };
    let background = bool_field("background", true)?;
    let admission = bool_field("admission", true)?;
    let emit_warning = bool_field("emitWarning", false)?;
    let webhook_timeout_seconds = spec
        .get("webhookTimeoutSeconds")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok());
    let scored = annotations
        .get("policies.kyverno.io/scored")
        .is_none_or(|v| v != "false");

    let written = spec
        .get("rules")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    if written == 0 {
        return Err(CompileError::new(
            "spec.rules",
            "a policy needs at least one rule",
        ));
    }
    let all_rules = crate::autogen::compute_rules(doc);
    let mut rules = Vec::with_capacity(all_rules.len());
    let mut seen = std::collections::BTreeSet::new();
    for (index, rule) in all_rules.iter().enumerate() {
        let path = if index < written {
            format!("spec.rules[{index}]")
        } else {
            format!("status.autogen.rules[{}]", index - written)
        };
        let compiled = compile_rule(rule, &path, index >= written)?;
        if !seen.insert(compiled.name.clone()) {
            return Err(CompileError::new(
                format!("{path}.name"),
                format!("duplicate rule name {:?}", compiled.name),
            ));
        }
        rules.push(compiled);
    }

    let reads_managed_fields = rules
        .iter()
        .any(crate::managed_fields::rule_reads_managed_fields);
    let validation_reads_managed_fields = rules
        .iter()
        .filter(|rule| matches!(rule.body, RuleBody::Validate(_)))
        .any(crate::managed_fields::rule_reads_managed_fields);
    let selects_by_namespace_labels = rules_select_by_namespace_labels(&rules);
    let rule_index = RuleIndex::of(&rules);
    Ok(CompiledPolicy {
        kind,
        name: name.into(),
        namespace,
        annotations,
        validation_failure_action,
        action_overrides,
        background,
        admission,
        failure_policy,
        emit_warning,
        webhook_timeout_seconds,
        scored,
        rules,
        // Only the spec is evaluated; metadata (descriptions) often says "images" in prose.
        uses_images: refers_to_images(doc.get("spec").unwrap_or(doc)),
        uses_nested_elements: refers_to_nested_elements(doc),
        reads_managed_fields,
        validation_reads_managed_fields,
        selects_by_namespace_labels,
        rule_index,
        source: Arc::new(doc.clone()),
    })
}

fn parse_action(value: &Value, path: &str) -> Result<FailureAction, CompileError> {
    value
        .as_str()
        .and_then(FailureAction::parse)
        .ok_or_else(|| CompileError::new(path, format!("must be Enforce or Audit, got {value}")))
}

fn compile_overrides(
    value: Option<&Value>,
    path: &str,
) -> Result<Vec<ActionOverride>, CompileError> {
    let Some(items) = value.and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{path}[{i}]");
            let action = parse_action(
                item.get("action").unwrap_or(&Value::Null),
                &format!("{at}.action"),
            )?;
            let namespace_selector = match item.get("namespaceSelector") {
                Some(sel) if !sel.is_null() => Some(LabelSelector::compile(
                    sel,
                    &format!("{at}.namespaceSelector"),
                )?),
                _ => None,
            };
            Ok(ActionOverride {
                action,
                namespaces: string_list(item.get("namespaces")),
                namespace_selector,
            })
        })
        .collect()
}

fn compile_rule(rule: &Value, path: &str, autogen: bool) -> Result<CompiledRule, CompileError> {
    if !rule.is_object() {
        return Err(CompileError::new(path, "a rule must be an object"));
    }
    let name = rule
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CompileError::new(format!("{path}.name"), "a rule needs a name"))?
        .to_owned();
    let match_block = MatchBlock::compile(rule.get("match"), &format!("{path}.match"))?;
    if match_block == MatchBlock::Empty {
        return Err(CompileError::new(
            format!("{path}.match"),
            "a rule needs a match block selecting at least one resource",
        ));
    }
    let exclude_block = MatchBlock::compile(rule.get("exclude"), &format!("{path}.exclude"))?;
    let context = compile_context(rule.get("context"), &format!("{path}.context"))?;
    let preconditions =
        compile_conditions(rule.get("preconditions"), &format!("{path}.preconditions"))?;

    let present = |k: &str| rule.get(k).is_some_and(|v| !v.is_null());
    let body = if present("validate") {
        let mut validate = compile_validate(
            rule.get("validate").unwrap_or(&Value::Null),
            &format!("{path}.validate"),
        )?;
        if let (ValidateCheck::Cel(cel), Some(conditions)) = (
            &mut validate.check,
            rule.get("celPreconditions").filter(|c| !c.is_null()),
        ) {
            let mut with_conditions = (**cel).clone();
            crate::cel::policy::add_preconditions(
                &mut with_conditions,
                conditions,
                &format!("{path}.celPreconditions"),
            )?;
            *cel = Arc::new(with_conditions);
        }
        RuleBody::Validate(validate)
    } else if present("mutate") {
        RuleBody::Mutate(rule.get("mutate").cloned().unwrap_or(Value::Null))
    } else if present("generate") {
        RuleBody::Generate(rule.get("generate").cloned().unwrap_or(Value::Null))
    } else if present("verifyImages") {
        RuleBody::VerifyImages(rule.get("verifyImages").cloned().unwrap_or(Value::Null))
    } else {
        return Err(CompileError::new(
            path,
            "a rule needs one of validate, mutate, generate or verifyImages",
        ));
    };
    Ok(CompiledRule {
        name: name.into(),
        autogen,
        match_kinds: match_block.literal_kinds(),
        match_by_kinds_alone: match_block.selects_by_kinds_alone(),
        match_block,
        exclude_block,
        context,
        preconditions,
        body,
        source: rule.clone(),
    })
}

fn compile_context(value: Option<&Value>, path: &str) -> Result<Vec<Value>, CompileError> {
    let Some(items) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let items = items
        .as_array()
        .ok_or_else(|| CompileError::new(path, "must be a list of context entries"))?;
    for (i, entry) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if entry
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(CompileError::new(
                format!("{at}.name"),
                "a context entry needs a name",
            ));
        }
        let kinds = [
            "variable",
            "configMap",
            "apiCall",
            "imageRegistry",
            "globalReference",
        ];
        let found = kinds
            .iter()
            .filter(|k| entry.get(**k).is_some_and(|v| !v.is_null()))
            .count();
        if found != 1 {
            return Err(CompileError::new(
                at,
                "a context entry needs exactly one of variable, configMap, apiCall, imageRegistry or globalReference",
            ));
        }
        if let Some(jp) = entry
            .get("variable")
            .and_then(|v| v.get("jmesPath"))
            .and_then(Value::as_str)
        {
            if !variables::has_variables(&Value::String(jp.to_owned())) {
                crate::jmespath::compile(jp).map_err(|e| {
                    CompileError::new(format!("{at}.variable.jmesPath"), e.to_string())
                })?;
            }
        }
    }
    Ok(items.clone())
}

/// Parses `preconditions` / `deny.conditions`: `{any, all}` or the legacy list (all must hold).
pub fn compile_conditions(
    value: Option<&Value>,
    path: &str,
) -> Result<Option<ConditionBlock>, CompileError> {
    compile_conditions_for(value, path, Uses::Many)
}

/// [`compile_conditions`] for a block evaluated once (mutation reads its preconditions from
/// the rule as written, at evaluation): one-variable operands are not compiled ahead, which
/// would cost more than substituting them that one time.
pub fn compile_conditions_for_one_use(
    value: Option<&Value>,
    path: &str,
) -> Result<Option<ConditionBlock>, CompileError> {
    compile_conditions_for(value, path, Uses::Once)
}

/// How often a compiled condition block will be evaluated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Uses {
    Once,
    Many,
}

fn compile_conditions_for(
    value: Option<&Value>,
    path: &str,
    uses: Uses,
) -> Result<Option<ConditionBlock>, CompileError> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let list = |items: &Value, at: &str| -> Result<Vec<RawCondition>, CompileError> {
        let Some(items) = items.as_array() else {
            return Err(CompileError::new(at, "must be a list of conditions"));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, c)| compile_condition(c, &format!("{at}[{i}]"), uses))
            .collect()
    };
    match value {
        Value::Array(_) => Ok(Some(ConditionBlock::new(
            Vec::new(),
            list(value, path)?,
            false,
        ))),
        Value::Object(map) => {
            let any = match map.get("any") {
                Some(v) if !v.is_null() => Some(list(v, &format!("{path}.any"))?),
                _ => None,
            };
            let all = match map.get("all") {
                Some(v) if !v.is_null() => list(v, &format!("{path}.all"))?,
                _ => Vec::new(),
            };
            let has_any = any.is_some();
            Ok(Some(ConditionBlock::new(
                any.unwrap_or_default(),
                all,
                has_any,
            )))
        }
        _ => Err(CompileError::new(
            path,
            "must be a list of conditions or an object with any/all",
        )),
    }
}

fn compile_condition(value: &Value, path: &str, uses: Uses) -> Result<RawCondition, CompileError> {
    let operator_text = value
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            CompileError::new(format!("{path}.operator"), "a condition needs an operator")
        })?;
    let operator: Operator = operator_text.parse().map_err(|_| {
        CompileError::new(
            format!("{path}.operator"),
            format!("unknown operator {operator_text:?}"),
        )
    })?;
    let key = value.get("key").cloned().unwrap_or(Value::Null);
    let condition_value = value.get("value").cloned().unwrap_or(Value::Null);
    Ok(RawCondition {
        key_substitutes: crate::variables::holds_open_braces(&key),
        value_substitutes: crate::variables::holds_open_braces(&condition_value),
        key_variable: key
            .as_str()
            .filter(|_| uses == Uses::Many)
            .and_then(variables::WholeVariable::of),
        value_variable: condition_value
            .as_str()
            .filter(|_| uses == Uses::Many)
            .and_then(variables::WholeVariable::of),
        key,
        operator,
        value: condition_value,
        message: value
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn compile_validate(value: &Value, path: &str) -> Result<ValidateRule, CompileError> {
    let failure_action = match value.get("failureAction") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_action(v, &format!("{path}.failureAction"))?),
    };
    let action_overrides = compile_overrides(
        value.get("failureActionOverrides"),
        &format!("{path}.failureActionOverrides"),
    )?;
    let allow_existing_violations = value
        .get("allowExistingViolations")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(ValidateRule {
        message: value
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
        failure_action,
        action_overrides,
        allow_existing_violations,
        check: compile_check(value, path, 0)?,
    })
}

/// Nested foreach depth bylaw accepts; deeper nesting is a policy error, not a stack risk.
const MAX_FOREACH_DEPTH: usize = 8;

fn compile_check(value: &Value, path: &str, depth: usize) -> Result<ValidateCheck, CompileError> {
    let present = |k: &str| value.get(k).is_some_and(|v| !v.is_null());
    if present("cel") {
        let message = value
            .get("message")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .map(str::to_owned);
        let rule = crate::cel::policy::compile_validate_cel(
            value.get("cel").unwrap_or(&Value::Null),
            &format!("{path}.cel"),
            message,
        )?;
        return Ok(ValidateCheck::Cel(Arc::new(rule)));
    }
    for (field, feature) in [
        ("manifests", "validate.manifests"),
        ("assert", "validate.assert"),
    ] {
        if present(field) {
            return Ok(ValidateCheck::Unsupported(feature));
        }
    }
    if present("podSecurity") {
        let ps = value.get("podSecurity").unwrap_or(&Value::Null);
        let at = format!("{path}.podSecurity");
        let level_text = ps.get("level").and_then(Value::as_str).unwrap_or("");
        let level: podsecurity::Level = level_text.parse().map_err(|_| {
            CompileError::new(
                format!("{at}.level"),
                format!("must be privileged, baseline or restricted, got {level_text:?}"),
            )
        })?;
        let version_text = ps
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("latest");
        let version: podsecurity::Version = version_text.parse().map_err(|_| {
            CompileError::new(
                format!("{at}.version"),
                format!("must be latest or v1.N, got {version_text:?}"),
            )
        })?;
        let exclusions = pod_security_exclusions(ps.get("exclude"));
        podsecurity::validate_exclusions(level, &version, &exclusions)
            .map_err(|reason| CompileError::new(format!("{at}.exclude"), reason))?;
        return Ok(ValidateCheck::PodSecurity(PodSecurityRule {
            level,
            version,
            exclusions,
        }));
    }
    if present("deny") {
        let deny = value.get("deny").unwrap_or(&Value::Null);
        let conditions =
            compile_conditions(deny.get("conditions"), &format!("{path}.deny.conditions"))?
                .unwrap_or_default();
        return Ok(ValidateCheck::Deny(conditions));
    }
    if present("pattern") {
        let pattern = value.get("pattern").unwrap_or(&Value::Null);
        return Ok(ValidateCheck::Pattern(PatternSource::compile(
            pattern,
            &format!("{path}.pattern"),
        )?));
    }
    if present("anyPattern") {
        let items = value
            .get("anyPattern")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                CompileError::new(format!("{path}.anyPattern"), "must be a list of patterns")
            })?;
        let patterns = items
            .iter()
            .enumerate()
            .map(|(i, p)| PatternSource::compile(p, &format!("{path}.anyPattern[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(ValidateCheck::AnyPattern(patterns));
    }
    if present("foreach") {
        if depth >= MAX_FOREACH_DEPTH {
            return Err(CompileError::new(
                format!("{path}.foreach"),
                format!("foreach nested deeper than {MAX_FOREACH_DEPTH} levels"),
            ));
        }
        let items = value
            .get("foreach")
            .and_then(Value::as_array)
            .ok_or_else(|| CompileError::new(format!("{path}.foreach"), "must be a list"))?;
        let mut entries = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}.foreach[{i}]");
            let list = item
                .get("list")
                .and_then(Value::as_str)
                .filter(|l| !l.trim().is_empty())
                .ok_or_else(|| {
                    CompileError::new(format!("{at}.list"), "foreach needs a list expression")
                })?
                .to_owned();
            let list_expression = (!variables::has_open_braces(&list))
                .then(|| jmespath::compile_uncached(&list).ok())
                .flatten();
            entries.push(ForeachValidate {
                list,
                list_expression,
                element_scope: item.get("elementScope").and_then(Value::as_bool),
                context: compile_context(item.get("context"), &format!("{at}.context"))?,
                preconditions: compile_conditions(
                    item.get("preconditions"),
                    &format!("{at}.preconditions"),
                )?,
                check: compile_check(item, &at, depth + 1)?,
            });
        }
        return Ok(ValidateCheck::Foreach(entries));
    }
    Err(CompileError::new(
        path,
        "needs one of pattern, anyPattern, deny, foreach, podSecurity, cel, manifests or assert",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(rules: Value) -> Value {
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
               "metadata": {"name": "p"}, "spec": {"rules": rules}})
    }

    /// A request reaches the rules naming its kind and those without a plain kind list, in
    /// the policy's order; a policy whose rules changed after compiling is scanned whole.
    #[test]
    fn rules_for_kind_keeps_the_rules_that_can_select_the_kind() {
        let rule = |name: &str, kinds: Value| {
            json!({"name": name, "match": {"any": [{"resources": {"kinds": kinds}}]},
                   "validate": {"pattern": {"metadata": {"name": "?*"}}}})
        };
        let doc = policy(json!([
            rule("pods", json!(["Pod"])),
            rule("any-kind", json!(["*"])),
            rule("workloads", json!(["Deployment", "Pod"])),
            rule("services", json!(["Service"])),
        ]));
        let mut compiled = compile_policy(&doc).unwrap();
        let names = |p: &CompiledPolicy, kind: &str| -> Vec<String> {
            p.rules_for_kind(kind).map(|r| r.name.to_string()).collect()
        };
        assert_eq!(names(&compiled, "Pod"), ["pods", "any-kind", "workloads"]);
        assert_eq!(names(&compiled, "Deployment"), ["any-kind", "workloads"]);
        assert_eq!(names(&compiled, "Service"), ["any-kind", "services"]);
        assert_eq!(names(&compiled, "ConfigMap"), ["any-kind"]);
        assert_eq!(names(&compiled, "pod"), ["any-kind"]);

        assert!(compiled.has_validate());

        // Marked: plain kinds and nothing else, no exclude block; the mark must agree with
        // the full selection for main resources and subresources alike.
        let doc = policy(json!([
            rule("pods", json!(["Pod"])),
            rule("any-kind", json!(["*"])),
            {"name": "pods-excluding", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
             "exclude": {"any": [{"resources": {"namespaces": ["kube-system"]}}]},
             "validate": {"pattern": {"metadata": {"name": "?*"}}}},
            {"name": "pods-in-prod", "match": {"any": [{"resources": {"kinds": ["Pod"],
                "namespaces": ["prod"]}}]},
             "validate": {"pattern": {"metadata": {"name": "?*"}}}},
        ]));
        let marked = compile_policy(&doc).unwrap();
        let marks: Vec<(String, bool)> = marked
            .rules_for_kind_marked("Pod")
            .map(|(r, m)| (r.name.to_string(), m))
            .collect();
        let want = [
            ("pods", true),
            ("any-kind", false),
            ("pods-excluding", false),
            ("pods-in-prod", false),
        ];
        let want: Vec<(String, bool)> = want.iter().map(|(n, m)| (n.to_string(), *m)).collect();
        assert_eq!(marks, want);
        for (namespace, subresource) in [
            ("prod", ""),
            ("kube-system", ""),
            ("prod", "status"),
            ("prod", "ephemeralcontainers"),
        ] {
            let mut request = crate::request::Request::create(json!({"apiVersion": "v1",
                "kind": "Pod", "metadata": {"name": "a", "namespace": namespace}}));
            request.subresource = subresource.to_owned();
            for (rule, by_kind_alone) in marked.rules_for_kind_marked("Pod") {
                if by_kind_alone {
                    assert_eq!(
                        crate::matching::selects_main_resource(&request),
                        crate::validate::rule_selects(rule, &request),
                        "{} for {namespace}/{subresource}",
                        rule.name
                    );
                }
            }
        }

        let extra = compiled.rules[0].clone();
        compiled.rules.push(extra);
        assert_eq!(compiled.rules_for_kind("ConfigMap").count(), 5);
        assert!(compiled
            .rules_for_kind_marked("Pod")
            .all(|(_, marked)| !marked));

        let mutate = policy(json!([{"name": "label",
            "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
            "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"a": "b"}}}}}]));
        let mut compiled = compile_policy(&mutate).unwrap();
        assert!(!compiled.has_validate());
        compiled.rules.extend(compile_policy(&doc).unwrap().rules);
        assert!(
            compiled.has_validate(),
            "rules added after compiling are read"
        );
    }

    /// A policy enforces when its action, one of its overrides or one of its validate rules'
    /// own actions says Enforce; the rules' part comes from the index while it describes them.
    #[test]
    fn a_policy_says_enforce_wherever_it_is_written() {
        let with = |spec: Value, validate: Value| {
            let mut doc = policy(json!([{"name": "r",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": validate}]));
            if let (Some(target), Some(extra)) = (doc["spec"].as_object_mut(), spec.as_object()) {
                target.extend(extra.clone());
            }
            compile_policy(&doc).unwrap()
        };
        let pattern = json!({"pattern": {"metadata": {"name": "?*"}}});
        let mut rule_action = pattern.clone();
        rule_action["failureAction"] = json!("Enforce");
        let mut rule_override = pattern.clone();
        rule_override["failureActionOverrides"] =
            json!([{"action": "Enforce", "namespaces": ["x"]}]);
        let cases = [
            (json!({}), pattern.clone(), false),
            (
                json!({"validationFailureAction": "Audit"}),
                pattern.clone(),
                false,
            ),
            (
                json!({"validationFailureAction": "Enforce"}),
                pattern.clone(),
                true,
            ),
            (
                json!({"validationFailureActionOverrides": [{"action": "Enforce", "namespaces": ["x"]}]}),
                pattern.clone(),
                true,
            ),
            (json!({}), rule_action.clone(), true),
            (json!({}), rule_override, true),
        ];
        for (spec, validate, enforces) in cases {
            let compiled = with(spec.clone(), validate.clone());
            assert_eq!(compiled.says_enforce(), enforces, "{spec} {validate}");
        }
        let mut audit = with(json!({}), pattern);
        audit.rules.extend(with(json!({}), rule_action).rules);
        assert!(audit.says_enforce(), "rules added after compiling are read");
    }

    /// What round 6 of #11 compiles ahead is wired where it is evaluated many times (a rule's
    /// conditions and foreach lists) and only there (mutation's preconditions, compiled at
    /// each use, and anything holding more than one variable or text around one).
    #[test]
    fn one_variable_operands_and_plain_foreach_lists_are_compiled_with_the_policy() {
        let block = json!({"all": [
            {"key": "{{ request.operation }}", "operator": "NotEquals", "value": "DELETE"},
            {"key": "a {{ b }}", "operator": "Equals", "value": "{{ c || 'd' }}"},
        ]});
        let compiled = |block: Option<ConditionBlock>| -> Vec<(bool, bool)> {
            block
                .map(|b| b.all)
                .unwrap_or_default()
                .iter()
                .map(|c| (c.key_variable.is_some(), c.value_variable.is_some()))
                .collect()
        };
        let many = compile_conditions(Some(&block), "preconditions").unwrap();
        assert_eq!(compiled(many), [(true, false), (false, true)]);
        let once = compile_conditions_for_one_use(Some(&block), "preconditions").unwrap();
        assert_eq!(compiled(once), [(false, false), (false, false)]);

        let rule = |list: &str| {
            json!([{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "validate": {"foreach": [{"list": list, "deny": {}}]}}])
        };
        for (list, ahead) in [
            ("request.object.spec.containers", true),
            ("request.object.spec.{{ request.operation }}", false),
            ("request.object.spec.[", false),
        ] {
            let compiled = compile_policy(&policy(rule(list))).unwrap();
            let Some(RuleBody::Validate(validate)) = compiled.rules.first().map(|r| &r.body) else {
                panic!("{list}: not a validate rule");
            };
            let ValidateCheck::Foreach(entries) = &validate.check else {
                panic!("{list}: not a foreach");
            };
            assert_eq!(entries[0].list_expression.is_some(), ahead, "{list}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = compile_policy(&policy(json!([{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"deny": {"conditions": {"any": [{"key": "a", "operator": "Equalz", "value": "b"}]}}}}])))
        .unwrap_err();
        assert_eq!(
            err.path,
            "spec.rules[0].validate.deny.conditions.any[0].operator"
        );
        assert!(err.reason.contains("Equalz"), "{err}");

        let err = compile_policy(&policy(json!([{"name": "r", "validate": {"pattern": {}}}])))
            .unwrap_err();
        assert_eq!(err.path, "spec.rules[0].match");

        let err = compile_policy(
            &json!({"kind": "ClusterPolicy", "metadata": {"name": "x"}, "spec": {"rules": []}}),
        )
        .unwrap_err();
        assert_eq!(err.path, "spec.rules");
    }

    #[test]
    fn defaults_and_settings() {
        let mut doc = policy(
            json!([{"name": "r", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
            "validate": {"pattern": {"metadata": {"name": "?*"}}}}]),
        );
        let p = compile_policy(&doc).unwrap();
        assert_eq!(p.validation_failure_action, FailureAction::Audit);
        assert!(p.background && p.admission && p.scored);
        assert_eq!(p.failure_policy, FailurePolicy::Fail);
        doc["spec"]["validationFailureAction"] = json!("enforce");
        doc["metadata"]["annotations"] = json!({"policies.kyverno.io/scored": "false"});
        let p = compile_policy(&doc).unwrap();
        assert_eq!(p.validation_failure_action, FailureAction::Enforce);
        assert!(!p.scored);
    }

    #[test]
    fn unsupported_rules_are_named_with_their_feature() {
        // `validate.cel` is evaluated, so its rule is not listed.
        let p = compile_policy(&policy(json!([
            {"name": "plain", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
             "validate": {"pattern": {"metadata": {"name": "?*"}}}},
            {"name": "images", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
             "verifyImages": [{"imageReferences": ["*"]}]},
            {"name": "cel", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
             "validate": {"cel": {"expressions": [{"expression": "true"}]}}},
            {"name": "nested", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
             "validate": {"foreach": [{"list": "request.object.data", "assert": {"x": 1}}]}}
        ])))
        .unwrap();
        assert_eq!(
            p.unsupported_rules(),
            [
                UnsupportedRule {
                    rule: "images".into(),
                    feature: "verifyImages"
                },
                UnsupportedRule {
                    rule: "nested".into(),
                    feature: "validate.assert"
                },
            ]
        );
    }
    #[test]
    fn whether_a_policy_selects_by_namespace_labels_is_known_once_compiled() {
        let selecting = |block: &str| {
            let mut rule = json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"pattern": {"metadata": {"name": "?*"}}}});
            rule[block] = json!({"any": [{"resources": {"kinds": ["Pod"],
                "namespaceSelector": {"matchLabels": {"env": "prod"}}}}]});
            compile_policy(&policy(json!([rule]))).unwrap()
        };
        assert!(selecting("match").selects_by_namespace_labels);
        assert!(selecting("exclude").selects_by_namespace_labels);
        let plain = compile_policy(&policy(json!([{"name": "r",
            "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}}]},
            "validate": {"pattern": {"metadata": {"name": "?*"}}}}])))
        .unwrap();
        assert!(!plain.selects_by_namespace_labels);
    }
}

#[cfg(test)]
mod reference_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_element_references_are_found() {
        assert!(refers_to_nested_elements(
            &json!({"a": ["{{ element0.name }}"]})
        ));
        assert!(refers_to_nested_elements(
            &json!({"k": "elementIndex1 == `0`"})
        ));
        assert!(!refers_to_nested_elements(
            &json!({"a": "{{ element.name }} {{ elementIndex }}"})
        ));
        assert!(!refers_to_nested_elements(&json!({"elements": "x"})));
        // In keys, after other text, at the very end, and not cut short by a multi-byte
        // character before it.
        assert!(refers_to_nested_elements(&json!({"é{{element12}}": 1})));
        assert!(refers_to_nested_elements(&json!(["x", ["elementIndex3"]])));
        assert!(!refers_to_nested_elements(&json!("element")));
        assert!(!refers_to_nested_elements(&json!("elementIndex")));
        assert!(!refers_to_nested_elements(&json!(
            "elementIndexX1 elementé1"
        )));
    }
}
