//! JMESPath as Kyverno evaluates it: the go-jmespath dialect (Kyverno's fork) plus every
//! Kyverno custom function, over `serde_json::Value`.
//!
//! This is a purpose-built interpreter rather than the `jmespath` crate: Kyverno's fork
//! reports a missing object key as an error ("Unknown key") that variable substitution turns
//! into "variable not resolved", which the crate cannot express; the crate also copies the
//! whole search document into its own value type on every search, and its `Rc` values are not
//! `Send`. Here a search borrows the document and only copies what it returns.
//!
//! Compile once with [`compile`] (cached process-wide), evaluate many times with
//! [`Expression::search`]. Time, randomness and DNS reach functions through [`Env`] so tests
//! can pin them.

mod arith;
mod functions;
mod gotime;
mod interp;
mod lexer;
mod parser;
pub(crate) use parser::Ast;
mod semver_range;
mod simple;
pub(crate) mod value;
mod x509;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, FixedOffset, Local, Utc};
use serde_json::Value;

use crate::json::Lookup;

pub use functions::{functions, FunctionDoc};

/// Longest expression accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 16 * 1024;

/// Why an expression could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JmespathError {
    /// The expression is not valid JMESPath.
    #[error("SyntaxError: {message} (in {expression:?} at offset {offset})")]
    Syntax {
        expression: String,
        offset: usize,
        message: String,
    },
    /// A field was looked up on an object that does not have it (Kyverno's fork of
    /// go-jmespath reports this instead of returning null).
    #[error("Unknown key \"{key}\" in path")]
    NotFound { key: String },
    /// Unknown function, wrong arity or argument types, or a function failed.
    #[error("{0}")]
    Function(String),
    /// The expression or its evaluation exceeds a safety bound.
    #[error("{0}")]
    Limit(String),
}

impl JmespathError {
    pub(crate) fn syntax(expression: &str, offset: usize, message: impl Into<String>) -> Self {
        JmespathError::Syntax {
            expression: expression.to_owned(),
            offset,
            message: message.into(),
        }
    }

    pub(crate) fn limit(message: impl Into<String>) -> Self {
        JmespathError::Limit(message.into())
    }

    pub(crate) fn function(message: impl Into<String>) -> Self {
        JmespathError::Function(message.into())
    }

    /// True when the error only says that a path did not exist in the document.
    pub fn is_not_found(&self) -> bool {
        matches!(self, JmespathError::NotFound { .. })
    }

    /// Stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            JmespathError::Syntax { .. } => "syntax",
            JmespathError::NotFound { .. } => "not_found",
            JmespathError::Function(_) => "function",
            JmespathError::Limit(_) => "limit",
        }
    }
}

/// What functions may observe from outside the document: the clock and randomness. There is
/// no name resolution: the engine does no network I/O (`is_external_url` decides from the URL's
/// text). Production uses [`SystemEnv`]; tests pass a fixed implementation.
pub trait Env: Send + Sync {
    /// The current time in the local zone (`time_now`) — `time_now_utc` converts it.
    fn now(&self) -> DateTime<FixedOffset>;
    /// A fresh random number for `random()`.
    fn random_u64(&self) -> u64;
}

/// The real clock and a process-seeded random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemEnv;

impl Env for SystemEnv {
    fn now(&self) -> DateTime<FixedOffset> {
        Local::now().fixed_offset()
    }

    fn random_u64(&self) -> u64 {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // RandomState is seeded from the OS once per process; mixing in a counter and the
        // time gives a fresh value per call without pulling in a RNG crate.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_i64(Utc::now().timestamp_nanos_opt().unwrap_or(0));
        hasher.finish()
    }
}

/// A document searched with a few top-level names bound over it (foreach's `element` and
/// `elementIndex`), which are borrowed instead of being copied into the document. A bound name
/// hides the document's field of that name; anything but a field lookup at the root sees the
/// document as if the names had been inserted into it.
///
/// Names can also be bound over the document's `request` map ([`Scope::with_request`]): the
/// request's object and old object, which a validation context holds only as placeholders.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    doc: &'a Value,
    bound: &'a [(&'a str, &'a Value)],
    request_bound: &'a [(&'a str, &'a Value)],
}

static EMPTY_MAP: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::Object(serde_json::Map::new()));

impl<'a> Scope<'a> {
    /// `doc` with `bound` over it; a later binding of the same name wins.
    pub fn new(doc: &'a Value, bound: &'a [(&'a str, &'a Value)]) -> Self {
        Scope {
            doc,
            bound,
            request_bound: &[],
        }
    }

    /// The same scope with `bound` over the document instead of what was bound before.
    pub fn with_bound(mut self, bound: &'a [(&'a str, &'a Value)]) -> Self {
        self.bound = bound;
        self
    }

    /// The same scope with `bound` over the document's `request` map as well.
    pub fn with_request(mut self, bound: &'a [(&'a str, &'a Value)]) -> Self {
        self.request_bound = bound;
        self
    }

    /// The document as it is.
    pub fn document(&self) -> &'a Value {
        self.doc
    }

    /// Whether names are bound over the document.
    pub fn has_bindings(&self) -> bool {
        !self.bound.is_empty() || !self.request_bound.is_empty()
    }

    /// The value of a top-level name as the document holds it: a bound name's value, else the
    /// document's field. `request` is the document's map, without what is bound over it.
    pub fn field(&self, name: &str) -> Option<&'a Value> {
        match self.bound.iter().rev().find(|(bound, _)| *bound == name) {
            Some((_, value)) => Some(value),
            None => self.doc.field(name),
        }
    }

    /// What a search sees at a top-level name: a bound value, the `request` map with its own
    /// bindings (as a scope), or the document's field.
    pub(crate) fn member(&self, name: &str) -> Option<Member<'a>> {
        if let Some((_, value)) = self.bound.iter().rev().find(|(bound, _)| *bound == name) {
            return Some(Member::Value(value));
        }
        if name == "request" && !self.request_bound.is_empty() {
            let request = self.field("request").unwrap_or(&EMPTY_MAP);
            return Some(Member::Scope(Scope::new(request, self.request_bound)));
        }
        self.doc.field(name).map(Member::Value)
    }

    /// What `request.object` is in this scope when it is bound over the document's `request`
    /// map (as [`Scope::member`] finds it); `None` when it is read from the document.
    pub(crate) fn bound_request_object(&self) -> Option<&'a Value> {
        if self.bound.iter().any(|(bound, _)| *bound == "request") {
            return None;
        }
        self.request_bound
            .iter()
            .rev()
            .find(|(bound, _)| *bound == "object")
            .map(|(_, value)| *value)
    }

    /// The scope as one document: a copy with the bound names inserted, as the context looked
    /// when they were written into it.
    pub fn to_value(&self) -> Value {
        let mut map = match self.doc {
            Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        if !self.request_bound.is_empty() {
            if let Some(Member::Scope(request)) = self.member("request") {
                map.insert("request".to_owned(), request.to_value());
            }
        }
        for (name, value) in self.bound {
            map.insert((*name).to_owned(), (*value).clone());
        }
        Value::Object(map)
    }
}

/// What a top-level name of a [`Scope`] holds.
pub(crate) enum Member<'a> {
    Value(&'a Value),
    Scope(Scope<'a>),
}

impl<'a> From<&'a Value> for Scope<'a> {
    fn from(doc: &'a Value) -> Self {
        Scope::new(doc, &[])
    }
}

/// A compiled JMESPath expression. Cheap to clone, shareable across threads.
#[derive(Debug, Clone)]
pub struct Expression {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    source: String,
    ast: parser::Ast,
    /// For an expression that starts with `request.object`: the rest of it, searched from the
    /// object itself where the scope binds it (see [`Scope::bound_request_object`]).
    object_rest: Option<parser::Ast>,
    /// `object_rest` calls no function: its result depends on the object alone (some
    /// functions read the clock, randomness or the environment).
    rest_calls_no_function: bool,
    /// The expression's shape when it is one [`simple`] answers without the interpreter.
    simple: Option<simple::Simple>,
}

fn calls_no_function(ast: &parser::Ast) -> bool {
    use parser::Ast;
    match ast {
        Ast::Function(..) | Ast::Expref(_) => false,
        Ast::Identity | Ast::Field(_) | Ast::Index(_) | Ast::Slice(..) | Ast::Literal(_) => true,
        Ast::Subexpr(lhs, rhs)
        | Ast::IndexExpr(lhs, rhs)
        | Ast::Projection(lhs, rhs)
        | Ast::ValueProjection(lhs, rhs)
        | Ast::Pipe(lhs, rhs)
        | Ast::Or(lhs, rhs)
        | Ast::And(lhs, rhs)
        | Ast::Compare(_, lhs, rhs) => calls_no_function(lhs) && calls_no_function(rhs),
        Ast::FilterProjection(lhs, rhs, cond) => {
            calls_no_function(lhs) && calls_no_function(rhs) && calls_no_function(cond)
        }
        Ast::Flatten(inner) | Ast::Not(inner) => calls_no_function(inner),
        Ast::MultiList(items) => items.iter().all(calls_no_function),
        Ast::MultiHash(pairs) => pairs.iter().all(|(_, item)| calls_no_function(item)),
    }
}

/// `ast` with the `request.object` it starts from (the leftmost operand of its chain of
/// sub-expressions, projections, flattens and pipes, the only part of it that sees the
/// document) replaced by `@`; `None` when it does not start from there.
fn strip_request_object(ast: &parser::Ast) -> Option<parser::Ast> {
    use parser::Ast;
    let field = |ast: &Ast, name: &str| matches!(ast, Ast::Field(f) if f == name);
    let strip = |inner: &Ast| strip_request_object(inner).map(Box::new);
    Some(match ast {
        Ast::Subexpr(lhs, rhs) if field(lhs, "request") && field(rhs, "object") => Ast::Identity,
        Ast::Subexpr(lhs, rhs) => Ast::Subexpr(strip(lhs)?, rhs.clone()),
        Ast::IndexExpr(lhs, rhs) => Ast::IndexExpr(strip(lhs)?, rhs.clone()),
        Ast::Projection(lhs, rhs) => Ast::Projection(strip(lhs)?, rhs.clone()),
        Ast::ValueProjection(lhs, rhs) => Ast::ValueProjection(strip(lhs)?, rhs.clone()),
        Ast::FilterProjection(lhs, rhs, cond) => {
            Ast::FilterProjection(strip(lhs)?, rhs.clone(), cond.clone())
        }
        Ast::Flatten(inner) => Ast::Flatten(strip(inner)?),
        Ast::Pipe(lhs, rhs) => Ast::Pipe(strip(lhs)?, rhs.clone()),
        _ => return None,
    })
}

impl Expression {
    /// The parsed tree, for analyses done once at compile time.
    pub(crate) fn ast(&self) -> &parser::Ast {
        &self.inner.ast
    }

    /// The expression text as written.
    pub fn as_str(&self) -> &str {
        &self.inner.source
    }

    /// Evaluates against `data` with the system clock and randomness.
    pub fn search(&self, data: &Value) -> Result<Value, JmespathError> {
        self.search_with_env(data, &SystemEnv)
    }

    /// Evaluates against `data`, taking time and randomness from `env`.
    pub fn search_with_env<'a>(
        &self,
        data: impl Into<Scope<'a>>,
        env: &dyn Env,
    ) -> Result<Value, JmespathError> {
        let scope: Scope<'_> = data.into();
        self.search_scope_ref(scope, env).map(Cow::into_owned)
    }

    /// [`Expression::search_with_env`], borrowing the result when it is part of `data` or of
    /// the expression: a condition that reads `element.securityContext.capabilities.drop[]`
    /// compares the list where it is instead of copying it first.
    pub fn search_scope_ref<'a>(
        &'a self,
        data: impl Into<Scope<'a>>,
        env: &dyn Env,
    ) -> Result<Cow<'a, Value>, JmespathError> {
        let scope = data.into();
        if let Some(found) = self.simple_search(scope) {
            return found;
        }
        // `request.object` bound over the document: searched from the object, without
        // looking `request` up in the document and `object` up in its bindings.
        if let (Some(rest), Some(object)) = (&self.inner.object_rest, scope.bound_request_object())
        {
            return interp::evaluate_rest_of_request_object(rest, object, env);
        }
        interp::evaluate_ref(&self.inner.ast, scope, env)
    }

    /// The elements a foreach `list` yields, borrowed from `data` where they are part of it:
    /// an array's items, or the single value when the result is not an array. Building the
    /// list (`[a, b][]`) copies no element.
    pub fn search_elements<'a>(
        &'a self,
        data: impl Into<Scope<'a>>,
        env: &dyn Env,
    ) -> Result<Vec<Cow<'a, Value>>, JmespathError> {
        let scope = data.into();
        if let Some(found) = self
            .inner
            .simple
            .as_ref()
            .and_then(|s| simple::elements(s, scope))
        {
            return found;
        }
        if let (Some(rest), Some(object)) = (&self.inner.object_rest, scope.bound_request_object())
        {
            return interp::elements_of_rest_of_request_object(rest, object, env);
        }
        interp::evaluate_elements(&self.inner.ast, scope, env)
    }

    /// Whether the expression starts with `request.object` and reads nothing else: what it
    /// yields for a request's object is the same wherever it is searched.
    pub(crate) fn depends_on_request_object_alone(&self) -> bool {
        self.inner.rest_calls_no_function
    }

    /// [`Expression::search_elements`] where `request.object` is `object`, for an expression
    /// that starts with `request.object`; `None` for any other.
    pub(crate) fn elements_from_request_object<'a>(
        &'a self,
        object: &'a Value,
        env: &dyn Env,
    ) -> Option<Result<Vec<Cow<'a, Value>>, JmespathError>> {
        let rest = self.inner.object_rest.as_ref()?;
        let simple = self.inner.simple.as_ref();
        if let Some(found) = simple.and_then(|s| simple::elements_of_request_object(s, object)) {
            return Some(found);
        }
        Some(interp::elements_of_rest_of_request_object(
            rest, object, env,
        ))
    }

    /// Whether the expression reads nothing but the top-level name `root`: one of the simple
    /// shapes (paths, flattens, literals, `||`; no functions) whose every path starts there.
    pub(crate) fn reads_only(&self, root: &str) -> bool {
        self.inner
            .simple
            .as_ref()
            .is_some_and(|simple| simple.reads_only(root))
    }

    /// Whether both are the same expression: one compilation, or the same text.
    pub(crate) fn same_expression(&self, other: &Expression) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) || self.inner.source == other.inner.source
    }

    /// Like [`Expression::search`], but borrows the result when it is part of `data` (or a
    /// literal of the expression), so `request.object.spec.containers` copies nothing.
    pub fn search_ref<'a>(&'a self, data: &'a Value) -> Result<Cow<'a, Value>, JmespathError> {
        self.search_ref_with_env(data, &SystemEnv)
    }

    /// [`Expression::search_ref`] with time and randomness from `env`.
    pub fn search_ref_with_env<'a>(
        &'a self,
        data: &'a Value,
        env: &dyn Env,
    ) -> Result<Cow<'a, Value>, JmespathError> {
        if let Some(found) = self.simple_search(Scope::from(data)) {
            return found;
        }
        interp::evaluate_ref(&self.inner.ast, Scope::from(data), env)
    }

    /// The answer of the evaluator for simple shapes, when the expression is one and the
    /// search is one it takes on.
    fn simple_search<'a>(
        &'a self,
        scope: Scope<'a>,
    ) -> Option<Result<Cow<'a, Value>, JmespathError>> {
        simple::evaluate_ref(self.inner.simple.as_ref()?, scope)
    }
}

/// Most distinct expressions kept in the process-wide cache; when full it is emptied.
const CACHE_CAPACITY: usize = 4096;

/// Keyed with foldhash, which hashes an expression's text in a fraction of SipHash's time.
type CompileCache = Mutex<HashMap<String, Expression, foldhash::fast::RandomState>>;

fn cache() -> &'static CompileCache {
    static CACHE: OnceLock<CompileCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::default()))
}

/// Compiles an expression, reusing an earlier compilation of the same text.
pub fn compile(expr: &str) -> Result<Expression, JmespathError> {
    if let Ok(map) = cache().lock() {
        if let Some(found) = map.get(expr) {
            return Ok(found.clone());
        }
    }
    let compiled = compile_uncached(expr)?;
    if let Ok(mut map) = cache().lock() {
        if map.len() >= CACHE_CAPACITY {
            // Policies reuse a bounded set of expressions; a full cache means something is
            // generating them (substituted values), so start over rather than track recency.
            map.clear();
        }
        map.insert(expr.to_owned(), compiled.clone());
    }
    Ok(compiled)
}

/// Compiles without consulting or filling the cache.
pub fn compile_uncached(expr: &str) -> Result<Expression, JmespathError> {
    if expr.len() > MAX_EXPRESSION_LEN {
        return Err(JmespathError::limit(format!(
            "expression is {} bytes long, more than the {MAX_EXPRESSION_LEN} allowed",
            expr.len()
        )));
    }
    let ast = parser::parse(expr)?;
    let object_rest = strip_request_object(&ast);
    let rest_calls_no_function = object_rest.as_ref().is_some_and(calls_no_function);
    // The shape is taken from a copy: the interpreter keeps the tree for what the shape hands back.
    let simple = simple::Simple::of(ast.clone());
    Ok(Expression {
        inner: Arc::new(Compiled {
            source: expr.to_owned(),
            ast,
            object_rest,
            rest_calls_no_function,
            simple,
        }),
    })
}

/// Compiles (cached) and evaluates in one step.
pub fn search(expr: &str, data: &Value) -> Result<Value, JmespathError> {
    compile(expr)?.search(data)
}

#[cfg(test)]
mod tests;

/// The parsed form of an expression, pretty-printed, for `bylaw jp parse`.
pub fn parse_tree(expr: &str) -> Result<String, JmespathError> {
    let compiled = compile_uncached(expr)?;
    Ok(format!("{:#?}", compiled.inner.ast))
}
