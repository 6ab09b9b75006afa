//! One CEL expression, compiled once: parsed (optional syntax included), checked for
//! undeclared names, and rewritten so that evaluation is bounded and can reach the outside
//! world through the context provider.
//!
//! Bounding: every comprehension step, every `+` and every `replace` is charged against a
//! per-evaluation budget ([`COST_LIMIT`] units, in the spirit of Kubernetes' per-expression
//! runtime cost limit). Running out ends the evaluation with an error, never a hang or an
//! unbounded allocation.

use std::cell::Cell;

use cel::common::ast::{operators, CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr};
use cel::common::ast::{ListExpr, LiteralValue};
use cel::common::types::{CelList, CelMap, CelString};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;

/// Units an expression may spend in one evaluation.
pub const COST_LIMIT: u64 = 1_000_000;

/// Longest expression accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 100 * 1024;

/// The internal function that charges the budget and returns its argument unchanged.
pub(crate) const COST_FUNCTION: &str = "__bylaw_cost";
/// The internal function that checks a `replace` cannot blow up before it runs.
pub(crate) const REPLACE_GUARD: &str = "__bylaw_replace_guard";
/// The internal function `x.orValue(y)` is rewritten to (see [`or_value`]).
pub(crate) const OR_VALUE: &str = "__bylaw_or_value";
/// The internal function that ends a comprehension early once the budget is gone.
pub(crate) const BUDGET_LEFT: &str = "__bylaw_budget_left";
/// The variable through which calls that need the context provider are answered.
pub(crate) const HOST_VARIABLE: &str = "__bylaw_host";

/// Library functions answered by the context provider: `namespace.Function`.
pub(crate) const HOST_FUNCTIONS: &[(&str, &str)] = &[
    ("resource", "Get"),
    ("resource", "List"),
    ("globalContext", "Get"),
    ("image", "GetMetadata"),
    ("http", "Get"),
    ("http", "Post"),
];

/// Names a call's target may be when it is a library namespace rather than a variable.
const NAMESPACES: &[&str] = &[
    "optional",
    "ip",
    "strings",
    "math",
    "sets",
    "lists",
    "base64",
    "resource",
    "globalContext",
    "image",
    "http",
    "time",
    "format",
    "cel",
];

/// Type names an expression may mention as values (`type(x) == string`).
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
    "google.protobuf.Duration",
    "google.protobuf.Timestamp",
];

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Program {
    source: String,
    expr: IdedExpr,
    /// `variables.<name>` references, in order of first mention.
    variables: Vec<String>,
    /// Whether it calls a function answered by the context provider.
    uses_host: bool,
}

/// What an expression may refer to: its root variables and the `variables.*` declared so far.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub roots: &'a [&'a str],
    pub variables: &'a [String],
}

impl Program {
    /// Parses and checks `source`. The error is the reason only; callers add the field path.
    pub fn compile(source: &str, scope: Scope<'_>) -> Result<Program, String> {
        if source.trim().is_empty() {
            return Err("an expression is required".to_owned());
        }
        if source.len() > MAX_EXPRESSION_LEN {
            return Err(format!(
                "the expression is {} bytes long, more than the {MAX_EXPRESSION_LEN} allowed",
                source.len()
            ));
        }
        let parsed = super::env()
            .parser()
            .parse(source)
            .map_err(|e| format!("compilation failed: {}", e.to_string().trim()))?;
        let mut check = Checker {
            scope,
            bound: Vec::new(),
            variables: Vec::new(),
            error: None,
            uses_host: false,
        };
        check.expr(&parsed);
        if let Some(error) = check.error {
            return Err(error);
        }
        super::library::check_literals(&parsed)?;
        let mut rewriter = Rewriter {
            next_id: max_id(&parsed) + 1,
        };
        let expr = rewriter.rewrite(parsed);
        Ok(Program {
            source: source.to_owned(),
            expr,
            variables: check.variables,
            uses_host: check.uses_host,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `variables.<name>` it refers to.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    pub fn uses_host(&self) -> bool {
        self.uses_host
    }

    /// Evaluates with a bounded budget. The result borrows from the context where it can.
    pub fn evaluate<'e, 'v>(
        &'e self,
        ctx: &'e cel::Context<'_, 'v>,
    ) -> Result<CowVal<'e, 'v>, ExecutionError> {
        let _budget = Budget::start(COST_LIMIT);
        let result = cel::Value::resolve_val(&self.expr, ctx);
        if Budget::exhausted() {
            return Err(ExecutionError::function_error(
                "cost",
                format!("the expression exceeded its cost budget of {COST_LIMIT} units"),
            ));
        }
        result
    }
}

/// Walks a parsed expression for undeclared names.
struct Checker<'a> {
    scope: Scope<'a>,
    /// Comprehension variables in scope.
    bound: Vec<String>,
    variables: Vec<String>,
    error: Option<String>,
    uses_host: bool,
}

impl Checker<'_> {
    fn fail(&mut self, message: String) {
        if self.error.is_none() {
            self.error = Some(message);
        }
    }

    fn known_root(&self, name: &str) -> bool {
        self.scope.roots.contains(&name)
            || self.bound.iter().any(|b| b == name)
            || TYPE_NAMES.contains(&name)
    }

    fn variable(&mut self, name: &str) {
        if !self.scope.roots.contains(&"variables") {
            return;
        }
        if !self.scope.variables.iter().any(|v| v == name) {
            self.fail(format!(
                "undeclared variable '{name}' (variables may only refer to those declared before them)"
            ));
        } else if !self.variables.iter().any(|v| v == name) {
            self.variables.push(name.to_owned());
        }
    }

    fn expr(&mut self, e: &IdedExpr) {
        match &e.expr {
            Expr::Ident(name) => {
                if !self.known_root(name) {
                    self.fail(format!("undeclared reference to '{name}'"));
                }
            }
            Expr::Select(select) => {
                if let Expr::Ident(root) = &select.operand.expr {
                    if root == "variables" && !self.bound.iter().any(|b| b == "variables") {
                        self.variable(&select.field);
                        return;
                    }
                }
                self.expr(&select.operand);
            }
            Expr::Call(call) => self.call(call),
            Expr::Comprehension(c) => self.comprehension(c),
            Expr::List(list) => list.elements.iter().for_each(|x| self.expr(x)),
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(m) => {
                            self.expr(&m.key);
                            self.expr(&m.value);
                        }
                        EntryExpr::StructField(f) => self.expr(&f.value),
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(m) => {
                            self.expr(&m.key);
                            self.expr(&m.value);
                        }
                        EntryExpr::StructField(f) => self.expr(&f.value),
                    }
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }

    fn call(&mut self, call: &CallExpr) {
        // `variables.?name` and `variables[?'name']`.
        if call.func_name == operators::OPT_SELECT || call.func_name == operators::OPT_INDEX {
            if let (Some(Expr::Ident(root)), Some(Expr::Literal(LiteralValue::String(field)))) = (
                call.args.first().map(|a| &a.expr),
                call.args.get(1).map(|a| &a.expr),
            ) {
                if root == "variables" && !self.bound.iter().any(|b| b == "variables") {
                    self.variable(field.inner());
                    return;
                }
            }
        }
        if let Some(target) = &call.target {
            match &target.expr {
                Expr::Ident(ns) if !self.known_root(ns) => {
                    if HOST_FUNCTIONS
                        .iter()
                        .any(|(n, f)| n == ns && *f == call.func_name)
                    {
                        self.uses_host = true;
                    } else if !NAMESPACES.contains(&ns.as_str()) {
                        self.fail(format!("undeclared reference to '{ns}'"));
                    }
                }
                _ => self.expr(target),
            }
        }
        call.args.iter().for_each(|a| self.expr(a));
    }

    fn comprehension(&mut self, c: &ComprehensionExpr) {
        self.expr(&c.iter_range);
        self.expr(&c.accu_init);
        let before = self.bound.len();
        self.bound.push(c.iter_var.clone());
        if let Some(second) = &c.iter_var2 {
            self.bound.push(second.clone());
        }
        self.bound.push(c.accu_var.clone());
        self.expr(&c.loop_cond);
        self.expr(&c.loop_step);
        self.expr(&c.result);
        self.bound.truncate(before);
    }
}

fn max_id(e: &IdedExpr) -> u64 {
    let mut max = e.id;
    let mut visit = |child: &IdedExpr| max = max.max(max_id(child));
    match &e.expr {
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                visit(t);
            }
            call.args.iter().for_each(&mut visit);
        }
        Expr::Comprehension(c) => {
            for child in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(child);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(&mut visit),
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    visit(&me.key);
                    visit(&me.value);
                }
            }
        }
        Expr::Select(s) => visit(&s.operand),
        _ => {}
    }
    max
}

/// Rewrites an expression for bounded evaluation and provider-backed calls.
struct Rewriter {
    next_id: u64,
}

impl Rewriter {
    fn node(&mut self, expr: Expr) -> IdedExpr {
        let id = self.next_id;
        self.next_id += 1;
        IdedExpr { id, expr }
    }

    fn charge(&mut self, inner: IdedExpr) -> IdedExpr {
        self.node(Expr::Call(CallExpr {
            func_name: COST_FUNCTION.to_owned(),
            target: None,
            args: vec![inner],
        }))
    }

    fn rewrite(&mut self, e: IdedExpr) -> IdedExpr {
        let IdedExpr { id, expr } = e;
        let expr = match expr {
            Expr::Call(call) => return self.call(id, call),
            Expr::Comprehension(c) => Expr::Comprehension(Box::new(self.comprehension(*c))),
            Expr::List(list) => Expr::List(ListExpr {
                elements: list.elements.into_iter().map(|x| self.rewrite(x)).collect(),
                optional_indices: list.optional_indices,
            }),
            Expr::Map(mut map) => {
                for entry in &mut map.entries {
                    if let EntryExpr::MapEntry(m) = &mut entry.expr {
                        m.key = self.rewrite(std::mem::take(&mut m.key));
                        m.value = self.rewrite(std::mem::take(&mut m.value));
                    }
                }
                Expr::Map(map)
            }
            Expr::Select(mut select) => {
                let operand = std::mem::take(&mut *select.operand);
                *select.operand = self.rewrite(operand);
                Expr::Select(select)
            }
            other => other,
        };
        IdedExpr { id, expr }
    }

    fn call(&mut self, id: u64, call: CallExpr) -> IdedExpr {
        let CallExpr {
            func_name,
            target,
            args,
        } = call;
        // `resource.Get(…)` → `__bylaw_host[['resource.Get', …]]`.
        if let Some(Expr::Ident(ns)) = target.as_deref().map(|t| &t.expr) {
            if HOST_FUNCTIONS
                .iter()
                .any(|(n, f)| n == ns && *f == func_name)
            {
                let name = format!("{ns}.{func_name}");
                let mut elements =
                    vec![self.node(Expr::Literal(LiteralValue::String(CelString::from(name))))];
                elements.extend(args.into_iter().map(|a| self.rewrite(a)));
                let key = self.node(Expr::List(ListExpr::new(elements)));
                let host = self.node(Expr::Ident(HOST_VARIABLE.to_owned()));
                return IdedExpr {
                    id,
                    expr: Expr::Call(CallExpr {
                        func_name: operators::INDEX.to_owned(),
                        target: None,
                        args: vec![host, key],
                    }),
                };
            }
        }
        let args: Vec<IdedExpr> = args.into_iter().map(|a| self.rewrite(a)).collect();
        let mut target = target.map(|t| Box::new(self.rewrite(*t)));
        // `x.orValue(y)` also accepts a plain (non-optional) `x`, as Kyverno's environment does.
        if func_name == "orValue" && args.len() == 1 {
            if let Some(t) = target.take() {
                let mut call_args = vec![*t];
                call_args.extend(args);
                return IdedExpr {
                    id,
                    expr: Expr::Call(CallExpr {
                        func_name: OR_VALUE.to_owned(),
                        target: None,
                        args: call_args,
                    }),
                };
            }
        }
        // `s.replace(a, b)` → `__bylaw_replace_guard(s, a, b).replace(a, b)`.
        if func_name == "replace" && (args.len() == 2 || args.len() == 3) {
            if let Some(t) = target.take() {
                let mut guard_args = vec![*t];
                guard_args.extend(args.iter().cloned());
                target = Some(Box::new(self.node(Expr::Call(CallExpr {
                    func_name: REPLACE_GUARD.to_owned(),
                    target: None,
                    args: guard_args,
                }))));
            }
        }
        let is_add = func_name == operators::ADD;
        let rebuilt = IdedExpr {
            id,
            expr: Expr::Call(CallExpr {
                func_name,
                target,
                args,
            }),
        };
        if is_add {
            self.charge(rebuilt)
        } else {
            rebuilt
        }
    }

    /// Charges every iteration without changing the step's shape (the interpreter recognises
    /// `all`/`exists` folds and `map`/`filter` appends by their shape).
    fn comprehension(&mut self, c: ComprehensionExpr) -> ComprehensionExpr {
        let ComprehensionExpr {
            iter_range,
            iter_var,
            iter_var2,
            accu_var,
            accu_init,
            loop_cond,
            loop_step,
            result,
        } = c;
        let iter_range = self.rewrite(iter_range);
        let accu_init = self.rewrite(accu_init);
        let loop_cond = self.rewrite(loop_cond);
        // `all`/`exists` keep looping past errors (a later element may decide the result), so
        // their condition also stops the loop once the budget is gone. `map`/`filter` have a
        // literal condition and stop at the first error anyway.
        let loop_cond = if matches!(loop_cond.expr, Expr::Literal(_)) {
            loop_cond
        } else {
            self.node(Expr::Call(CallExpr {
                func_name: BUDGET_LEFT.to_owned(),
                target: None,
                args: vec![loop_cond],
            }))
        };
        let result = self.rewrite(result);
        let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if *n == accu_var);
        let step_id = loop_step.id;
        let loop_step = match loop_step.expr {
            Expr::Call(mut call)
                if (call.func_name == operators::LOGICAL_AND
                    || call.func_name == operators::LOGICAL_OR)
                    && call.target.is_none()
                    && call.args.len() == 2
                    && call.args.first().is_some_and(is_accu) =>
            {
                if let Some(rhs) = call.args.pop() {
                    let rhs = self.rewrite(rhs);
                    let charged = self.charge(rhs);
                    call.args.push(charged);
                }
                IdedExpr {
                    id: step_id,
                    expr: Expr::Call(call),
                }
            }
            Expr::Call(mut call)
                if call.func_name == operators::CONDITIONAL && call.args.len() == 3 =>
            {
                let mut args = std::mem::take(&mut call.args).into_iter();
                let guard = args.next().map(|g| self.rewrite(g));
                let rest: Vec<IdedExpr> = args.map(|a| self.append_step(a, &accu_var)).collect();
                call.args = guard
                    .map(|g| self.charge(g))
                    .into_iter()
                    .chain(rest)
                    .collect();
                IdedExpr {
                    id: step_id,
                    expr: Expr::Call(call),
                }
            }
            other => {
                let step = IdedExpr {
                    id: step_id,
                    expr: other,
                };
                if is_append(&step, &accu_var) {
                    let rewritten = self.append_step(step, &accu_var);
                    self.charge_appended(rewritten)
                } else {
                    let rewritten = self.rewrite(step);
                    self.charge(rewritten)
                }
            }
        };
        ComprehensionExpr {
            iter_range,
            iter_var,
            iter_var2,
            accu_var,
            accu_init,
            loop_cond,
            loop_step,
            result,
        }
    }

    /// `@result + [x]` keeps its shape (only `x` is rewritten); anything else is rewritten.
    fn append_step(&mut self, step: IdedExpr, accu: &str) -> IdedExpr {
        if !is_append(&step, accu) {
            return self.rewrite(step);
        }
        self.map_appended(step, Self::rewrite)
    }

    /// Charges the appended element(s) of `@result + [x]` in place.
    fn charge_appended(&mut self, step: IdedExpr) -> IdedExpr {
        self.map_appended(step, Self::charge)
    }

    /// Applies `f` to the elements of the list literal appended by `@result + [x]`, keeping
    /// the call's shape.
    fn map_appended(
        &mut self,
        step: IdedExpr,
        mut f: impl FnMut(&mut Self, IdedExpr) -> IdedExpr,
    ) -> IdedExpr {
        let IdedExpr { id, expr } = step;
        let Expr::Call(mut call) = expr else {
            return IdedExpr { id, expr };
        };
        if let Some(IdedExpr {
            id: list_id,
            expr: Expr::List(list),
        }) = call.args.pop()
        {
            let elements = list.elements.into_iter().map(|x| f(self, x)).collect();
            call.args.push(IdedExpr {
                id: list_id,
                expr: Expr::List(ListExpr {
                    elements,
                    optional_indices: list.optional_indices,
                }),
            });
        }
        IdedExpr {
            id,
            expr: Expr::Call(call),
        }
    }
}

fn is_append(step: &IdedExpr, accu: &str) -> bool {
    match &step.expr {
        Expr::Call(call) if call.func_name == operators::ADD && call.target.is_none() => {
            matches!(
                call.args.as_slice(),
                [IdedExpr { expr: Expr::Ident(n), .. }, IdedExpr { expr: Expr::List(_), .. }]
                    if n == accu
            )
        }
        _ => false,
    }
}

thread_local! {
    /// Units left in the evaluation running on this thread; `None` outside an evaluation.
    static REMAINING: Cell<Option<u64>> = const { Cell::new(None) };
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

/// The budget of the evaluation running on this thread; restores the outer one when dropped.
struct Budget {
    outer: (Option<u64>, bool),
}

impl Budget {
    fn start(limit: u64) -> Budget {
        let outer = (REMAINING.get(), EXHAUSTED.get());
        REMAINING.set(Some(limit));
        EXHAUSTED.set(false);
        Budget { outer }
    }

    fn exhausted() -> bool {
        EXHAUSTED.get()
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        REMAINING.set(self.outer.0);
        EXHAUSTED.set(self.outer.1);
    }
}

/// Spends `units`; fails (and keeps failing for the rest of the evaluation) once the budget is
/// gone, so that an `all()` cannot swallow the error.
pub(crate) fn charge(units: u64) -> Result<(), ExecutionError> {
    let exceeded = || {
        ExecutionError::function_error(
            "cost",
            format!("the expression exceeded its cost budget of {COST_LIMIT} units"),
        )
    };
    if EXHAUSTED.get() {
        return Err(exceeded());
    }
    match REMAINING.get() {
        None => Ok(()),
        Some(left) if left >= units => {
            REMAINING.set(Some(left - units));
            Ok(())
        }
        Some(_) => {
            EXHAUSTED.set(true);
            REMAINING.set(Some(0));
            Err(exceeded())
        }
    }
}

/// What holding a value costs: one unit, plus its size for strings (per 8 bytes), lists and maps.
pub(crate) fn size_cost(value: &dyn Val) -> u64 {
    if let Some(s) = value.downcast_ref::<CelString>() {
        return 1 + (s.inner().len() as u64) / 8;
    }
    if let Some(l) = value.downcast_ref::<CelList>() {
        return 1 + l.inner().len() as u64;
    }
    if value.downcast_ref::<CelMap>().is_some() {
        return 1 + value
            .as_sizer()
            .map(|s| (*s.size().inner()).max(0) as u64)
            .unwrap_or(0);
    }
    1
}

/// `__bylaw_cost(x)`: charges for `x` and returns it.
pub(crate) fn cost_function<'b, 'v>(
    mut args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args
        .pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    charge(size_cost(value.as_ref()))?;
    Ok(value)
}

/// `__bylaw_or_value(x, y)`: an optional's value or `y` when it has none; any other `x` as it
/// is. Kyverno keeps cel-go's older behaviour for `orValue` on a non-optional value, which
/// the library's policies rely on (`container.volumeMounts.orValue([])`).
pub(crate) fn or_value<'b, 'v>(
    mut args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let fallback = args
        .pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(2, 0))?;
    let value = args
        .pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(2, 1))?;
    match value.downcast_ref::<cel::common::types::CelOptional>() {
        Some(optional) => Ok(match optional.option() {
            Some(inner) => CowVal::Owned(inner.clone_as_boxed()),
            None => fallback,
        }),
        None => Ok(value),
    }
}

/// `__bylaw_budget_left(condition)`: the condition while budget is left, `false` after.
pub(crate) fn budget_left<'b, 'v>(
    mut args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args
        .pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    if EXHAUSTED.get() {
        return Ok(CowVal::owned(cel::common::types::CelBool::from(false)));
    }
    Ok(value)
}

/// `__bylaw_replace_guard(s, old, new[, n])`: charges for the largest string the replacement
/// could produce before it is built, and returns `s`.
pub(crate) fn replace_guard<'b, 'v>(
    mut args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let text = |v: &CowVal<'_, '_>| v.downcast_ref::<CelString>().map(|s| s.inner().len());
    let limit = args.get(3).and_then(|n| {
        n.downcast_ref::<cel::common::types::CelInt>()
            .map(|i| *i.inner())
    });
    let (Some(len), Some(old), Some(new)) = (
        args.first().and_then(text),
        args.get(1).and_then(text),
        args.get(2).and_then(text),
    ) else {
        // Not strings: `replace` itself reports the type error.
        args.truncate(1);
        return args
            .pop()
            .ok_or_else(|| ExecutionError::invalid_argument_count(3, 0));
    };
    let mut matches = len.checked_div(old).unwrap_or(len + 1);
    if let Some(n) = limit.filter(|n| *n >= 0) {
        matches = matches.min(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let produced = (matches as u64).saturating_mul(new as u64) + len as u64;
    charge(1 + produced / 8)?;
    args.truncate(1);
    args.pop()
        .ok_or_else(|| ExecutionError::invalid_argument_count(3, 0))
}
