//! Evaluation of validate rules: match/exclude, exceptions, context entries, preconditions and
//! the rule's check (pattern, anyPattern, deny, foreach, podSecurity), with Kyverno's outcomes.

use crate::json::Lookup;
use std::borrow::Cow;
use std::cell::RefCell;

use serde_json::{Map, Value};

use crate::compile::{
    CompiledPolicy, CompiledRule, ConditionBlock, ForeachValidate, PatternSource, PodSecurityRule,
    RawCondition, RuleBody, ValidateCheck, ValidateRule,
};
use crate::conditions::{self, Condition};
use crate::context::{add_variable, substitute_text, ContextProvider};
use crate::exceptions::{CompiledException, ExceptionVerdict};
use crate::jmespath::Scope;
use crate::pattern::{Pattern, PatternOutcome};
use crate::podsecurity;
use crate::request::Request;
use crate::response::{PolicyResponse, RuleResponse, RuleStatus, RuleType};
use crate::{jmespath, variables};

/// Inputs that are the same for every policy evaluated against one request.
pub struct Evaluation<'a, 'm> {
    pub request: &'a Request,
    pub provider: &'a dyn ContextProvider,
    pub exceptions: &'a [CompiledException],
    /// The request's objects, when the context document holds only placeholders for them
    /// ([`crate::context::request_context_without_objects`]); `None` when it holds them.
    pub objects: Option<[(&'static str, &'a Value); 2]>,
    /// Results shared by the policies validating this request.
    pub memo: &'a RequestMemo<'m>,
}

/// What the policies validating one request share: the results of the Pod Security checks,
/// which podSecurity rules of several policies run against the same pod. It borrows the
/// request, so the request cannot change while the results are kept; with any other request
/// it is not used.
pub struct RequestMemo<'r> {
    request: &'r Request,
    pod_security: podsecurity::CheckRuns,
    /// foreach lists that start with `request.object`, by expression: rules of several
    /// policies often walk the same list (`request.object.spec.containers`). Each is the
    /// elements as the first rule found them, borrowed from the request's object.
    object_lists: ObjectLists<'r>,
    /// Whether passing rules get Kyverno's "validation rule '…' passed." message.
    pass_messages: bool,
    /// Answers of rule preconditions that read only `request`, by block: most of the
    /// library's policies open with the same `request.operation` precondition.
    preconditions: RefCell<Vec<(&'r ConditionBlock, PreconditionAnswer)>>,
}

type PreconditionAnswer = (bool, Option<String>);

type ObjectLists<'r> = RefCell<Vec<(&'r jmespath::Expression, Vec<Cow<'r, Value>>)>>;

impl<'r> RequestMemo<'r> {
    pub fn new(request: &'r Request) -> Self {
        RequestMemo {
            request,
            pod_security: podsecurity::CheckRuns::default(),
            object_lists: RefCell::default(),
            pass_messages: true,
            preconditions: RefCell::default(),
        }
    }

    /// A rule's preconditions `block` against `request`: answered once per request for every
    /// block that says the same, when the block reads only `request` and the caller knows
    /// the rule has not written under `request` (its values or context entries). Errors are
    /// not kept: `evaluate` runs again and says why.
    fn preconditions(
        &self,
        block: &'r ConditionBlock,
        request: &Request,
        evaluate: impl FnOnce() -> Result<PreconditionAnswer, String>,
    ) -> Result<PreconditionAnswer, String> {
        if !block.reads_only_request || !std::ptr::eq(self.request, request) {
            return evaluate();
        }
        if let Ok(kept) = self.preconditions.try_borrow() {
            if let Some((_, answer)) = kept.iter().find(|(kept, _)| kept.same_conditions(block)) {
                return Ok(answer.clone());
            }
        }
        let answer = evaluate()?;
        if let Ok(mut kept) = self.preconditions.try_borrow_mut() {
            kept.push((block, answer.clone()));
        }
        Ok(answer)
    }

    /// Passing rules answer with an empty message: for a caller that shows no message for a
    /// pass (the admission webhook, whose reports, events, warnings and logs say nothing of
    /// one), where building and freeing one per rule and review was measured in the server.
    #[must_use]
    pub fn without_pass_messages(mut self) -> Self {
        self.pass_messages = false;
        self
    }

    /// `<lead><name>' passed.` when pass messages are wanted, empty otherwise.
    fn passed(&self, lead: &str, name: &str) -> String {
        if self.pass_messages {
            passed(lead, name)
        } else {
            String::new()
        }
    }

    /// The elements of a foreach list searched where `request.object` is `object`: kept for
    /// the request when `object` is this memo's request's object and the list depends on it
    /// alone ([`jmespath::Expression::depends_on_request_object_alone`]); `None` for any
    /// other list, which is searched as usual.
    fn object_list(
        &self,
        list: &'r jmespath::Expression,
        object: &Value,
    ) -> Option<Result<Vec<Cow<'r, Value>>, jmespath::JmespathError>> {
        if !list.depends_on_request_object_alone() || !std::ptr::eq(object, &self.request.object) {
            return None;
        }
        if let Ok(kept) = self.object_lists.try_borrow() {
            if let Some((_, elements)) = kept.iter().find(|(kept, _)| kept.same_expression(list)) {
                return Some(Ok(elements.clone()));
            }
        }
        let object: &'r Value = &self.request.object;
        let elements = list.elements_from_request_object(object, &jmespath::SystemEnv)?;
        if let (Ok(found), Ok(mut kept)) = (&elements, self.object_lists.try_borrow_mut()) {
            kept.push((list, found.clone()));
        }
        Some(elements)
    }

    fn pod_security_for(&self, request: &Request) -> Option<&podsecurity::CheckRuns> {
        std::ptr::eq(self.request, request).then_some(&self.pod_security)
    }
}

/// Whether a policy applies to the request's namespace at all (a namespaced Policy only ever
/// applies inside its own namespace).
pub fn policy_applies(policy: &CompiledPolicy, request: &Request) -> bool {
    match &policy.namespace {
        Some(ns) => request.namespace() == ns,
        None => true,
    }
}

/// Whether a rule selects the request (match, and not exclude).
pub fn rule_selects(rule: &CompiledRule, request: &Request) -> bool {
    if let Some(kinds) = &rule.match_kinds {
        let kind = request.kind.kind.as_str();
        if !kinds.iter().any(|k| crate::json::same_key(k, kind)) {
            return false;
        }
    }
    // The shortcut answers only for a request the kind pre-filter above let through.
    let matched = if rule.match_by_kinds_alone && rule.match_kinds.is_some() {
        crate::matching::selects_main_resource(request)
    } else {
        rule.match_block.matches(request)
    };
    matched && !rule.exclude_block.excludes(request)
}

/// Evaluates every validate rule of a policy. Rules that do not select the resource produce no
/// response, as in Kyverno.
///
/// `ctx` is the request's context document (see [`crate::context::request_context`]). Rules add
/// to it (context entries, foreach elements) and take their additions back before returning, so
/// one document serves every rule and policy of a request without copies.
pub fn validate_policy<'m>(
    policy: &'m CompiledPolicy,
    eval: &Evaluation<'_, 'm>,
    ctx: &mut Value,
) -> PolicyResponse {
    let mut rules = Vec::new();
    if policy_applies(policy, eval.request) {
        let main_resource = crate::matching::selects_main_resource(eval.request);
        for (rule, by_kind_alone) in policy.rules_for_kind_marked(&eval.request.kind.kind) {
            let RuleBody::Validate(validate) = &rule.body else {
                continue;
            };
            let selected = if by_kind_alone {
                main_resource
            } else {
                rule_selects(rule, eval.request)
            };
            if !selected {
                continue;
            }
            if let Some(response) = validate_rule(policy, rule, validate, eval, ctx) {
                rules.push(response);
            }
        }
    }
    PolicyResponse {
        policy: policy.name.clone(),
        policy_namespace: policy.namespace.clone(),
        rules,
    }
}

/// Evaluates one selected rule. `None` where Kyverno produces no response at all (pattern and
/// podSecurity rules on DELETE).
fn validate_rule<'m>(
    policy: &'m CompiledPolicy,
    rule: &'m CompiledRule,
    validate: &'m ValidateRule,
    eval: &Evaluation<'_, 'm>,
    ctx: &mut Value,
) -> Option<RuleResponse> {
    let deleting = eval.request.operation == crate::request::Operation::Delete;
    if deleting
        && matches!(
            validate.check,
            ValidateCheck::Pattern(_)
                | ValidateCheck::AnyPattern(_)
                | ValidateCheck::PodSecurity(_)
        )
    {
        return None;
    }
    // A CEL policy's match constraints decide whether it says anything at all.
    if let ValidateCheck::Cel(cel) = &validate.check {
        if cel
            .constraints
            .as_ref()
            .is_some_and(|c| !c.matches(eval.request))
        {
            return None;
        }
    }
    let mut pod_security_exception = None;
    for exception in eval.exceptions {
        let scope = crate::context::scope_over(ctx, eval.objects.as_ref());
        match exception.applies(policy, rule, eval.request, scope) {
            ExceptionVerdict::NotApplicable => {}
            ExceptionVerdict::Skip => {
                return Some(skipped_by_exception(&rule.name, exception.key()));
            }
            ExceptionVerdict::PodSecurity(exclusions) => {
                if pod_security_exception.is_none() {
                    pod_security_exception = Some((exception.key(), exclusions));
                }
            }
        }
    }
    let mut scope = RuleScope {
        policy,
        rule,
        eval,
        ctx,
        saved: Vec::new(),
        pod_security_exception,
        objects: eval.objects,
    };
    Some(match scope.run(validate) {
        Ok(response) => response,
        Err(err) => RuleResponse::new(&rule.name, RuleType::Validation, RuleStatus::Error, err),
    })
}

fn skipped_by_exception(rule: &std::sync::Arc<str>, key: String) -> RuleResponse {
    let mut response = RuleResponse::new(
        rule,
        RuleType::Validation,
        RuleStatus::Skip,
        format!("rule skipped due to policy exception {key}"),
    );
    response.exception = Some(key);
    response
}

/// A rule's evaluation state. It writes into the request's shared context document and
/// records the old value of every top-level key it touches; dropping the scope puts them back.
struct RuleScope<'p, 'e, 'c, 'm> {
    policy: &'m CompiledPolicy,
    rule: &'m CompiledRule,
    eval: &'p Evaluation<'e, 'm>,
    ctx: &'c mut Value,
    /// Top-level context keys this rule changed, with what they held before (restored in
    /// reverse order).
    saved: Vec<(String, Option<Value>)>,
    /// A PolicyException with podSecurity exclusions that matched: a failing podSecurity check
    /// is re-checked with them and becomes a skip if nothing is left.
    pod_security_exception: Option<(String, Vec<podsecurity::Exclusion>)>,
    /// The request's objects while they are bound over the document's placeholders; `None`
    /// once this rule writes under `request` (see [`RuleScope::writing`]).
    objects: Option<[(&'static str, &'e Value); 2]>,
}

type Outcome = Result<RuleResponse, String>;

/// `<lead><name>' passed.`, Kyverno's message for a rule that passed. Every passing rule of
/// every request builds one; a concatenation costs a fraction of `format!`.
fn passed(lead: &str, name: &str) -> String {
    [lead, name, "' passed."].concat()
}

impl Drop for RuleScope<'_, '_, '_, '_> {
    fn drop(&mut self) {
        self.restore_to(0);
    }
}

impl<'m> RuleScope<'_, '_, '_, 'm> {
    /// The context as searches see it (the request's objects bound over it when the document
    /// holds placeholders).
    fn ctx(&self) -> Scope<'_> {
        crate::context::scope_over(self.ctx, self.objects.as_ref())
    }

    /// Before this rule writes the variable `dotted`: a write under `request` must see (and
    /// merge into) the request's real objects, so they are copied over their placeholders and
    /// no longer bound for the rest of the rule. Rules almost never do this.
    fn writing(&mut self, dotted: &str) {
        if self.objects.is_some() && crate::context::variable_root(dotted) == "request" {
            if let Some(objects) = self.objects.take() {
                crate::context::fill_placeholders(self.ctx, &objects);
            }
        }
    }

    /// Remembers a top-level key's current value unless this scope level (entries from
    /// `mark` on) already did.
    fn remember(&mut self, dotted: &str, mark: usize) {
        let root = crate::context::variable_root(dotted);
        let top = root.as_ref();
        let known = self
            .saved
            .get(mark..)
            .is_some_and(|level| level.iter().any(|(k, _)| k == top));
        if !known {
            let old = self.ctx.get(top).cloned();
            self.saved.push((top.to_owned(), old));
        }
    }

    /// Sets a (dotted) variable, remembering what it replaces at the scope level `mark`.
    fn set_var(&mut self, dotted: &str, value: Value, mark: usize) {
        self.writing(dotted);
        let top_level = !dotted.contains(['.', '"']);
        if let (true, Value::Object(map)) = (top_level, &mut *self.ctx) {
            // A top-level name: what it replaces is moved out rather than copied.
            let known = self
                .saved
                .get(mark..)
                .is_some_and(|level| level.iter().any(|(k, _)| k == dotted));
            let old = map.insert(dotted.to_owned(), value);
            if !known {
                self.saved.push((dotted.to_owned(), old));
            }
            return;
        }
        self.remember(dotted, mark);
        add_variable(self.ctx, dotted, value);
    }

    /// Puts back every key remembered from `mark` on.
    fn restore_to(&mut self, mark: usize) {
        while self.saved.len() > mark {
            let Some((key, old)) = self.saved.pop() else {
                break;
            };
            if let Value::Object(map) = &mut *self.ctx {
                match old {
                    Some(value) => {
                        map.insert(key, value);
                    }
                    None => {
                        map.remove(&key);
                    }
                }
            }
        }
    }

    fn run(&mut self, validate: &'m ValidateRule) -> Outcome {
        let rule = self.rule;
        let name = &rule.name;
        // Values files stand in for context entries: they go in first, then entries that can be
        // computed offline (variables) are loaded on top, as in Kyverno's CLI.
        let values = self
            .eval
            .provider
            .rule_values(&self.policy.name, &rule.name);
        if let Some(values) = values {
            for (key, value) in values {
                self.set_var(key, value.clone(), 0);
            }
        }
        self.load_context(&rule.context, 0)
            .map_err(|e| format!("failed to load context: {e}"))?;

        if let Some(pre) = &rule.preconditions {
            let evaluate = || check_conditions(pre, self.ctx());
            // Still bound over the document means nothing of this rule (values, context
            // entries) wrote under `request`: it sees the request as every other rule does.
            let answer = if self.objects.is_some() {
                self.eval
                    .memo
                    .preconditions(pre, self.eval.request, evaluate)
            } else {
                evaluate()
            };
            let (passed, message) =
                answer.map_err(|e| format!("failed to evaluate preconditions: {e}"))?;
            if !passed {
                let text = match message {
                    Some(m) => format!("preconditions not met: {m}"),
                    None => "preconditions not met".to_owned(),
                };
                return Ok(RuleResponse::new(
                    name,
                    RuleType::Validation,
                    RuleStatus::Skip,
                    text,
                ));
            }
        }

        if let ValidateCheck::PodSecurity(ps) = &validate.check {
            return Ok(self.pod_security(ps));
        }
        if let ValidateCheck::Cel(cel) = &validate.check {
            return Ok(self.cel(cel));
        }
        let resource = self.eval.request.resource();
        let result = self.check(&validate.check, resource, 0)?;
        Ok(self.respond(result))
    }

    /// Turns a check result into the rule response with Kyverno-shaped messages, plus the
    /// offending field and what was expected there.
    fn respond(&self, result: CheckResult) -> RuleResponse {
        let name = &self.rule.name;
        match result {
            CheckResult::Pass => RuleResponse::new(
                name,
                RuleType::Validation,
                RuleStatus::Pass,
                self.eval.memo.passed("validation rule '", name),
            ),
            CheckResult::Skip(reason) => {
                RuleResponse::new(name, RuleType::Validation, RuleStatus::Skip, reason)
            }
            CheckResult::Fail {
                message,
                path,
                detail,
            } => {
                let text =
                    message.unwrap_or_else(|| self.pattern_message(path.as_deref(), self.ctx()));
                let mut response =
                    RuleResponse::new(name, RuleType::Validation, RuleStatus::Fail, text);
                response.path = path;
                response.detail = detail.filter(|d| !d.is_empty());
                response
            }
        }
    }

    /// The rule's `validate.message` as written.
    fn message_template(&self) -> Option<&str> {
        match &self.rule.body {
            RuleBody::Validate(validate) => validate.message.as_deref(),
            _ => None,
        }
    }

    /// The rule's `message`, variables substituted; `None` when it has none (or it is empty).
    fn rule_message(&self, vars: Scope<'_>) -> Option<String> {
        self.message_template()
            .map(|m| self.substitute_message(m, vars))
            .filter(|m| !m.is_empty())
    }

    /// Kyverno's message for a pattern that failed at `path`.
    fn pattern_message(&self, path: Option<&str>, vars: Scope<'_>) -> String {
        let name = &self.rule.name;
        let path = path.unwrap_or_default();
        match self.rule_message(vars) {
            Some(m) => {
                let m = if m.ends_with('.') { m } else { format!("{m}.") };
                format!("validation error: {m} rule {name} failed at path {path}")
            }
            None => format!("validation error: rule {name} failed at path {path}"),
        }
    }

    /// Kyverno's message for a denied request: the rule's message and the failed conditions'
    /// messages, joined.
    fn deny_message(&self, conditions: Option<String>, vars: Scope<'_>) -> String {
        let parts: Vec<String> = [self.message_template().map(str::to_owned), conditions]
            .into_iter()
            .flatten()
            .filter(|m| !m.is_empty())
            .collect();
        if parts.is_empty() {
            return format!("validation error: rule {} failed", self.rule.name);
        }
        self.substitute_message(&parts.join("; "), vars)
    }

    /// Kyverno's message for an `anyPattern` none of whose patterns held.
    fn any_pattern_message(&self, failures: &[String], vars: Scope<'_>) -> String {
        let failures = failures.join(" ");
        match self.rule_message(vars) {
            None => format!("validation error: {failures}"),
            Some(m) if m.ends_with('.') => format!("validation error: {m} {failures}"),
            Some(m) => format!("validation error: {m}. {failures}"),
        }
    }

    fn substitute_message(&self, message: &str, vars: Scope<'_>) -> String {
        match variables::substitute_str(message, vars) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => message.to_owned(),
        }
    }

    /// Loads context entries in order; each may use the ones before it. The keys they set are
    /// remembered at scope level `mark`.
    fn load_context(&mut self, entries: &[Value], mark: usize) -> Result<(), String> {
        for entry in entries {
            if let Some(name) = entry.field("name").and_then(Value::as_str) {
                self.remember(name, mark);
                self.writing(name);
            }
        }
        crate::context::load_entries_over(
            entries,
            self.ctx,
            self.objects.as_ref(),
            self.eval.provider,
        )
    }

    fn check(
        &mut self,
        check: &'m ValidateCheck,
        target: &Value,
        depth: usize,
    ) -> Result<CheckResult, String> {
        match check {
            ValidateCheck::Foreach(entries) => self.foreach(entries, depth),
            other => self.check_target(other, target, self.ctx()),
        }
    }

    /// The checks that read the context but do not change it (all but foreach); `vars` is the
    /// context with whatever foreach binds over it.
    fn check_target(
        &self,
        check: &ValidateCheck,
        target: &Value,
        vars: Scope<'_>,
    ) -> Result<CheckResult, String> {
        match check {
            ValidateCheck::Pattern(source) => {
                let pattern = self.pattern(source, vars)?;
                Ok(match pattern.validate(target) {
                    PatternOutcome::Pass => CheckResult::Pass,
                    PatternOutcome::Skip { detail, .. } => {
                        CheckResult::Skip(format!("rule skipped: {detail}"))
                    }
                    PatternOutcome::Fail { path, detail } => CheckResult::Fail {
                        message: None,
                        path: Some(path),
                        detail: Some(detail),
                    },
                })
            }
            ValidateCheck::AnyPattern(sources) => {
                let mut failures = Vec::new();
                let mut details = Vec::new();
                let mut skips = 0usize;
                for (index, source) in sources.iter().enumerate() {
                    let pattern = self.pattern(source, vars)?;
                    match pattern.validate(target) {
                        PatternOutcome::Pass => return Ok(CheckResult::Pass),
                        PatternOutcome::Skip { .. } => skips += 1,
                        PatternOutcome::Fail { path, detail } => {
                            failures.push(format!(
                                "rule {}[{index}] failed at path {path}",
                                self.rule.name
                            ));
                            details.push(format!("[{index}] {detail}"));
                        }
                    }
                }
                if skips == sources.len() {
                    return Ok(CheckResult::Skip(
                        "rule skipped: no pattern applied".to_owned(),
                    ));
                }
                Ok(CheckResult::Fail {
                    message: Some(self.any_pattern_message(&failures, vars)),
                    path: None,
                    detail: Some(details.join("; ")),
                })
            }
            ValidateCheck::Deny(block) => {
                let (denied, message) = check_conditions(block, vars)
                    .map_err(|e| format!("failed to check deny conditions: {e}"))?;
                if denied {
                    Ok(CheckResult::Fail {
                        message: Some(self.deny_message(message, vars)),
                        path: None,
                        detail: None,
                    })
                } else {
                    Ok(CheckResult::Pass)
                }
            }
            ValidateCheck::Foreach(_) => {
                Err("foreach is evaluated by check, not check_target".to_owned())
            }
            ValidateCheck::PodSecurity(_) => {
                Err("podSecurity is only allowed at the top of a validate rule".to_owned())
            }
            ValidateCheck::Cel(_) => {
                Err("cel is only allowed at the top of a validate rule".to_owned())
            }
            ValidateCheck::Unsupported(feature) => {
                Err(crate::compile::unsupported_message(feature))
            }
        }
    }

    /// The pattern to check: the compiled one, borrowed (a reference count bumped per rule
    /// and review was a cache line both server threads wrote), or one compiled after
    /// substitution.
    fn pattern<'s>(
        &self,
        source: &'s PatternSource,
        vars: Scope<'_>,
    ) -> Result<Cow<'s, Pattern>, String> {
        match source {
            PatternSource::Static(p) => Ok(Cow::Borrowed(p)),
            PatternSource::Dynamic(raw) => {
                let substituted = variables::substitute_all(raw, vars)
                    .map_err(|e| format!("variable substitution failed: {e}"))?;
                Pattern::compile(&substituted)
                    .map(Cow::Owned)
                    .map_err(|e| format!("invalid pattern after substitution: {e}"))
            }
        }
    }

    /// Evaluates CEL validations; their outcome is the rule's response.
    fn cel(&self, cel: &crate::cel::rule::CelRule) -> RuleResponse {
        use crate::cel::rule::{self, CelOutcome, Inputs};
        let request = self.eval.request;
        let request_doc = rule::request_document(request);
        let namespace_object = rule::namespace_object(cel.flavor, request, self.eval.provider);
        let exceptions = rule::no_exceptions();
        let inputs = Inputs {
            request,
            request_doc: &request_doc,
            namespace_object: &namespace_object,
            provider: self.eval.provider,
            exceptions: &exceptions,
        };
        let name = &self.rule.name;
        let respond =
            |status, message| RuleResponse::new(name, RuleType::Validation, status, message);
        match cel.evaluate(&inputs) {
            CelOutcome::Pass(message) if message.is_empty() => respond(
                RuleStatus::Pass,
                self.eval.memo.passed("validation rule '", name),
            ),
            CelOutcome::Pass(message) => respond(RuleStatus::Pass, message),
            CelOutcome::Fail { message, .. } => respond(RuleStatus::Fail, message),
            CelOutcome::Skip(message) => respond(RuleStatus::Skip, message),
            CelOutcome::Error(message) => respond(RuleStatus::Error, message),
        }
    }

    fn pod_security(&self, ps: &PodSecurityRule) -> RuleResponse {
        let name = &self.rule.name;
        let target = self.eval.request.resource();
        let Some((metadata, spec)) = podsecurity::pod_parts(target) else {
            return RuleResponse::new(
                name,
                RuleType::Validation,
                RuleStatus::Error,
                format!(
                    "podSecurity applies to Pods and pod controllers, not {}",
                    self.eval.request.kind.kind
                ),
            );
        };
        let runs = self.eval.memo.pod_security_for(self.eval.request);
        let evaluate = |exclusions: &[podsecurity::Exclusion]| match runs {
            Some(runs) => runs.evaluate(ps.level, &ps.version, metadata, spec, exclusions),
            None => podsecurity::evaluate(ps.level, &ps.version, metadata, spec, exclusions),
        };
        let mut violations = evaluate(&ps.exclusions);
        if violations.is_empty() {
            return RuleResponse::new(
                name,
                RuleType::Validation,
                RuleStatus::Pass,
                self.eval.memo.passed("Validation rule '", name),
            );
        }
        if let Some((key, extra)) = &self.pod_security_exception {
            let all: Vec<podsecurity::Exclusion> =
                ps.exclusions.iter().chain(extra.iter()).cloned().collect();
            if evaluate(&all).is_empty() {
                return skipped_by_exception(name, key.clone());
            }
        }
        podsecurity::rewrite_paths_for_kind(&mut violations, &self.eval.request.kind.kind);
        let path = violations.first().and_then(|v| v.fields.first().cloned());
        let mut response = RuleResponse::new(
            name,
            RuleType::Validation,
            RuleStatus::Fail,
            podsecurity::failure_message(name, ps.level, &ps.version, &violations),
        );
        response.path = path;
        response
    }

    /// Kyverno's foreach: a list that fails to evaluate is passed over; per element the context
    /// is reset, elements whose preconditions fail or that skip are not counted, a failure ends
    /// the rule, an error ends it only on the last element; nothing counted means skip.
    /// `validate.foreach`, as Kyverno evaluates it: each entry's list is queried (a list whose
    /// data does not exist is skipped); every non-null element is checked in turn. An element
    /// whose preconditions do not hold (or cannot be evaluated) or whose check skips is left
    /// out; the first element that fails, or errors otherwise, decides the rule. A rule for which
    /// no element applied is skipped — or an error, when a list could not be evaluated.
    fn foreach(
        &mut self,
        entries: &'m [ForeachValidate],
        depth: usize,
    ) -> Result<CheckResult, String> {
        let mut applied = 0usize;
        let mut list_error = None;
        for entry in entries {
            let foreach_values = self
                .eval
                .provider
                .foreach_values(&self.policy.name, &self.rule.name)
                .cloned();
            // An entry that only reads its elements binds them over the context; one that
            // loads context entries, values or a nested foreach writes them into it.
            let read_only = entry.context.is_empty()
                && foreach_values.is_none()
                && !matches!(entry.check, ValidateCheck::Foreach(_));
            if read_only {
                match self.foreach_bound(entry, depth) {
                    Ok(counted) => applied += counted,
                    Err(EntryEnd::NotFound) => {}
                    Err(EntryEnd::ListError(err)) => list_error = Some(err),
                    Err(EntryEnd::Decided(result)) => return result,
                }
                continue;
            }
            let elements = match self.foreach_list(entry) {
                Ok(elements) => elements,
                Err(ListError::NotFound) => continue,
                Err(ListError::Other(err)) => {
                    list_error = Some(err);
                    continue;
                }
            };
            for (index, element) in elements.into_iter().enumerate() {
                if element.is_null() {
                    continue;
                }
                crate::deadline::check_after_work()?;
                let mark = self.saved.len();
                let result = self.foreach_element(
                    entry,
                    element,
                    index,
                    depth,
                    foreach_values.as_ref(),
                    mark,
                );
                self.restore_to(mark);
                match self.tally(entry, index, result) {
                    Tally::Counted => applied += 1,
                    Tally::Ignored => {}
                    Tally::Decided(result) => return result,
                }
            }
        }
        if applied == 0 {
            return match list_error {
                Some(err) => Err(format!("failed to evaluate list: {err}")),
                None => Ok(CheckResult::Skip("rule skipped".to_owned())),
            };
        }
        Ok(CheckResult::Pass)
    }

    /// What one element's outcome does to its foreach: a failure ends the rule, an error ends
    /// it unless it was only the element's preconditions, a pass counts.
    fn tally(
        &self,
        entry: &ForeachValidate,
        index: usize,
        result: Result<CheckResult, ElementError>,
    ) -> Tally {
        match result {
            Ok(CheckResult::Pass) => Tally::Counted,
            Ok(CheckResult::Skip(_)) | Err(ElementError::Preconditions) => Tally::Ignored,
            Ok(CheckResult::Fail {
                message,
                path,
                detail,
            }) => {
                // Kyverno reports the element's own message behind "validation failure:";
                // bylaw's detail says which element it was.
                let element =
                    message.unwrap_or_else(|| self.pattern_message(path.as_deref(), self.ctx()));
                let at = format!("element {index} of {}", entry.list);
                Tally::Decided(Ok(CheckResult::Fail {
                    message: Some(format!("validation failure: {element}")),
                    path,
                    detail: Some(match detail {
                        Some(d) => format!("{at}: {d}"),
                        None => at,
                    }),
                }))
            }
            Err(ElementError::Scope(err)) => {
                Tally::Decided(Err(format!("failed to process foreach: {err}")))
            }
            Err(ElementError::Check(err)) => {
                Tally::Decided(Err(format!("validation failure: {err}")))
            }
        }
    }

    /// A read-only foreach entry: each element (borrowed from the context where the list is
    /// part of it) is bound as `element`/`elementIndex` over the context rather than copied
    /// into it. Returns how many elements counted.
    fn foreach_bound(&self, entry: &'m ForeachValidate, depth: usize) -> Result<usize, EntryEnd> {
        let ctx = self.ctx();
        let compiled;
        let expr = match &entry.list_expression {
            Some(expr) => expr,
            None => {
                let text = substitute_text(&entry.list, ctx).map_err(EntryEnd::ListError)?;
                compiled = jmespath::compile(&text)
                    .map_err(|e| EntryEnd::ListError(format!("incorrect query {text}: {e}")))?;
                &compiled
            }
        };
        // A list compiled with the policy that reads only the request's object is searched
        // once per request, whichever rule asks first.
        let kept = entry.list_expression.as_ref().and_then(|list| {
            let object = ctx.bound_request_object()?;
            self.eval.memo.object_list(list, object)
        });
        let searched = match kept {
            Some(elements) => elements,
            None => expr.search_elements(ctx, &jmespath::SystemEnv),
        };
        let elements = match searched {
            Ok(elements) => elements,
            Err(e) if e.is_not_found() => return Err(EntryEnd::NotFound),
            Err(e) => {
                return Err(EntryEnd::ListError(format!("JMESPath query failed: {e}")));
            }
        };
        let nested_names = self
            .policy
            .uses_nested_elements
            .then(|| (format!("element{depth}"), format!("elementIndex{depth}")));
        let mut counted = 0usize;
        for (index, element) in elements.iter().enumerate() {
            let element: &Value = element;
            if element.is_null() {
                continue;
            }
            crate::deadline::check_after_work().map_err(|e| EntryEnd::Decided(Err(e)))?;
            let index_value = Value::from(index);
            // The names in the order foreach used to write them into the context.
            let mut bound: [(&str, &Value); 4] = [
                ("element", element),
                ("elementIndex", &index_value),
                ("", &Value::Null),
                ("", &Value::Null),
            ];
            let names = match &nested_names {
                Some((element_n, index_n)) => {
                    bound[2] = (element_n, element);
                    bound[3] = (index_n, &index_value);
                    4
                }
                None => 2,
            };
            let vars = ctx.with_bound(bound.get(..names).unwrap_or(&[]));
            let result = self.foreach_element_bound(entry, element, index, vars);
            match self.tally(entry, index, result) {
                Tally::Counted => counted += 1,
                Tally::Ignored => {}
                Tally::Decided(result) => return Err(EntryEnd::Decided(result)),
            }
        }
        Ok(counted)
    }

    /// One element of a read-only entry, `vars` being the context with it bound.
    fn foreach_element_bound(
        &self,
        entry: &ForeachValidate,
        element: &Value,
        index: usize,
        vars: Scope<'_>,
    ) -> Result<CheckResult, ElementError> {
        let scoped = element_scoped(entry, element, index)?;
        if let Some(pre) = &entry.preconditions {
            let (passed, _) =
                check_conditions(pre, vars).map_err(|_| ElementError::Preconditions)?;
            if !passed {
                return Ok(CheckResult::Skip("preconditions not met".to_owned()));
            }
        }
        let target = if scoped {
            element
        } else {
            self.eval.request.resource()
        };
        self.check_target(&entry.check, target, vars)
            .map_err(ElementError::Check)
    }

    /// The elements of a foreach `list`: an array's items, or the single value it yields.
    fn foreach_list(&self, entry: &ForeachValidate) -> Result<Vec<Value>, ListError> {
        let compiled;
        let expr = match &entry.list_expression {
            Some(expr) => expr,
            None => {
                let text = substitute_text(&entry.list, self.ctx()).map_err(ListError::Other)?;
                compiled = jmespath::compile(&text)
                    .map_err(|e| ListError::Other(format!("incorrect query {text}: {e}")))?;
                &compiled
            }
        };
        match expr.search_with_env(self.ctx(), &jmespath::SystemEnv) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(other) => Ok(vec![other]),
            Err(e) if e.is_not_found() => Err(ListError::NotFound),
            Err(e) => Err(ListError::Other(format!("JMESPath query failed: {e}"))),
        }
    }

    fn foreach_element(
        &mut self,
        entry: &'m ForeachValidate,
        element: Value,
        index: usize,
        depth: usize,
        foreach_values: Option<&Map<String, Value>>,
        mark: usize,
    ) -> Result<CheckResult, ElementError> {
        let scoped = element_scoped(entry, &element, index)?;
        // The element moves into the context and a scoped check reads it back from there;
        // only when something else may replace `element` (values files, context entries) is a
        // copy kept as the target.
        let own_target = (scoped
            && !matches!(entry.check, ValidateCheck::Foreach(_))
            && (foreach_values.is_some() || !entry.context.is_empty()))
        .then(|| element.clone());
        // The per-level names cost a second copy of the element; only set them when a rule of
        // the policy reads them (decided at compile time).
        if self.policy.uses_nested_elements {
            self.set_var("element", element.clone(), mark);
            self.set_var("elementIndex", Value::from(index), mark);
            self.set_var(&format!("element{depth}"), element, mark);
            self.set_var(&format!("elementIndex{depth}"), Value::from(index), mark);
        } else {
            self.set_var("element", element, mark);
            self.set_var("elementIndex", Value::from(index), mark);
        }
        if let Some(values) = foreach_values {
            for (key, list) in values {
                if let Some(v) = list.get(index) {
                    self.set_var(key, v.clone(), mark);
                }
            }
        }
        self.load_context(&entry.context, mark)
            .map_err(|e| ElementError::Check(format!("failed to load context: {e}")))?;
        if let Some(pre) = &entry.preconditions {
            let (passed, _) =
                check_conditions(pre, self.ctx()).map_err(|_| ElementError::Preconditions)?;
            if !passed {
                return Ok(CheckResult::Skip("preconditions not met".to_owned()));
            }
        }
        if let ValidateCheck::Foreach(_) = &entry.check {
            // A nested foreach reads its list from the context, not from a target.
            let request = self.eval.request;
            return self
                .check(&entry.check, request.resource(), depth + 1)
                .map_err(ElementError::Check);
        }
        let target = match (&own_target, scoped) {
            (Some(copy), _) => copy,
            (None, true) => self.ctx().field("element").unwrap_or(&Value::Null),
            (None, false) => self.eval.request.resource(),
        };
        self.check_target(&entry.check, target, self.ctx())
            .map_err(ElementError::Check)
    }
}

/// Whether an element is the check's target: a map element is, unless `elementScope` says
/// otherwise; other elements are checked against the whole resource.
fn element_scoped(
    entry: &ForeachValidate,
    element: &Value,
    index: usize,
) -> Result<bool, ElementError> {
    let is_map = element.as_object().is_some_and(|m| !m.is_empty());
    match entry.element_scope {
        Some(true) if !element.is_object() => Err(ElementError::Scope(format!(
            "cannot use elementScope=true for elements that are not maps (element {index})"
        ))),
        Some(scope) => Ok(scope),
        None => Ok(is_map),
    }
}

/// What one foreach element means for its rule.
enum Tally {
    Counted,
    Ignored,
    Decided(Result<CheckResult, String>),
}

/// Why a read-only foreach entry ended without counting its elements.
enum EntryEnd {
    /// Its list's data does not exist: the entry is passed over.
    NotFound,
    /// Its list could not be evaluated.
    ListError(String),
    /// An element decided the rule.
    Decided(Result<CheckResult, String>),
}

/// Why a foreach list gave no elements.
enum ListError {
    /// The data it names does not exist: the entry is skipped.
    NotFound,
    /// The list could not be evaluated.
    Other(String),
}

/// Why one foreach element could not be checked.
enum ElementError {
    /// Its preconditions could not be evaluated: Kyverno leaves the element out.
    Preconditions,
    /// `elementScope: true` on an element that is not a map.
    Scope(String),
    /// Its context or check failed: the rule is an error.
    Check(String),
}

/// The result of a check before it becomes a rule response.
enum CheckResult {
    Pass,
    Skip(String),
    Fail {
        /// Kyverno's message; `None` for a pattern failure, whose message is built from the
        /// rule's message and `path`.
        message: Option<String>,
        /// The offending field, for pattern failures.
        path: Option<String>,
        /// What bylaw adds for people (`got …, want …`, the foreach element).
        detail: Option<String>,
    },
}

/// Evaluates an any/all block, substituting the variables of each condition when it is reached
/// (see [`conditions::evaluate_block`]): a condition that cannot be resolved is an error, unless
/// the outcome was decided before it. Returns whether the block holds and the message of the
/// conditions that decided it.
pub fn check_conditions<'c>(
    block: &'c ConditionBlock,
    ctx: impl Into<Scope<'c>>,
) -> Result<(bool, Option<String>), String> {
    let ctx = ctx.into();
    let operand = |value: &'c Value,
                   substitutes: bool,
                   variable: Option<&'c variables::WholeVariable>|
     -> Result<Cow<'c, Value>, String> {
        if let Some(variable) = variable {
            // Borrowed where the variable names part of the context: nothing is copied to be
            // compared.
            variables::Substitution::new(ctx)
                .whole_variable_ref(variable)
                .map_err(|e| e.to_string())
        } else if substitutes {
            let substituted = variables::substitute_all(value, ctx).map_err(|e| e.to_string())?;
            Ok(Cow::Owned(substituted))
        } else {
            Ok(Cow::Borrowed(value))
        }
    };
    let resolve = |c: &'c RawCondition| -> Result<Condition<'c>, String> {
        Ok(Condition {
            key: operand(&c.key, c.key_substitutes, c.key_variable.as_ref())?,
            operator: c.operator,
            value: operand(&c.value, c.value_substitutes, c.value_variable.as_ref())?,
            message: c
                .message
                .as_deref()
                .map(|m| substitute_text(m, ctx).unwrap_or_else(|_| m.to_owned())),
        })
    };
    let any = block.has_any.then_some(block.any.as_slice());
    conditions::evaluate_block(any, &block.all, resolve)
}

/// Maps rule values keyed by dotted names into a context document (for callers assembling
/// request-level variables).
pub fn apply_variables(ctx: &mut Value, variables: &Map<String, Value>) {
    for (key, value) in variables {
        add_variable(ctx, key, value.clone());
    }
}
