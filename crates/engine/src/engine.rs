//! The entry point callers use: a set of compiled policies and exceptions evaluated against a
//! request, plus the mapping of rule outcomes to report results.

use std::sync::Arc;

use serde_json::Value;

use crate::compile::CompiledPolicy;
use crate::context::ContextProvider;
use crate::exceptions::CompiledException;
use crate::request::Request;
use crate::response::{PolicyResponse, RuleResponse, RuleStatus};
pub use crate::validate::RequestMemo;
use crate::validate::{validate_policy, Evaluation};

/// Compiled policies and exceptions, swapped whole when anything changes.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    pub policies: Vec<Arc<CompiledPolicy>>,
    pub exceptions: Vec<CompiledException>,
}

impl PolicySet {
    pub fn new(policies: Vec<CompiledPolicy>, exceptions: Vec<CompiledException>) -> Self {
        PolicySet {
            policies: policies.into_iter().map(Arc::new).collect(),
            exceptions,
        }
    }

    /// Whether any policy or exception refers to `images`, so contexts must include it.
    pub fn uses_images(&self) -> bool {
        self.policies.iter().any(|p| p.uses_images) || self.exceptions.iter().any(|e| e.uses_images)
    }

    /// Whether any policy or exception could read `metadata.managedFields` of the request's
    /// objects. When none can, callers may leave them out of the objects they decode.
    pub fn reads_managed_fields(&self) -> bool {
        self.policies.iter().any(|p| p.reads_managed_fields)
            || self.exceptions.iter().any(|e| e.reads_managed_fields)
    }

    /// [`PolicySet::reads_managed_fields`] for validation alone: only the validate rules (and
    /// the exceptions) count, so mutate policies do not make validation decode them.
    pub fn validation_reads_managed_fields(&self) -> bool {
        self.policies
            .iter()
            .any(|p| p.validation_reads_managed_fields)
            || self.exceptions.iter().any(|e| e.reads_managed_fields)
    }

    /// The base context document for a request, with `images` only when something uses it.
    pub fn context_for(&self, request: &Request) -> Value {
        crate::context::request_context_with(request, self.uses_images())
    }

    /// The context document for validating `request` with [`validate_with_context_mut`]: the
    /// request's object and old object are read from the request rather than copied in.
    /// Mutation and generation change `request.object` as they go and need
    /// [`PolicySet::context_for`].
    pub fn validation_context(&self, request: &Request) -> crate::context::ValidationContext {
        crate::context::ValidationContext::of(request, self.uses_images())
    }

    /// Runs every policy's validate rules against the request, sharing one context document.
    pub fn validate(
        &self,
        request: &Request,
        provider: &dyn ContextProvider,
    ) -> Vec<PolicyResponse> {
        let mut context = self.validation_context(request);
        let memo = RequestMemo::new(request);
        self.policies
            .iter()
            .filter(|p| p.has_validate())
            .map(|policy| {
                validate_with_context_mut(
                    policy,
                    request,
                    context.document_mut(),
                    &memo,
                    provider,
                    &self.exceptions,
                )
            })
            .collect()
    }
}

/// Runs one policy's validate rules with a prepared context document (left as it was found):
/// one from [`PolicySet::validation_context`], or a full one from
/// [`crate::context::request_context`]. Where the document's `request.object` or
/// `request.oldObject` is null, the request's own is read in its place. `memo` is kept by the
/// caller for the request, across the policies it validates.
pub fn validate_with_context_mut<'m>(
    policy: &'m CompiledPolicy,
    request: &'m Request,
    context: &mut Value,
    memo: &RequestMemo<'m>,
    provider: &dyn ContextProvider,
    exceptions: &[CompiledException],
) -> PolicyResponse {
    let eval = Evaluation {
        request,
        provider,
        exceptions,
        objects: Some(crate::context::request_objects(request)),
        memo,
    };
    validate_policy(policy, &eval, context)
}

/// Runs one policy's validate rules with a prepared context document, working on a copy.
pub fn validate_with_context(
    policy: &CompiledPolicy,
    request: &Request,
    context: &Value,
    provider: &dyn ContextProvider,
    exceptions: &[CompiledException],
) -> PolicyResponse {
    let mut context = context.clone();
    let memo = RequestMemo::new(request);
    validate_with_context_mut(policy, request, &mut context, &memo, provider, exceptions)
}

/// Error responses for the rules of `policy` that no evaluation phase runs (`verifyImages`)
/// and that select the request: an unsupported rule is reported, never silently passed. The
/// rules whose check is unsupported inside `validate` get their error from validation itself.
pub fn unevaluated_rules(policy: &CompiledPolicy, request: &Request) -> PolicyResponse {
    use crate::compile::RuleBody;
    use crate::response::RuleType;
    use crate::validate::{policy_applies, rule_selects};

    let mut rules = Vec::new();
    if policy_applies(policy, request) {
        for unsupported in policy.unsupported_rules() {
            let Some(rule) = policy.rules.iter().find(|r| *r.name == *unsupported.rule) else {
                continue;
            };
            if !matches!(rule.body, RuleBody::VerifyImages(_)) || !rule_selects(rule, request) {
                continue;
            }
            rules.push(RuleResponse::new(
                &rule.name,
                RuleType::ImageVerify,
                RuleStatus::Error,
                crate::compile::unsupported_message(unsupported.feature),
            ));
        }
    }
    PolicyResponse {
        policy: policy.name.clone(),
        policy_namespace: policy.namespace.clone(),
        rules,
    }
}

/// The result a PolicyReport (and `bylaw test`) records for a rule response: failures of a
/// policy annotated `policies.kyverno.io/scored: "false"` are warnings.
pub fn report_status(policy: &CompiledPolicy, rule: &RuleResponse) -> RuleStatus {
    match rule.status {
        RuleStatus::Fail if !policy.scored => RuleStatus::Warn,
        other => other,
    }
}

/// Whether a failing rule blocks (Enforce) or only reports (Audit) in a namespace: the rule's
/// own `failureAction` (and its overrides) win over the policy's `validationFailureAction`
/// (and its overrides).
pub fn effective_action(
    policy: &CompiledPolicy,
    rule_name: &str,
    namespace: &str,
    namespace_labels: Option<&std::collections::BTreeMap<String, String>>,
) -> crate::response::FailureAction {
    use crate::compile::{ActionOverride, RuleBody};
    let overridden = |overrides: &[ActionOverride]| {
        overrides.iter().find_map(|o| {
            let by_name = o
                .namespaces
                .iter()
                .any(|n| crate::wildcard::wildcard_match(n, namespace));
            let by_labels = match (&o.namespace_selector, namespace_labels) {
                (Some(sel), Some(labels)) => sel.matches(labels),
                _ => false,
            };
            (by_name || by_labels).then_some(o.action)
        })
    };
    let rule = policy.rules.iter().find(|r| *r.name == *rule_name);
    if let Some(RuleBody::Validate(v)) = rule.map(|r| &r.body) {
        if let Some(action) = overridden(&v.action_overrides) {
            return action;
        }
        if let Some(action) = v.failure_action {
            return action;
        }
    }
    overridden(&policy.action_overrides).unwrap_or(policy.validation_failure_action)
}

/// The result of running every mutate rule of a policy set against a request.
#[derive(Debug, Clone)]
pub struct MutationResult {
    pub responses: Vec<PolicyResponse>,
    /// The object after every applied mutation (the request's object when nothing applied).
    pub patched: Value,
    /// A minimal RFC 6902 patch from the request's object to `patched`.
    pub patch: Vec<crate::mutate::PatchOperation>,
}

impl PolicySet {
    /// Runs the mutate rules of every policy, in order; later rules and policies see earlier
    /// mutations, as in Kyverno's admission flow.
    pub fn mutate(&self, request: &Request, provider: &dyn ContextProvider) -> MutationResult {
        let mut context = self.context_for(request);
        // The request as mutated so far; the request itself until something changes.
        let mut view = std::borrow::Cow::Borrowed(request);
        let mut responses = Vec::new();
        for policy in self.policies.iter().filter(|p| p.has_mutate()) {
            let (response, next) = mutate_view(
                policy,
                request,
                view,
                &mut context,
                provider,
                &self.exceptions,
            );
            view = next;
            responses.push(response);
        }
        let current = match view {
            std::borrow::Cow::Owned(owned) => owned.object,
            std::borrow::Cow::Borrowed(_) => request.object.clone(),
        };
        let patch = crate::mutate::diff(&request.object, &current);
        MutationResult {
            responses,
            patched: current,
            patch,
        }
    }
}

/// Runs one policy's mutate rules against `object` (the request's object with earlier
/// mutations applied). `context` is the request's context document; its `request.object` follows
/// the mutations. Returns the responses and the mutated object.
pub fn mutate_policy(
    policy: &CompiledPolicy,
    request: &Request,
    object: &Value,
    context: &mut Value,
    provider: &dyn ContextProvider,
    exceptions: &[CompiledException],
) -> (PolicyResponse, Value) {
    use std::borrow::Cow;

    let view: Cow<'_, Request> = if crate::json::equal(object, &request.object) {
        Cow::Borrowed(request)
    } else {
        Cow::Owned(request_with_object(request, object.clone()))
    };
    let (response, view) = mutate_view(policy, request, view, context, provider, exceptions);
    let current = match view {
        Cow::Owned(owned) => owned.object,
        Cow::Borrowed(_) => object.clone(),
    };
    (response, current)
}

/// [`mutate_policy`] over a view of the request whose object is the one mutated so far (the
/// request itself while nothing changed); returns the view after this policy's mutations.
fn mutate_view<'r>(
    policy: &CompiledPolicy,
    request: &'r Request,
    mut view: std::borrow::Cow<'r, Request>,
    context: &mut Value,
    provider: &dyn ContextProvider,
    exceptions: &[CompiledException],
) -> (PolicyResponse, std::borrow::Cow<'r, Request>) {
    use crate::compile::RuleBody;
    use crate::mutate::{mutate_rule, MutateStatus, ProviderEnv};
    use crate::response::RuleType;
    use crate::validate::{check_conditions, policy_applies, rule_selects};
    use std::borrow::Cow;

    let mut rules = Vec::new();
    // Matching looks at the object as mutated so far.
    if policy_applies(policy, &view) {
        for rule in &policy.rules {
            let RuleBody::Mutate(mutate) = &rule.body else {
                continue;
            };
            // Mutate-existing rules act on other resources in the background, not on this one.
            if mutate.get("targets").is_some_and(|t| !t.is_null()) {
                continue;
            }
            if !rule_selects(rule, &view) {
                continue;
            }
            if let Some(exception) = exceptions.iter().find(|e| {
                matches!(
                    e.applies(policy, rule, &view, (&*context).into()),
                    crate::exceptions::ExceptionVerdict::Skip
                        | crate::exceptions::ExceptionVerdict::PodSecurity(_)
                )
            }) {
                let mut skipped = RuleResponse::new(
                    &rule.name,
                    RuleType::Mutation,
                    RuleStatus::Skip,
                    format!("rule skipped due to policy exception {}", exception.key()),
                );
                skipped.exception = Some(exception.key());
                rules.push(skipped);
                continue;
            }
            // The rule's own variables go into the shared context and are taken out again
            // afterwards, rather than copying the context per rule.
            let saved = rule_context_keys(context, policy, rule, provider);
            let prepared = prepare_rule_context(context, policy, rule, provider);
            let mut patched = None;
            let response = match prepared {
                Err(e) => RuleResponse::new(
                    &rule.name,
                    RuleType::Mutation,
                    RuleStatus::Error,
                    format!("failed to load context: {e}"),
                ),
                Ok(()) => match rule
                    .preconditions
                    .as_ref()
                    .map(|p| check_conditions(p, &*context))
                {
                    Some(Err(e)) => RuleResponse::new(
                        &rule.name,
                        RuleType::Mutation,
                        RuleStatus::Error,
                        format!("failed to evaluate preconditions: {e}"),
                    ),
                    Some(Ok((false, _))) => RuleResponse::new(
                        &rule.name,
                        RuleType::Mutation,
                        RuleStatus::Skip,
                        "preconditions not met".to_owned(),
                    ),
                    _ => {
                        let outcome =
                            mutate_rule(mutate, &view.object, context, &ProviderEnv(provider));
                        let status = match outcome.status {
                            MutateStatus::Pass => RuleStatus::Pass,
                            MutateStatus::Skip => RuleStatus::Skip,
                            MutateStatus::Error => RuleStatus::Error,
                            MutateStatus::Fail => RuleStatus::Fail,
                        };
                        if matches!(outcome.status, MutateStatus::Error | MutateStatus::Fail) {
                            // A foreach may have recorded some of its steps before failing.
                            crate::mutate::set_request_object(context, &view.object);
                        }
                        patched = outcome.patched;
                        RuleResponse::new(&rule.name, RuleType::Mutation, status, outcome.message)
                    }
                },
            };
            let request_restored = saved.contains("request");
            saved.restore(context);
            if let Some(patched) = patched {
                // `mutate_rule` already put the result into the context's `request.object`.
                if request_restored {
                    crate::mutate::set_request_object(context, &patched);
                }
                match &mut view {
                    Cow::Owned(owned) => owned.object = patched,
                    Cow::Borrowed(_) => view = Cow::Owned(request_with_object(request, patched)),
                }
            }
            rules.push(response);
        }
    }
    (
        PolicyResponse {
            policy: policy.name.clone(),
            policy_namespace: policy.namespace.clone(),
            rules,
        },
        view,
    )
}

/// What a mutate-existing rule did for one target.
#[derive(Debug, Clone)]
pub struct TargetMutation {
    /// The rule's response for this target (or for the rule, when no target was reached).
    pub response: RuleResponse,
    /// The target as it was; `None` for a response not tied to one target.
    pub target: Option<Value>,
    /// The target after the rule's patches, when it changed.
    pub patched: Option<Value>,
}

/// Runs one policy's mutate-existing rules (`mutate.targets`) for a trigger request, outside
/// admission, as Kyverno's background processing and CLI do: match and exclude, exceptions,
/// context and preconditions on the trigger, then the rule's patch on every existing object
/// among `candidates` that a target selects. The trigger itself is not changed.
pub fn mutate_existing_policy(
    policy: &CompiledPolicy,
    request: &Request,
    context: &mut Value,
    provider: &dyn ContextProvider,
    exceptions: &[CompiledException],
    candidates: &[Value],
) -> Vec<TargetMutation> {
    use crate::compile::RuleBody;
    use crate::mutate::{mutate_existing, MutateStatus, ProviderEnv};
    use crate::response::RuleType;
    use crate::validate::{check_conditions, policy_applies, rule_selects};

    let mut results = Vec::new();
    if !policy_applies(policy, request) {
        return results;
    }
    let respond = |rule: &Arc<str>, status: RuleStatus, message: String| TargetMutation {
        response: RuleResponse::new(rule, RuleType::Mutation, status, message),
        target: None,
        patched: None,
    };
    for rule in &policy.rules {
        let RuleBody::Mutate(mutate) = &rule.body else {
            continue;
        };
        if mutate.get("targets").is_none_or(Value::is_null) || !rule_selects(rule, request) {
            continue;
        }
        if let Some(exception) = exceptions.iter().find(|e| {
            matches!(
                e.applies(policy, rule, request, (&*context).into()),
                crate::exceptions::ExceptionVerdict::Skip
                    | crate::exceptions::ExceptionVerdict::PodSecurity(_)
            )
        }) {
            let mut skipped = respond(
                &rule.name,
                RuleStatus::Skip,
                format!("rule skipped due to policy exception {}", exception.key()),
            );
            skipped.response.exception = Some(exception.key());
            results.push(skipped);
            continue;
        }
        let saved = rule_context_keys(context, policy, rule, provider);
        match prepare_rule_context(context, policy, rule, provider) {
            Err(e) => results.push(respond(
                &rule.name,
                RuleStatus::Error,
                format!("failed to load context: {e}"),
            )),
            Ok(()) => match rule
                .preconditions
                .as_ref()
                .map(|p| check_conditions(p, &*context))
            {
                Some(Err(e)) => results.push(respond(
                    &rule.name,
                    RuleStatus::Error,
                    format!("failed to evaluate preconditions: {e}"),
                )),
                Some(Ok((false, _))) => results.push(respond(
                    &rule.name,
                    RuleStatus::Skip,
                    "preconditions not met".to_owned(),
                )),
                _ => {
                    let outcomes = mutate_existing(
                        mutate,
                        candidates,
                        policy.namespace.as_deref(),
                        context,
                        &ProviderEnv(provider),
                    );
                    for outcome in outcomes {
                        let status = match outcome.outcome.status {
                            MutateStatus::Pass => RuleStatus::Pass,
                            MutateStatus::Skip => RuleStatus::Skip,
                            MutateStatus::Error => RuleStatus::Error,
                            MutateStatus::Fail => RuleStatus::Fail,
                        };
                        let mut mutation =
                            respond(&rule.name, status, outcome.outcome.message.clone());
                        mutation.target = outcome.target;
                        mutation.patched = outcome.outcome.patched;
                        results.push(mutation);
                    }
                }
            },
        }
        saved.restore(context);
    }
    results
}

/// `request` with another object, without copying the request's own object.
fn request_with_object(request: &Request, object: Value) -> Request {
    Request {
        operation: request.operation,
        object,
        old_object: request.old_object.clone(),
        kind: request.kind.clone(),
        subresource: request.subresource.clone(),
        user: request.user.clone(),
        namespace_labels: request.namespace_labels.clone(),
        dry_run: request.dry_run,
    }
}

/// The top-level context keys a rule's values and context entries are about to set.
fn rule_context_keys(
    ctx: &Value,
    policy: &CompiledPolicy,
    rule: &crate::compile::CompiledRule,
    provider: &dyn ContextProvider,
) -> crate::mutate::SavedKeys {
    let mut saved = crate::mutate::SavedKeys::default();
    if let Some(values) = provider.rule_values(&policy.name, &rule.name) {
        for key in values.keys() {
            saved.remember(ctx, key);
        }
    }
    for entry in &rule.context {
        if let Some(name) = entry.get("name").and_then(Value::as_str) {
            saved.remember(ctx, name);
        }
    }
    saved
}

/// Values-file stand-ins first, then the rule's own context entries.
fn prepare_rule_context(
    ctx: &mut Value,
    policy: &CompiledPolicy,
    rule: &crate::compile::CompiledRule,
    provider: &dyn ContextProvider,
) -> Result<(), String> {
    if let Some(values) = provider.rule_values(&policy.name, &rule.name) {
        for (key, value) in values {
            crate::context::add_variable(ctx, key, value.clone());
        }
    }
    crate::context::load_entries(&rule.context, ctx, provider)
}

impl PolicySet {
    /// Runs the generate rules of every policy against the request (its object as admitted,
    /// i.e. after mutation). Applying the result is the caller's job.
    pub fn generate(
        &self,
        request: &Request,
        provider: &dyn ContextProvider,
    ) -> Vec<crate::generate::PolicyGeneration> {
        let context = self.context_for(request);
        self.policies
            .iter()
            .filter(|p| crate::generate::has_generate(p))
            .map(|policy| generate_policy(policy, request, &context, provider, &self.exceptions))
            .collect()
    }
}

/// Runs one policy's generate rules with a prepared context document (see
/// [`crate::context::request_context`]): match and exclude, exceptions, context entries and
/// preconditions as for other rules, then [`crate::generate::generate_rule`].
///
/// Besides the objects to write, each rule says what to do with the downstream objects the
/// trigger already has: an UPDATE after which the rule no longer selects the trigger (or its
/// preconditions no longer hold) is a `fail`, as in Kyverno, and asks for their deletion when
/// the rule synchronizes; a DELETE of the trigger does the same without a response, unless the
/// rule names DELETE among its operations and so generates on deletion.
pub fn generate_policy(
    policy: &CompiledPolicy,
    request: &Request,
    context: &Value,
    provider: &dyn ContextProvider,
    exceptions: &[CompiledException],
) -> crate::generate::PolicyGeneration {
    use crate::compile::RuleBody;
    use crate::generate::{settings, PolicyGeneration};
    use crate::validate::policy_applies;

    let apply_one = policy
        .source
        .pointer("/spec/applyRules")
        .and_then(Value::as_str)
        == Some("One");
    let mut rules = Vec::new();
    if policy_applies(policy, request) {
        for rule in &policy.rules {
            let RuleBody::Generate(generate) = &rule.body else {
                continue;
            };
            let settings = settings(policy, generate);
            let Some(outcome) = generate_for_request(
                policy, rule, generate, settings, request, context, provider, exceptions,
            ) else {
                continue;
            };
            let decisive = outcome
                .response
                .as_ref()
                .is_some_and(|r| r.status != RuleStatus::Skip);
            rules.push(outcome);
            if apply_one && decisive {
                break;
            }
        }
    }
    PolicyGeneration {
        response: PolicyResponse {
            policy: policy.name.clone(),
            policy_namespace: policy.namespace.clone(),
            rules: rules.iter().filter_map(|r| r.response.clone()).collect(),
        },
        rules,
    }
}

/// One generate rule for one request; `None` when the rule has nothing to say about it.
#[allow(clippy::too_many_arguments)]
fn generate_for_request(
    policy: &CompiledPolicy,
    rule: &crate::compile::CompiledRule,
    generate: &Value,
    settings: crate::generate::GenerateSettings,
    request: &Request,
    context: &Value,
    provider: &dyn ContextProvider,
    exceptions: &[CompiledException],
) -> Option<crate::generate::RuleGeneration> {
    use crate::generate::{generate_rule, DownstreamAction, LifecycleEvent, RuleGeneration};
    use crate::request::Operation;
    use crate::response::RuleType;
    use crate::validate::{check_conditions, rule_selects};

    let outcome = |response: Option<RuleResponse>, downstream: DownstreamAction| RuleGeneration {
        rule: rule.name.to_string(),
        settings,
        response,
        resources: Vec::new(),
        downstream,
    };
    let respond = |status: RuleStatus, message: String| {
        Some(RuleResponse::new(
            &rule.name,
            RuleType::Generation,
            status,
            message,
        ))
    };
    let no_longer = settings.decide(LifecycleEvent::TriggerModified {
        still_matches: false,
    });

    if !rule_selects(rule, request) {
        // Only an update that moves the trigger out of the rule's reach matters.
        let was_selected = request.operation == Operation::Update
            && request.old_object.as_ref().is_some_and(|old| {
                let mut view = request.clone();
                view.object = old.clone();
                rule_selects(rule, &view)
            });
        return was_selected.then(|| {
            outcome(
                respond(
                    RuleStatus::Fail,
                    "the resource no longer matches the rule".to_owned(),
                ),
                no_longer,
            )
        });
    }
    if request.operation == Operation::Delete && !names_delete_operation(&rule.source) {
        return Some(outcome(
            None,
            settings.decide(LifecycleEvent::TriggerDeleted),
        ));
    }
    if let Some(exception) = exceptions.iter().find(|e| {
        matches!(
            e.applies(policy, rule, request, (&*context).into()),
            crate::exceptions::ExceptionVerdict::Skip
                | crate::exceptions::ExceptionVerdict::PodSecurity(_)
        )
    }) {
        let mut skipped = RuleResponse::new(
            &rule.name,
            RuleType::Generation,
            RuleStatus::Skip,
            format!("rule skipped due to policy exception {}", exception.key()),
        );
        skipped.exception = Some(exception.key());
        return Some(outcome(Some(skipped), DownstreamAction::Keep));
    }
    let mut rule_ctx = context.clone();
    if let Err(e) = prepare_rule_context(&mut rule_ctx, policy, rule, provider) {
        return Some(outcome(
            respond(RuleStatus::Error, format!("failed to load context: {e}")),
            DownstreamAction::Keep,
        ));
    }
    if let Some(preconditions) = &rule.preconditions {
        match check_conditions(preconditions, &rule_ctx) {
            Err(e) => {
                return Some(outcome(
                    respond(
                        RuleStatus::Error,
                        format!("failed to evaluate preconditions: {e}"),
                    ),
                    DownstreamAction::Keep,
                ))
            }
            Ok((false, message)) => {
                // Preconditions that held for the old object and fail now end the trigger's
                // downstream objects, as a trigger that stopped matching does.
                let held_before = request.operation == Operation::Update
                    && request.old_object.as_ref().is_some_and(|old| {
                        let mut old_ctx = rule_ctx.clone();
                        crate::mutate::set_request_object(&mut old_ctx, old);
                        matches!(check_conditions(preconditions, &old_ctx), Ok((true, _)))
                    });
                if held_before {
                    return Some(outcome(
                        respond(
                            RuleStatus::Fail,
                            "preconditions no longer met by the resource".to_owned(),
                        ),
                        no_longer,
                    ));
                }
                let text = match message.filter(|m| !m.is_empty()) {
                    Some(m) => format!("preconditions not met: {m}"),
                    None => "preconditions not met".to_owned(),
                };
                return Some(outcome(
                    respond(RuleStatus::Skip, text),
                    DownstreamAction::Keep,
                ));
            }
            Ok((true, _)) => {}
        }
    }
    let (response, resources) = generate_rule(
        policy,
        &rule.name,
        generate,
        request.resource(),
        &rule_ctx,
        provider,
    );
    let downstream = match request.operation {
        Operation::Update => settings.decide(LifecycleEvent::TriggerModified {
            still_matches: true,
        }),
        _ => DownstreamAction::Keep,
    };
    let mut result = outcome(Some(response), downstream);
    result.resources = resources;
    Some(result)
}

/// Whether a rule's match block lists DELETE among its operations (a rule that generates when
/// its trigger is deleted).
fn names_delete_operation(rule_source: &Value) -> bool {
    let Some(block) = rule_source.get("match") else {
        return false;
    };
    let filters = ["any", "all"]
        .iter()
        .filter_map(|k| block.get(*k).and_then(Value::as_array))
        .flatten()
        .chain(std::iter::once(block));
    filters
        .filter_map(|f| f.pointer("/resources/operations").and_then(Value::as_array))
        .flatten()
        .any(|op| {
            op.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("DELETE"))
        })
}

#[cfg(test)]
mod context_tests {
    use super::*;
    use crate::compile::compile_policy;
    use serde_json::json;

    fn policy(name: &str, validate: Value) -> CompiledPolicy {
        compile_policy(&json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": name},
            "spec": {"rules": [{"name": "r",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": validate}]}
        }))
        .unwrap()
    }

    #[test]
    fn verify_images_rules_that_select_the_request_are_errors() {
        let policy = compile_policy(&json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "signed"},
            "spec": {"rules": [
                {"name": "pods", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                 "verifyImages": [{"imageReferences": ["*"]}]},
                {"name": "jobs", "match": {"any": [{"resources": {"kinds": ["Job"]}}]},
                 "verifyImages": [{"imageReferences": ["*"]}]},
                {"name": "plain", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                 "validate": {"pattern": {"metadata": {"name": "?*"}}}}
            ]}
        }))
        .unwrap();
        let pod = Request::create(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}
        }));
        let response = unevaluated_rules(&policy, &pod);
        let names: Vec<&str> = response.rules.iter().map(|r| &*r.name).collect();
        // `jobs` does not select a Pod; `plain` is evaluated by validation.
        assert_eq!(names, ["pods"]);
        assert_eq!(response.rules[0].status, RuleStatus::Error);
        assert_eq!(
            response.rules[0].message,
            "unsupported in bylaw: verifyImages; the rule cannot be evaluated"
        );
    }

    #[test]
    fn images_are_computed_only_when_a_policy_mentions_them() {
        let plain = policy("plain", json!({"pattern": {"metadata": {"name": "?*"}}}));
        let tagged = policy(
            "tagged",
            json!({"deny": {"conditions": {"any": [{
                "key": "{{ images.containers.web.tag }}", "operator": "Equals", "value": "latest"}]}}}),
        );
        assert!(!plain.uses_images);
        assert!(tagged.uses_images);
        // A podSecurity exclusion's `images` field and a description are not references.
        let excluding = compile_policy(&json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "excluding", "annotations": {
                "policies.kyverno.io/description": "exempts some container images"}},
            "spec": {"rules": [{"name": "r",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"podSecurity": {"level": "restricted", "version": "latest",
                    "exclude": [{"controlName": "Capabilities", "images": ["nginx*"]}]}}}]}
        }))
        .unwrap();
        assert!(!excluding.uses_images);
        let pod = Request::create(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}
        }));
        let without = PolicySet::new(vec![plain.clone()], Vec::new());
        assert!(without.context_for(&pod).get("images").is_none());
        let with = PolicySet::new(vec![plain, tagged], Vec::new());
        assert_eq!(
            with.context_for(&pod)["images"]["containers"]["web"]["tag"],
            "latest"
        );
        // The deny rule still sees the image through the set's context.
        let responses = with.validate(&pod, &crate::context::NoContext);
        let tagged_rule = &responses[1].rules[0];
        assert_eq!(
            tagged_rule.status,
            RuleStatus::Fail,
            "{}",
            tagged_rule.message
        );
    }

    fn statuses_for(policy: CompiledPolicy, pod: Value) -> Vec<(RuleStatus, String)> {
        let set = PolicySet::new(vec![policy], Vec::new());
        set.validate(&Request::create(pod), &crate::context::NoContext)
            .into_iter()
            .flat_map(|p| p.rules)
            .map(|r| (r.status, r.message))
            .collect()
    }

    fn web_pod(containers: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"tier": "web"}},
            "spec": {"containers": containers}
        })
    }

    /// Preconditions are evaluated in order and stop once decided: a later condition whose
    /// variable cannot be resolved is never reached (Kyverno skips the rule).
    #[test]
    fn preconditions_stop_at_the_first_false_all_condition() {
        let with_preconditions = |first_value: &str| {
            let doc = json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": "ordered"},
                "spec": {"rules": [{"name": "r",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "preconditions": {"all": [
                        {"key": "{{ request.object.metadata.labels.tier }}", "operator": "Equals",
                         "value": first_value},
                        {"key": "{{ request.object.spec.missing.deep }}", "operator": "Equals",
                         "value": "x"}
                    ]},
                    "validate": {"deny": {}}}]}
            });
            compile_policy(&doc).unwrap()
        };
        let pod = web_pod(json!([{"name": "c", "image": "nginx"}]));
        let skipped = statuses_for(with_preconditions("db"), pod.clone());
        assert_eq!(skipped[0].0, RuleStatus::Skip, "{}", skipped[0].1);
        // When the first condition holds, the second is reached and cannot be resolved.
        let errored = statuses_for(with_preconditions("web"), pod);
        assert_eq!(errored[0].0, RuleStatus::Error, "{}", errored[0].1);
        assert!(
            errored[0]
                .1
                .starts_with("failed to evaluate preconditions:"),
            "{}",
            errored[0].1
        );
    }

    #[test]
    fn a_present_but_empty_any_list_is_false() {
        let policy = compile_policy(&json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "empty-any"},
            "spec": {"rules": [{"name": "r",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "preconditions": {"any": []},
                "validate": {"deny": {}}}]}
        }))
        .unwrap();
        let statuses = statuses_for(policy, web_pod(json!([])));
        assert_eq!(statuses[0].0, RuleStatus::Skip, "{}", statuses[0].1);
    }

    /// Foreach as Kyverno evaluates it: an element whose preconditions cannot be evaluated is
    /// left out; an element whose preconditions hold and whose check fails fails the rule,
    /// wherever it is in the list; an element whose check errors makes the rule an error.
    #[test]
    fn foreach_elements_with_preconditions() {
        let privileged = policy(
            "privileged",
            json!({"foreach": [{
                "list": "request.object.spec.containers",
                "preconditions": {"all": [
                    {"key": "{{ element.securityContext.privileged }}", "operator": "Equals",
                     "value": true}
                ]},
                "deny": {"conditions": {"all": [
                    {"key": "{{ element.securityContext.allowPrivilegeEscalation }}",
                     "operator": "Equals", "value": true}
                ]}}
            }]}),
        );
        let plain = json!({"name": "plain", "image": "nginx"});
        let escalating = json!({"name": "bad", "image": "nginx",
            "securityContext": {"privileged": true, "allowPrivilegeEscalation": true}});
        let calm = json!({"name": "calm", "image": "nginx",
            "securityContext": {"privileged": true, "allowPrivilegeEscalation": false}});
        let half = json!({"name": "half", "image": "nginx",
            "securityContext": {"privileged": true}});

        let run = |containers: Value| statuses_for(privileged.clone(), web_pod(containers));
        // `plain` has no securityContext: its precondition cannot be resolved, so it is left
        // out whether it comes first or last.
        assert_eq!(run(json!([plain, escalating]))[0].0, RuleStatus::Fail);
        assert_eq!(run(json!([escalating, plain]))[0].0, RuleStatus::Fail);
        assert_eq!(run(json!([calm, plain]))[0].0, RuleStatus::Pass);
        // Only elements left out: no element applied, the rule is skipped.
        assert_eq!(run(json!([plain]))[0].0, RuleStatus::Skip);
        // `half` passes its precondition but its deny condition cannot be resolved: the rule is
        // an error even when a later element would fail.
        let errored = run(json!([half, escalating]));
        assert_eq!(errored[0].0, RuleStatus::Error, "{}", errored[0].1);
        assert!(
            errored[0].1.contains("validation failure:"),
            "{}",
            errored[0].1
        );
    }

    #[test]
    fn a_foreach_list_that_cannot_be_evaluated_is_an_error() {
        let broken = policy(
            "broken",
            json!({"foreach": [{"list": "request.object.spec.containers[", "deny": {}}]}),
        );
        let statuses = statuses_for(broken, web_pod(json!([])));
        assert_eq!(statuses[0].0, RuleStatus::Error, "{}", statuses[0].1);
        assert!(
            statuses[0].1.contains("failed to evaluate list"),
            "{}",
            statuses[0].1
        );
        // A list naming data that does not exist is skipped.
        let missing = policy(
            "missing",
            json!({"foreach": [{"list": "request.object.spec.initContainers", "deny": {}}]}),
        );
        assert_eq!(
            statuses_for(missing, web_pod(json!([])))[0].0,
            RuleStatus::Skip
        );
    }

    #[test]
    fn nested_foreach_sees_the_outer_element_by_level() {
        let nested = policy(
            "ports",
            json!({"foreach": [{"list": "request.object.spec.containers", "foreach": [{
                "list": "element.ports",
                "deny": {"conditions": {"all": [
                    {"key": "{{ element0.name }}", "operator": "Equals", "value": "web"},
                    {"key": "{{ element.containerPort }}", "operator": "Equals", "value": 80},
                    {"key": "{{ elementIndex1 }}", "operator": "Equals", "value": 0}
                ]}}
            }]}]}),
        );
        assert!(nested.uses_nested_elements);
        let pod = |name: &str| {
            Request::create(json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
                "spec": {"containers": [
                    {"name": "sidecar", "image": "proxy:1", "ports": [{"containerPort": 15000}]},
                    {"name": name, "image": "nginx:1", "ports": [{"containerPort": 80}]}
                ]}
            }))
        };
        let set = PolicySet::new(vec![nested], Vec::new());
        let denied = set.validate(&pod("web"), &crate::context::NoContext);
        assert_eq!(
            denied[0].rules[0].status,
            RuleStatus::Fail,
            "{}",
            denied[0].rules[0].message
        );
        let allowed = set.validate(&pod("api"), &crate::context::NoContext);
        assert_eq!(
            allowed[0].rules[0].status,
            RuleStatus::Pass,
            "{}",
            allowed[0].rules[0].message
        );
    }
}

/// What a YAML document is to the engine.
#[derive(Debug)]
pub enum CompiledDocument {
    Policy(Box<CompiledPolicy>),
    Exception(Box<CompiledException>),
    /// Any other document (resources, CEL policy kinds, …): nothing to compile.
    Other,
}

/// Compiles a `kyverno.io` ClusterPolicy, Policy or PolicyException, a `policies.kyverno.io`
/// ValidatingPolicy or NamespacedValidatingPolicy, or an `admissionregistration.k8s.io`
/// ValidatingAdmissionPolicy (without bindings, see
/// [`crate::cel::policy::compile_admission_policy`]); other documents are `Other`. Errors name
/// the field path.
pub fn compile_document(doc: &Value) -> Result<CompiledDocument, crate::compile::CompileError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let group = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.split_once('/'))
        .map_or("", |(group, _)| group);
    match (kind, group) {
        ("ClusterPolicy" | "Policy", "kyverno.io") => Ok(CompiledDocument::Policy(Box::new(
            crate::compile::compile_policy(doc)?,
        ))),
        ("PolicyException", "kyverno.io") => Ok(CompiledDocument::Exception(Box::new(
            CompiledException::compile(doc)?,
        ))),
        ("ValidatingPolicy" | "NamespacedValidatingPolicy", crate::cel::policy::POLICY_GROUP) => {
            Ok(CompiledDocument::Policy(Box::new(
                crate::cel::policy::compile_validating_policy(doc)?,
            )))
        }
        ("ValidatingAdmissionPolicy", crate::cel::policy::ADMISSION_GROUP) => {
            Ok(CompiledDocument::Policy(Box::new(
                crate::cel::policy::compile_admission_policy(doc, &[])?,
            )))
        }
        _ => Ok(CompiledDocument::Other),
    }
}
