//! `{{ }}` variable substitution, as Kyverno's `variables.SubstituteAll` does it.
//!
//! Rules (from Kyverno's `pkg/engine/variables/vars.go` and its tests):
//!
//! - Every string leaf and every object key is scanned for `{{ expr }}`; `expr` (braces and
//!   surrounding spaces removed) is evaluated as JMESPath against the context document.
//! - A string that is exactly one variable becomes the variable's value with its JSON type
//!   (number, object, null, …). A variable inside a longer string is interpolated: strings as
//!   is, anything else as Go's `json.Marshal` prints it (`null`, `5`, `{"a":1}` with sorted keys).
//! - Nested variables resolve innermost first: `{{ a.{{ b }} }}` evaluates `b`, splices it in,
//!   and scans again; the spliced value must not be able to change the expression: inside
//!   quotes it may not contain that quote or a backslash, bare it must be a plain name.
//! - What a variable resolves to is final: `{{ }}` inside a value from the request or the
//!   context stays text, however many scans run. Kyverno evaluates it (see
//!   docs/compatibility.md): anyone who can write a resource could run JMESPath of their choice
//!   over the whole context and read the result in a denial message.
//! - `\{{ expr }}` is left alone and loses its backslash at the end.
//! - `{{@}}` stands for the value at the same place in the resource: the JSON pointer of the
//!   string, minus everything up to `foreach` and minus two more elements (`validate.pattern`,
//!   `mutate.patchStrategicMerge`, …), prefixed with `target` when the context has one, else
//!   `request.object`.
//! - On DELETE requests (`request.operation == "DELETE"`), `request.object` in an expression
//!   is read as `request.oldObject`.
//! - A key that substitutes to null keeps its original text; to another non-string, fails.
//!
//! Missing data: an expression that looks up a key an object does not have fails with
//! [`VariableError::NotFound`] ("failed to resolve … : JMESPath query failed: Unknown key …"),
//! everywhere — Kyverno's precondition resolver passes that error through as well, which makes
//! the rule an error (policies write `{{ a.b || '' }}` to default). A key that is present with
//! value null resolves to null. Callers that want "missing means null" can match on
//! [`VariableError::is_not_found`].
//!
//! Not handled here: `$( )` references to other parts of a pattern.

use crate::json::Lookup;
use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock, RwLock};

use regex::Regex;
use serde_json::{Map, Value};

use crate::jmespath::{self, Env, JmespathError, Scope, SystemEnv};

/// Deepest document (and substituted value) walked.
const MAX_DEPTH: usize = 512;
/// Most rescans of one string (nested and recursively substituted variables).
const MAX_PASSES: usize = 64;
/// Longest string substitution may build.
const MAX_STRING_LEN: usize = 1 << 20;

/// Why substitution failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// The variable names data that is not in the context.
    #[error("failed to resolve {variable} at path {path}: JMESPath query failed: Unknown key \"{key}\" in path")]
    NotFound {
        variable: String,
        path: String,
        key: String,
    },
    /// The variable is not valid JMESPath.
    #[error("failed to resolve {variable} at path {path}: incorrect query {variable}: {source}")]
    InvalidExpression {
        variable: String,
        path: String,
        source: JmespathError,
    },
    /// Evaluating the variable failed (a function error, a type error, …).
    #[error("failed to resolve {variable} at path {path}: JMESPath query failed: {source}")]
    Evaluation {
        variable: String,
        path: String,
        source: JmespathError,
    },
    /// A value spliced into a nested variable would change its expression.
    #[error("failed to resolve {variable} at path {path}: a value substituted into the expression is not a plain name")]
    Injection { variable: String, path: String },
    /// An object key substituted to something other than a string.
    #[error("expected string after substituting variables in key \"{key}\"")]
    NonStringKey { key: String },
    /// The document or the substitution exceeds a safety bound.
    #[error("{0}")]
    Limit(String),
}

impl VariableError {
    /// True when the only problem is that the referenced data does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, VariableError::NotFound { .. })
    }

    /// Stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            VariableError::NotFound { .. } => "not_found",
            VariableError::InvalidExpression { .. } => "invalid_expression",
            VariableError::Evaluation { .. } => "evaluation",
            VariableError::NonStringKey { .. } => "non_string_key",
            VariableError::Injection { .. } => "injection",
            VariableError::Limit(_) => "limit",
        }
    }
}

fn variable_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})").ok())
        .as_ref()
}

fn escaped_regex() -> Option<&'static Regex> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\\\{\{(?:\{[^{}]*\}|[^{}])*\}\}").ok())
        .as_ref()
}

/// `s.contains("{{")`, without setting up a substring search: substitution asks this of every
/// string and key of the values it walks, most of them short and without a brace.
pub(crate) fn has_open_braces(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'{') {
        if rest.get(at + 1) == Some(&b'{') {
            return true;
        }
        rest = rest.get(at + 1..).unwrap_or(&[]);
    }
    false
}

fn internal_error() -> VariableError {
    VariableError::Limit("variable pattern failed to compile".to_owned())
}

/// Removes the braces and surrounding spaces of a `{{ … }}` variable.
fn expression_of(var: &str) -> String {
    var.replace("{{", "").replace("}}", "").trim().to_owned()
}

/// Whether a value spliced into a nested variable's expression cannot change what the
/// expression does: inside a string literal (`'…'`), a quoted name (`"…"`) or a JSON literal
/// (`` `…` ``) it must not contain that quote or a backslash; bare, it must be a plain name
/// (letters, digits, `-_./:`, as label keys and resource names are).
fn safe_in_expression(value: &str, before: Option<char>, after: Option<char>) -> bool {
    match (before, after) {
        (Some(open @ ('\'' | '"' | '`')), Some(close)) if open == close => {
            !value.contains(open) && !value.contains('\\')
        }
        _ => {
            !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'))
        }
    }
}

/// The spliced ranges that lie in `from` of the old text, moved to start at `to` in the new.
fn carry_ranges(
    spliced: &[Range<usize>],
    from: Range<usize>,
    to: usize,
    into: &mut Vec<Range<usize>>,
) {
    for range in spliced {
        if range.start >= from.start && range.end <= from.end {
            let shift = |p: usize| p - from.start + to;
            into.push(shift(range.start)..shift(range.end));
        }
    }
}

/// [`unescape`], except inside resolved values, which are final.
fn unescape_outside(text: String, spliced: &[Range<usize>]) -> String {
    let Some(esc) = escaped_regex() else {
        return text;
    };
    if spliced.is_empty() || !esc.is_match(&text) {
        return unescape(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for found in esc.find_iter(&text) {
        // The backslash and the braces must be policy text; a value inside them is fine.
        let (start, end) = (found.start(), found.end());
        let from_value = [start, start + 1, start + 2, end - 2, end - 1]
            .iter()
            .any(|&p| spliced.iter().any(|r| r.start <= p && p < r.end));
        if from_value {
            continue;
        }
        out.push_str(text.get(cursor..found.start()).unwrap_or(""));
        out.push_str(found.as_str().get(1..).unwrap_or(""));
        cursor = found.end();
    }
    out.push_str(text.get(cursor..).unwrap_or(""));
    out
}

/// Drops the backslash of every escaped `\{{ … }}`.
fn unescape(text: String) -> String {
    match escaped_regex() {
        Some(esc) if esc.is_match(&text) => esc
            .replace_all(&text, |c: &regex::Captures<'_>| {
                c.get(0)
                    .and_then(|m| m.as_str().get(1..))
                    .unwrap_or("")
                    .to_owned()
            })
            .into_owned(),
        _ => text,
    }
}

/// The first scan of a string for variables, which depends on the string alone and is kept
/// per distinct string: policies substitute the same few strings on every request.
enum Template {
    /// No variable: the string substitutes to this text (escapes removed).
    Verbatim(String),
    /// The variables of the first scan, in order.
    Variables(Vec<TemplateVar>),
}

struct TemplateVar {
    /// Byte range of `{{ … }}` in the string.
    start: usize,
    end: usize,
    /// The variable as written, braces included.
    text: String,
    /// The expression inside the braces.
    expr: String,
    /// Its compilation, unless it is `@` or invalid (both handled when resolving).
    compiled: Option<jmespath::Expression>,
}

/// A string that is exactly one `{{ expr }}` variable, scanned and compiled when its policy is:
/// substituting it is evaluating the expression, without a template lookup (a lock and a hash
/// of the string, shared by every thread) on each evaluation.
#[derive(Debug, Clone)]
pub struct WholeVariable {
    expr: String,
    compiled: jmespath::Expression,
}

impl WholeVariable {
    /// Whether the variable reads only `request` (see [`jmespath::Expression::reads_only`]).
    pub(crate) fn reads_only_request(&self) -> bool {
        self.compiled.reads_only("request")
    }

    /// `Some` when `s` is one variable from its first to its last byte and its expression
    /// compiles; anything else (text around it, several variables, nesting, `{{@}}`, an
    /// escape) goes through [`substitute_str`].
    pub fn of(s: &str) -> Option<WholeVariable> {
        if !has_open_braces(s) {
            return None;
        }
        let Ok(Template::Variables(vars)) = scan(s) else {
            return None;
        };
        let [var] = vars.as_slice() else {
            return None;
        };
        if var.start != 0 || var.end != s.len() {
            return None;
        }
        Some(WholeVariable {
            expr: var.expr.clone(),
            compiled: var.compiled.clone()?,
        })
    }
}

/// Most distinct strings whose scan is kept; when full the cache is emptied.
const TEMPLATE_CACHE_CAPACITY: usize = 4096;
/// Longer strings are scanned every time rather than kept.
const MAX_CACHED_TEMPLATE_LEN: usize = 4096;

/// Keyed with foldhash: SipHash over the whole string was most of a lookup's cost.
type TemplateCache = RwLock<HashMap<String, Arc<Template>, foldhash::fast::RandomState>>;

fn template_cache() -> &'static TemplateCache {
    static CACHE: OnceLock<TemplateCache> = OnceLock::new();
    CACHE.get_or_init(|| RwLock::new(HashMap::default()))
}

fn template(s: &str) -> Result<Arc<Template>, VariableError> {
    if let Ok(map) = template_cache().read() {
        if let Some(found) = map.get(s) {
            return Ok(Arc::clone(found));
        }
    }
    let scanned = Arc::new(scan(s)?);
    if s.len() <= MAX_CACHED_TEMPLATE_LEN {
        if let Ok(mut map) = template_cache().write() {
            if map.len() >= TEMPLATE_CACHE_CAPACITY {
                map.clear();
            }
            map.insert(s.to_owned(), Arc::clone(&scanned));
        }
    }
    Ok(scanned)
}

fn scan(s: &str) -> Result<Template, VariableError> {
    let re = variable_regex().ok_or_else(internal_error)?;
    let vars: Vec<TemplateVar> = re
        .captures_iter(s)
        .filter_map(|c| {
            let var = c.get(2)?;
            let expr = expression_of(var.as_str());
            let compiled = if expr == "@" {
                None
            } else {
                jmespath::compile(&expr).ok()
            };
            Some(TemplateVar {
                start: var.start(),
                end: var.end(),
                text: var.as_str().to_owned(),
                expr,
                compiled,
            })
        })
        .collect();
    if vars.is_empty() {
        Ok(Template::Verbatim(unescape(s.to_owned())))
    } else {
        Ok(Template::Variables(vars))
    }
}

/// The expressions of the `{{ … }}` variables in `s` (braces and surrounding spaces removed),
/// as the first scan of substitution finds them; `None` if they cannot be told.
pub(crate) fn variable_expressions(s: &str) -> Option<Vec<String>> {
    let re = variable_regex()?;
    Some(
        re.captures_iter(s)
            .filter_map(|c| c.get(2).map(|var| expression_of(var.as_str())))
            .collect(),
    )
}

/// Whether substitution would change this value: it holds a `{{ }}` variable (or an escaped
/// `\{{ }}` that loses its backslash) in a string or an object key.
pub fn has_variables(value: &Value) -> bool {
    any_text(value, string_has_variables)
}

/// Whether `test` holds for a string or an object key anywhere in `value`.
fn any_text(value: &Value, test: fn(&str) -> bool) -> bool {
    let mut stack = match value {
        Value::String(s) => return test(s),
        Value::Array(_) | Value::Object(_) => vec![value],
        _ => return false,
    };
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if test(s) => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                for (key, item) in map {
                    if test(key) {
                        return true;
                    }
                    stack.push(item);
                }
            }
            _ => {}
        }
    }
    false
}

fn string_has_variables(s: &str) -> bool {
    has_open_braces(s)
        && (variable_regex().is_some_and(|re| re.is_match(s))
            || escaped_regex().is_some_and(|re| re.is_match(s)))
}

/// Substitutes every variable in `value` against the context document `ctx`.
pub fn substitute_all<'a>(
    value: &Value,
    ctx: impl Into<Scope<'a>>,
) -> Result<Value, VariableError> {
    Substitution::new(ctx).value(value)
}

/// Whether any string or key of `value` has `{{`: substitution copies anything else unchanged.
pub(crate) fn holds_open_braces(value: &Value) -> bool {
    any_text(value, has_open_braces)
}

/// Substitutes the variables of one string; a string that is exactly one variable keeps the
/// variable's JSON type.
pub fn substitute_str<'a>(s: &str, ctx: impl Into<Scope<'a>>) -> Result<Value, VariableError> {
    Substitution::new(ctx).string(s)
}

/// A configured substitution: the context, where the value sits in its policy rule (for
/// `{{@}}` and error messages) and the environment functions see.
pub struct Substitution<'a> {
    ctx: Scope<'a>,
    base_path: String,
    env: &'a dyn Env,
}

/// A failed search of the variable `expr` at `path`.
fn search_error(source: JmespathError, expr: &str, path: &Path<'_>) -> VariableError {
    match source {
        JmespathError::NotFound { key } => VariableError::NotFound {
            variable: expr.to_owned(),
            path: path.to_string(),
            key,
        },
        source => VariableError::Evaluation {
            variable: expr.to_owned(),
            path: path.to_string(),
            source,
        },
    }
}

impl<'a> Substitution<'a> {
    /// Substitution against `ctx`, for a value at the root (path ``).
    pub fn new(ctx: impl Into<Scope<'a>>) -> Self {
        Substitution {
            ctx: ctx.into(),
            base_path: String::new(),
            env: &SystemEnv,
        }
    }

    /// Places the substituted value at this JSON pointer within its rule, e.g.
    /// `/validate/pattern` or `/mutate/foreach/0/patchStrategicMerge`.
    pub fn at(mut self, pointer: &str) -> Self {
        self.base_path = pointer.trim_end_matches('/').to_owned();
        self
    }

    /// Uses `env` for the clock and randomness of JMESPath functions.
    pub fn with_env(mut self, env: &'a dyn Env) -> Self {
        self.env = env;
        self
    }

    /// Substitutes every string and key in `value`.
    pub fn value(&self, value: &Value) -> Result<Value, VariableError> {
        self.walk(value, &Path::Base(&self.base_path), 0)
    }

    /// Substitutes one string.
    pub fn string(&self, s: &str) -> Result<Value, VariableError> {
        self.leaf(s, &Path::Base(&self.base_path), 0)
    }

    /// Substitutes a string that is one variable: the same result as [`Self::string`] on
    /// the text it was made from.
    pub fn whole_variable(&self, var: &WholeVariable) -> Result<Value, VariableError> {
        self.whole_variable_ref(var).map(Cow::into_owned)
    }

    /// [`Self::whole_variable`], borrowing the value where it is part of the context or of the
    /// expression: conditions compare what a variable names without copying it first.
    pub fn whole_variable_ref<'v>(
        &self,
        var: &'v WholeVariable,
    ) -> Result<Cow<'v, Value>, VariableError>
    where
        'a: 'v,
    {
        crate::deadline::check_after_work().map_err(VariableError::Limit)?;
        let path = Path::Base(&self.base_path);
        if var.expr == "@" || self.deleting() {
            return self
                .resolve(&var.expr, Some(&var.compiled), &path)
                .map(Cow::Owned);
        }
        var.compiled
            .search_scope_ref(self.ctx, self.env)
            .map_err(|source| search_error(source, &var.expr, &path))
    }

    /// Whether the request deletes: `request.object` then reads `request.oldObject`.
    fn deleting(&self) -> bool {
        self.ctx
            .field("request")
            .and_then(|r| r.field("operation"))
            .and_then(Value::as_str)
            == Some("DELETE")
    }

    fn walk(&self, value: &Value, path: &Path<'_>, depth: usize) -> Result<Value, VariableError> {
        if depth > MAX_DEPTH {
            return Err(VariableError::Limit(format!(
                "document nested deeper than {MAX_DEPTH} levels at {path}"
            )));
        }
        match value {
            Value::String(s) => self.leaf(s, path, depth),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.walk(item, &Path::Index(path, i), depth + 1)?);
                }
                Ok(Value::Array(out))
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, item) in map {
                    let new_key = match self.substitute_text(key, path)? {
                        Value::String(s) => s,
                        Value::Null => key.clone(),
                        _ => return Err(VariableError::NonStringKey { key: key.clone() }),
                    };
                    let new_value = self.walk(item, &Path::Key(path, key), depth + 1)?;
                    out.insert(new_key, new_value);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// A string leaf. What a variable resolved to is final: a typed result is not walked
    /// again (Kyverno's traversal does, which evaluates `{{ }}` found in request data).
    fn leaf(&self, s: &str, path: &Path<'_>, _depth: usize) -> Result<Value, VariableError> {
        crate::deadline::check_after_work().map_err(VariableError::Limit)?;
        self.substitute_text(s, path)
    }

    fn substitute_text(&self, s: &str, path: &Path<'_>) -> Result<Value, VariableError> {
        if !has_open_braces(s) {
            return Ok(Value::String(s.to_owned()));
        }
        let template = template(s)?;
        // Byte ranges of `text` that hold resolved values rather than policy text.
        let mut spliced: Vec<Range<usize>> = Vec::new();
        let mut text = match template.as_ref() {
            Template::Verbatim(text) => return Ok(Value::String(text.clone())),
            Template::Variables(vars) => {
                let mut rebuilt = String::with_capacity(s.len());
                let mut cursor = 0;
                for var in vars {
                    let resolved = self.resolve(&var.expr, var.compiled.as_ref(), path)?;
                    if var.start == 0 && var.end == s.len() {
                        return Ok(resolved);
                    }
                    rebuilt.push_str(s.get(cursor..var.start).unwrap_or(""));
                    let at = rebuilt.len();
                    self.splice(&mut rebuilt, &resolved, &var.text, path)?;
                    spliced.push(at..rebuilt.len());
                    cursor = var.end;
                }
                rebuilt.push_str(s.get(cursor..).unwrap_or(""));
                rebuilt
            }
        };
        // Nested variables (`{{ a.{{ b }} }}`) form a new variable once the inner one is
        // spliced in: scan again. A variable counts only when its braces are policy text, so a
        // resolved value that contains `{{ }}` (an annotation, a user name) stays text: values
        // from the request and the context are never evaluated. A value spliced into an
        // expression must be a plain name, so it cannot change what the expression does.
        let re = variable_regex().ok_or_else(internal_error)?;
        let mut passes = 1;
        loop {
            if !has_open_braces(&text) {
                break;
            }
            let inside = |pos: usize, ranges: &[Range<usize>]| {
                ranges.iter().any(|r| r.start <= pos && pos < r.end)
            };
            let matches: Vec<(usize, usize)> = re
                .captures_iter(&text)
                .filter_map(|c| c.get(2).map(|var| (var.start(), var.end())))
                .filter(|&(start, end)| {
                    ![start, start + 1, end - 2, end - 1]
                        .iter()
                        .any(|&p| inside(p, &spliced))
                })
                .collect();
            if matches.is_empty() {
                break;
            }
            passes += 1;
            if passes > MAX_PASSES {
                return Err(VariableError::Limit(format!(
                    "variables in {s:?} at path {path} did not settle after {MAX_PASSES} rounds"
                )));
            }
            let mut rebuilt = String::with_capacity(text.len());
            let mut next_spliced = Vec::new();
            let mut cursor = 0;
            for (start, end) in matches {
                let var = text.get(start..end).unwrap_or("");
                for range in spliced.iter().filter(|r| r.start >= start && r.end <= end) {
                    let value = text.get(range.clone()).unwrap_or("");
                    let before = text.get(..range.start).and_then(|t| t.chars().next_back());
                    let after = text.get(range.end..).and_then(|t| t.chars().next());
                    if !safe_in_expression(value, before, after) {
                        return Err(VariableError::Injection {
                            variable: var.to_owned(),
                            path: path.to_string(),
                        });
                    }
                }
                let resolved = self.resolve(&expression_of(var), None, path)?;
                if start == 0 && end == text.len() {
                    return Ok(resolved);
                }
                carry_ranges(&spliced, cursor..start, rebuilt.len(), &mut next_spliced);
                rebuilt.push_str(text.get(cursor..start).unwrap_or(""));
                let at = rebuilt.len();
                self.splice(&mut rebuilt, &resolved, var, path)?;
                next_spliced.push(at..rebuilt.len());
                cursor = end;
            }
            carry_ranges(
                &spliced,
                cursor..text.len(),
                rebuilt.len(),
                &mut next_spliced,
            );
            rebuilt.push_str(text.get(cursor..).unwrap_or(""));
            text = rebuilt;
            spliced = next_spliced;
        }
        Ok(Value::String(unescape_outside(text, &spliced)))
    }

    /// Appends a resolved variable to interpolated text: strings as they are, anything else
    /// as Go's `json.Marshal` prints it.
    fn splice(
        &self,
        out: &mut String,
        resolved: &Value,
        var: &str,
        path: &Path<'_>,
    ) -> Result<(), VariableError> {
        match resolved {
            Value::String(v) => out.push_str(v),
            other => out.push_str(&jmespath::value::go_json(other).map_err(|_| {
                VariableError::Limit(format!("value of {var} is nested too deeply to print"))
            })?),
        }
        if out.len() > MAX_STRING_LEN {
            return Err(VariableError::Limit(format!(
                "substituting variables at path {path} built a string over {MAX_STRING_LEN} bytes"
            )));
        }
        Ok(())
    }

    /// Evaluates one variable's expression (braces removed); `compiled` is its compilation
    /// when known in advance.
    fn resolve(
        &self,
        expr: &str,
        compiled: Option<&jmespath::Expression>,
        path: &Path<'_>,
    ) -> Result<Value, VariableError> {
        let is_delete = self.deleting();
        let rewritten;
        let (expr, compiled) = if expr == "@" || is_delete {
            let mut owned = if expr == "@" {
                self.current_path(&path.to_string())
            } else {
                expr.to_owned()
            };
            if is_delete {
                owned = owned.replace("request.object", "request.oldObject");
            }
            rewritten = owned;
            (rewritten.as_str(), None)
        } else {
            (expr, compiled)
        };
        // Borrowed, not cloned: the expression's reference count is shared by every thread
        // evaluating the policy.
        let fresh;
        let compiled = match compiled {
            Some(c) => c,
            None => {
                fresh =
                    jmespath::compile(expr).map_err(|source| VariableError::InvalidExpression {
                        variable: expr.to_owned(),
                        path: path.to_string(),
                        source,
                    })?;
                &fresh
            }
        };
        compiled
            .search_with_env(self.ctx, self.env)
            .map_err(|source| search_error(source, expr, path))
    }

    /// The JMESPath of the resource field a `{{@}}` at `path` refers to.
    fn current_path(&self, path: &str) -> String {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let after_foreach = parts
            .iter()
            .position(|p| *p == "foreach")
            .map_or(0, |i| i + 1);
        let rest = parts.get(after_foreach..).unwrap_or(&[]);
        let rest = if rest.len() > 2 {
            rest.get(2..).unwrap_or(&[])
        } else {
            &[]
        };
        let prefix: &[&str] = if self.ctx.field("target").is_some() {
            &["target"]
        } else {
            &["request", "object"]
        };
        jmespath_of(prefix.iter().chain(rest.iter()).copied())
    }
}

/// Where a value sits in its rule, as a JSON pointer; rendered only for `{{@}}` and errors.
enum Path<'p> {
    Base(&'p str),
    Index(&'p Path<'p>, usize),
    Key(&'p Path<'p>, &'p str),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut chain = Vec::new();
        let mut at = self;
        loop {
            match at {
                Path::Base(base) => {
                    f.write_str(base)?;
                    break;
                }
                Path::Index(parent, _) | Path::Key(parent, _) => {
                    chain.push(at);
                    at = parent;
                }
            }
        }
        for step in chain.iter().rev() {
            match step {
                Path::Index(_, i) => write!(f, "/{i}")?,
                Path::Key(_, key) => write!(f, "/{key}")?,
                Path::Base(_) => {}
            }
        }
        Ok(())
    }
}

/// Renders path components as JMESPath: numbers as `[n]`, plain names bare, others quoted.
fn jmespath_of<'s>(components: impl Iterator<Item = &'s str>) -> String {
    let mut out = String::new();
    for component in components {
        if !component.is_empty() && component.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(component);
            out.push(']');
            continue;
        }
        if !out.is_empty() {
            out.push('.');
        }
        let mut chars = component.chars();
        let plain = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '(')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ')');
        if plain {
            out.push_str(component);
        } else {
            out.push_str(&serde_json::Value::String(component.to_owned()).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn context() -> Value {
        json!({
            "request": {
                "operation": "CREATE",
                "namespace": "team-a",
                "object": {
                    "metadata": {
                        "name": "temp",
                        "namespace": "n1",
                        "labels": {"app": "web", "key": "app"},
                        "annotations": {"test": "name", "amp": "a&b"}
                    },
                    "spec": {
                        "port": "443",
                        "replicas": 5,
                        "ratio": -5.5,
                        "enabled": false,
                        "nothing": null,
                        "list": ["value1", "value2"],
                        "map": {"key2": "value2", "key1": "value1"},
                        "containers": [{"name": "app", "image": "nginx"}]
                    }
                }
            },
            "serviceAccountName": "builder",
            "element": {"name": "app"},
            "elementIndex": 0
        })
    }

    #[derive(Debug, Deserialize)]
    struct Case {
        input: Value,
        #[serde(default)]
        at: String,
        #[serde(default)]
        result: Option<Value>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        not_found: bool,
    }

    #[test]
    fn case_table() {
        let cases: Vec<Case> =
            serde_yaml_ng::from_str(include_str!("jmespath/testdata/variables.yaml")).unwrap();
        let ctx = context();
        let mut failures = Vec::new();
        for case in &cases {
            let got = Substitution::new(&ctx).at(&case.at).value(&case.input);
            match (&case.error, got) {
                (None, Ok(v)) => {
                    let want = case.result.clone().unwrap_or(Value::Null);
                    if v != want {
                        failures.push(format!("{}: got {v}, want {want}", case.input));
                    }
                }
                (None, Err(e)) => failures.push(format!("{}: unexpected error {e}", case.input)),
                (Some(want), Ok(v)) => {
                    failures.push(format!("{}: got {v}, want error {want:?}", case.input))
                }
                (Some(want), Err(e)) => {
                    if !e.to_string().contains(want.as_str()) {
                        failures.push(format!("{}: error {e} lacks {want:?}", case.input));
                    }
                    if e.is_not_found() != case.not_found {
                        failures.push(format!("{}: is_not_found() mismatch: {e:?}", case.input));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn delete_requests_read_the_old_object() {
        let ctx = json!({
            "request": {
                "operation": "DELETE",
                "object": {"metadata": {"annotations": {"target": "foo"}}},
                "oldObject": {"metadata": {"name": "old", "annotations": {"target": "bar", "targetnew": "target"}}}
            }
        });
        let got = substitute_str("{{request.object.metadata.annotations.target}}", &ctx).unwrap();
        assert_eq!(got, json!("bar"));
        let nested = substitute_str(
            "{{request.object.metadata.annotations.{{request.object.metadata.annotations.targetnew}}}}",
            &ctx,
        )
        .unwrap();
        assert_eq!(nested, json!("bar"));
        let escaped = substitute_str(
            r"\{{request.object.metadata.annotations.{{request.object.metadata.annotations.targetnew}}}}",
            &ctx,
        )
        .unwrap();
        assert_eq!(
            escaped,
            json!("{{request.object.metadata.annotations.target}}")
        );
    }

    #[test]
    fn at_refers_to_the_same_field_of_the_resource() {
        let ctx = context();
        let rule = json!({
            "mutate": {"overlay": {"spec": {
                "port": "{{ regex_match('(443)', '{{@}}') }}",
                "replicas": "{{@}}"
            }}}
        });
        let got = substitute_all(&rule, &ctx).unwrap();
        assert_eq!(
            got,
            json!({"mutate": {"overlay": {"spec": {"port": true, "replicas": 5}}}})
        );
        let in_foreach = Substitution::new(&ctx)
            .at("/mutate/foreach/0/patchStrategicMerge/spec/containers/0")
            .value(&json!({"name": "{{@}}"}))
            .unwrap();
        assert_eq!(in_foreach, json!({"name": "app"}));
        let with_target = json!({"target": {"spec": {"x": 1}}});
        let got = Substitution::new(&with_target)
            .at("/mutate/targets")
            .value(&json!({"spec": {"x": "{{@}}"}}))
            .unwrap();
        assert_eq!(got, json!({"spec": {"x": 1}}));
    }

    #[test]
    fn the_same_string_resolves_against_each_context() {
        let text = "{{ request.object.metadata.name }}-{{ request.operation }}";
        let create =
            json!({"request": {"operation": "CREATE", "object": {"metadata": {"name": "a"}}}});
        let update =
            json!({"request": {"operation": "UPDATE", "object": {"metadata": {"name": "b"}}}});
        let delete = json!({"request": {
            "operation": "DELETE",
            "object": {"metadata": {"name": "c"}},
            "oldObject": {"metadata": {"name": "old"}}
        }});
        assert_eq!(substitute_str(text, &create).unwrap(), json!("a-CREATE"));
        assert_eq!(substitute_str(text, &update).unwrap(), json!("b-UPDATE"));
        assert_eq!(substitute_str(text, &delete).unwrap(), json!("old-DELETE"));
        assert_eq!(substitute_str(text, &create).unwrap(), json!("a-CREATE"));
    }

    #[test]
    fn the_same_at_variable_follows_its_position() {
        let ctx = context();
        let rule =
            json!({"validate": {"pattern": {"spec": {"port": "{{@}}", "replicas": "{{@}}"}}}});
        let got = substitute_all(&rule, &ctx).unwrap();
        assert_eq!(
            got,
            json!({"validate": {"pattern": {"spec": {"port": "443", "replicas": 5}}}})
        );
    }

    #[test]
    fn errors_name_the_position_of_the_failing_string() {
        let ctx = context();
        let rule = json!({"any": [{"key": "x", "value": "{{ request.object.nope }}"}]});
        let err = Substitution::new(&ctx)
            .at("/preconditions")
            .value(&rule)
            .unwrap_err();
        assert!(err.is_not_found());
        assert!(
            err.to_string()
                .contains("at path /preconditions/any/0/value"),
            "{err}"
        );
    }

    #[test]
    fn has_variables_sees_strings_and_keys() {
        assert!(has_variables(&json!({"a": ["x", "{{ b }}"]})));
        assert!(has_variables(&json!({"{{ k }}": 1})));
        assert!(has_variables(&json!(r"\{{ escaped }}")));
        assert!(!has_variables(&json!({"a": "{ b }", "c": 1, "d": "{{"})));
    }

    #[test]
    fn values_without_open_braces_substitute_to_themselves() {
        let ctx = context();
        for plain in [
            json!(["AUDIT_WRITE", "CHOWN", {"k": "{ x }", "l": ["}}", "{"]}]),
            json!("DELETE"),
            json!(7),
        ] {
            assert!(!holds_open_braces(&plain), "{plain}");
            assert_eq!(substitute_all(&plain, &ctx).unwrap(), plain);
        }
        for with_braces in [
            json!(["a", "{{ request.operation }}"]),
            json!({"{{ request.operation }}": 1}),
            json!([{"deep": [r"\{{ escaped }}"]}]),
        ] {
            assert!(holds_open_braces(&with_braces), "{with_braces}");
            assert_ne!(substitute_all(&with_braces, &ctx).unwrap(), with_braces);
        }
    }

    #[test]
    fn open_braces_are_found_where_contains_finds_them() {
        for s in [
            "",
            "{",
            "{{",
            "}{",
            "{x{",
            "{ {",
            "a{{b",
            "{{{",
            "x{",
            "no braces",
            "{a}{{b}}",
            "é{{",
            "{é{",
        ] {
            assert_eq!(has_open_braces(s), s.contains("{{"), "{s:?}");
        }
    }

    #[test]
    fn runaway_self_reference_is_bounded() {
        // A value that names itself is text, not a variable: nothing loops.
        let ctx = json!({"loop": "{{loop}}"});
        assert_eq!(
            substitute_str("x {{loop}}", &ctx).unwrap(),
            json!("x {{loop}}")
        );
        let mut deep = json!("leaf");
        for _ in 0..1000 {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(substitute_all(&deep, &ctx).unwrap_err().kind(), "limit");
        while let Value::Array(mut items) = deep {
            deep = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn fixed_environment_reaches_functions() {
        struct Clock;
        impl Env for Clock {
            fn now(&self) -> chrono::DateTime<chrono::FixedOffset> {
                chrono::DateTime::parse_from_rfc3339("2022-02-02T02:02:02Z").unwrap()
            }
            fn random_u64(&self) -> u64 {
                7
            }
        }
        let ctx = json!({});
        let got = Substitution::new(&ctx)
            .with_env(&Clock)
            .string("at {{ time_now_utc() }}")
            .unwrap();
        assert_eq!(got, json!("at 2022-02-02T02:02:02Z"));
    }
}

#[cfg(test)]
mod final_values {
    use super::*;
    use serde_json::json;

    /// The attack: a value the requester controls (an annotation) holds `{{ }}` that reads
    /// something else in the context. It must come back as the same text, in every position
    /// a value can be substituted into.
    #[test]
    fn values_from_the_request_are_never_evaluated() {
        let ctx = json!({
            "request": {"object": {"metadata": {
                "name": "web",
                "annotations": {
                    "note": "{{ secret.token }}",
                    "escaped": "\\{{ secret.token }}",
                    "nested": {"deep": "{{ secret.token }}"},
                    "half": "{{ secret."
                }
            }}},
            "secret": {"token": "hunter2"}
        });
        let note = "{{ secret.token }}";
        let cases = [
            // Whole-string variable: the value as is.
            (
                "{{ request.object.metadata.annotations.note }}",
                json!(note),
            ),
            // Interpolated.
            (
                "note: {{ request.object.metadata.annotations.note }}!",
                json!(format!("note: {note}!")),
            ),
            // An escape inside a value keeps its backslash: values are not unescaped either.
            (
                "{{ request.object.metadata.annotations.escaped }} and more",
                json!("\\{{ secret.token }} and more"),
            ),
            // An object value holding `{{ }}` is not walked again.
            (
                "{{ request.object.metadata.annotations.nested }}",
                json!({"deep": note}),
            ),
            // Two halves from two values do not join into a variable.
            (
                "{{ request.object.metadata.annotations.half }}token }}",
                json!("{{ secret.token }}"),
            ),
        ];
        for (template, want) in cases {
            let got = substitute_str(template, &ctx).unwrap();
            assert_eq!(got, want, "{template}");
            assert!(!got.to_string().contains("hunter2"), "{template}");
        }
        // The same through a whole document (a message, a pattern, a patch).
        let doc = json!({"message": "{{ request.object.metadata.annotations.note }}",
                         "{{ request.object.metadata.name }}": ["{{ request.object.metadata.annotations.nested }}"]});
        let got = substitute_all(&doc, &ctx).unwrap();
        assert_eq!(got, json!({"message": note, "web": [{"deep": note}]}));
    }

    #[test]
    fn a_value_spliced_into_a_nested_variable_cannot_change_the_expression() {
        let ctx = json!({
            "labels": {"app": "web", "app.kubernetes.io/name": "shop"},
            "key": "app",
            "dotted": "app.kubernetes.io/name",
            "hostile": "app || secret.token",
            "secret": {"token": "hunter2"}
        });
        // Nested variables keep working for names.
        assert_eq!(
            substitute_str("{{ labels.{{ key }} }}", &ctx).unwrap(),
            json!("web")
        );
        assert_eq!(
            substitute_str("{{ labels.\"{{ dotted }}\" }}", &ctx).unwrap(),
            json!("shop")
        );
        // A value that would extend the expression is refused.
        let err = substitute_str("{{ labels.{{ hostile }} }}", &ctx).unwrap_err();
        assert_eq!(err.kind(), "injection", "{err}");
        // Inside a string literal any text is fine, except one that closes the literal.
        let ctx = json!({"cron": "0 7 * * *", "quote": "x') || secret.token || ('",
                         "secret": {"token": "hunter2"}});
        assert_eq!(
            substitute_str("{{ length('{{ cron }}') }}", &ctx).unwrap(),
            json!(9)
        );
        let err = substitute_str("{{ to_upper('{{ quote }}') }}", &ctx).unwrap_err();
        assert_eq!(err.kind(), "injection", "{err}");
    }
}

#[cfg(test)]
mod whole_variables {
    use super::*;
    use serde_json::json;

    fn context(operation: &str) -> Value {
        json!({
            "request": {
                "operation": operation,
                "object": {"metadata": {"name": "web", "labels": {"app": "shop"}}, "spec": {"replicas": 3}},
                "oldObject": {"metadata": {"name": "old-web"}},
                "userInfo": {"username": "{{ request.object.metadata.name }}"},
            },
            "images": null,
        })
    }

    /// Strings that are one variable take the compiled path; it must give exactly what
    /// substitution gives for the same text: values with their JSON types, the DELETE
    /// rewrite to `oldObject`, and the same errors word for word.
    #[test]
    fn a_compiled_variable_substitutes_as_its_text_does() {
        let texts = [
            "{{ request.operation }}",
            "{{request.operation || 'BACKGROUND'}}",
            "{{ request.object.metadata.name }}",
            "{{ request.object.metadata.labels }}",
            "{{ request.object.spec.replicas }}",
            "{{ images }}",
            "{{ request.object.metadata.missing }}",
            "{{ request.object.metadata.missing || `[]` }}",
            "{{ to_number('x') }}",
            "{{ request.userInfo.username }}",
        ];
        for operation in ["CREATE", "DELETE"] {
            let ctx = context(operation);
            for text in texts {
                let variable = WholeVariable::of(text)
                    .unwrap_or_else(|| panic!("{text} should compile as one variable"));
                let substitution = Substitution::new(&ctx).at("/preconditions/all/0/key");
                let compiled = substitution.whole_variable(&variable);
                let scanned = substitution.string(text);
                assert_eq!(
                    compiled.as_ref().map_err(ToString::to_string),
                    scanned.as_ref().map_err(ToString::to_string),
                    "{operation} {text}"
                );
            }
            assert_eq!(
                Substitution::new(&ctx)
                    .whole_variable(
                        &WholeVariable::of("{{ request.object.metadata.name }}").unwrap()
                    )
                    .ok(),
                Some(json!(if operation == "DELETE" {
                    "old-web"
                } else {
                    "web"
                })),
            );
        }
    }

    /// A variable that names part of the context is handed over where it is, not copied; on
    /// DELETE it is searched in `oldObject` by a rewritten expression, and comes back owned.
    #[test]
    fn a_compiled_variable_borrows_what_it_names() {
        let labels = WholeVariable::of("{{ request.object.metadata.labels }}").unwrap();
        let created = context("CREATE");
        match Substitution::new(&created).whole_variable_ref(&labels) {
            Ok(Cow::Borrowed(found)) => assert_eq!(found, &json!({"app": "shop"})),
            other => panic!("not borrowed from the context: {other:?}"),
        }
        let name = WholeVariable::of("{{ request.object.metadata.name }}").unwrap();
        let deleted = context("DELETE");
        match Substitution::new(&deleted).whole_variable_ref(&name) {
            Ok(Cow::Owned(found)) => assert_eq!(found, json!("old-web")),
            other => panic!("not the oldObject's name: {other:?}"),
        }
    }

    #[test]
    fn only_a_string_that_is_exactly_one_compilable_variable_is_compiled() {
        for text in [
            "plain",
            "a {{ request.operation }}",
            "{{ request.operation }} b",
            "{{ request.operation }}{{ request.operation }}",
            "{{@}}",
            "\\{{ request.operation }}",
            "{{ request.object.{{ request.operation }} }}",
            "{{ request.object.[ }}",
        ] {
            assert!(WholeVariable::of(text).is_none(), "{text}");
        }
    }
}
