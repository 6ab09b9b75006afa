//! Function table: the standard JMESPath functions and Kyverno's, with go-jmespath's
//! argument checking (exact arity, or at least the listed ones for variadic functions; each
//! argument must match one of its accepted types).

mod builtin;
mod kyverno;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::interp::{Fail, Interp};
use super::parser::Ast;
use super::value::go_debug;
use super::{Env, JmespathError};

/// Longest string a function may build, in bytes: more than any object the API server accepts
/// (3 MiB), far less than what doubling a string a few dozen times would reach.
pub(crate) const MAX_RESULT_BYTES: usize = 8 << 20;

/// Refuses a result of `len` bytes before it is built.
pub(crate) fn check_result_len(function: &str, len: usize) -> Result<(), JmespathError> {
    if len > MAX_RESULT_BYTES {
        return Err(JmespathError::limit(format!(
            "{function}: the result would be {len} bytes, more than the {MAX_RESULT_BYTES} allowed"
        )));
    }
    Ok(())
}

/// An evaluated argument, or an `&expr` reference for functions that take one.
pub(crate) enum Arg<'a> {
    Value(Cow<'a, Value>),
    Expref(&'a Ast),
}

/// Argument types, as go-jmespath names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Number,
    String,
    Array,
    Object,
    ArrayNumber,
    ArrayString,
    Any,
    Expref,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Number => "number",
            Ty::String => "string",
            Ty::Array => "array",
            Ty::Object => "object",
            Ty::ArrayNumber => "array[number]",
            Ty::ArrayString => "array[string]",
            Ty::Any => "any",
            Ty::Expref => "expref",
        }
    }

    fn accepts(self, arg: &Arg<'_>) -> bool {
        let value = match arg {
            Arg::Expref(_) => return matches!(self, Ty::Expref),
            Arg::Value(v) => v.as_ref(),
        };
        match self {
            Ty::Number => value.is_number(),
            Ty::String => value.is_string(),
            Ty::Array => value.is_array(),
            Ty::Object => value.is_object(),
            Ty::ArrayNumber => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_number)),
            Ty::ArrayString => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            Ty::Any => true,
            Ty::Expref => false,
        }
    }
}

type Handler = for<'c, 'i, 'e, 'a> fn(&'c mut Call<'i, 'e, 'a>) -> Result<Value, JmespathError>;

/// One function: its signature, its one-line description and its implementation.
pub(crate) struct Def {
    pub name: &'static str,
    /// Accepted types per argument position.
    pub args: &'static [&'static [Ty]],
    /// The last argument may repeat (go-jmespath only counts, it does not type-check extras).
    pub variadic: bool,
    pub returns: &'static str,
    pub note: &'static str,
    /// Kyverno's own extension rather than standard JMESPath.
    pub kyverno: bool,
    pub handler: Handler,
}

/// Name, signature and description of one function, for `bylaw jp function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDoc {
    pub name: &'static str,
    /// For example `truncate(string, number) string`.
    pub signature: String,
    pub description: &'static str,
    /// True for Kyverno's extensions, false for standard JMESPath functions.
    pub kyverno: bool,
}

fn signature(def: &Def) -> String {
    let args: Vec<String> = def
        .args
        .iter()
        .enumerate()
        .map(|(i, types)| {
            let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
            let mut text = names.join("|");
            if def.variadic && i + 1 == def.args.len() {
                text.push_str("...");
            }
            text
        })
        .collect();
    format!("{}({}) {}", def.name, args.join(", "), def.returns)
}

/// Function definitions by name. Every call looks its function up here; foldhash hashes a
/// short name in a fraction of SipHash's time.
type Table = HashMap<&'static str, &'static Def, foldhash::fast::FixedState>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = Table::default();
        // Kyverno registers its functions after the standard ones, so `sum` is Kyverno's.
        for def in builtin::DEFS.iter().chain(kyverno::DEFS.iter()) {
            map.insert(def.name, def);
        }
        map
    })
}

/// Every function available in expressions, sorted by name.
pub fn functions() -> Vec<FunctionDoc> {
    let mut docs: Vec<FunctionDoc> = table()
        .values()
        .map(|def| FunctionDoc {
            name: def.name,
            signature: signature(def),
            description: def.note,
            kyverno: def.kyverno,
        })
        .collect();
    docs.sort_by(|a, b| a.name.cmp(b.name));
    docs
}

pub(crate) fn call<'a>(
    interp: &mut Interp<'_>,
    name: &str,
    args: Vec<Arg<'a>>,
) -> Result<Value, Fail<'a>> {
    let def = table()
        .get(name)
        .ok_or_else(|| JmespathError::function(format!("unknown function: {name}")))?;
    check_args(def, &args)?;
    let mut call = Call {
        interp,
        args,
        name: def.name,
    };
    Ok((def.handler)(&mut call)?)
}

fn check_args(def: &Def, args: &[Arg<'_>]) -> Result<(), JmespathError> {
    if def.args.is_empty() {
        return Ok(());
    }
    if def.variadic {
        if args.len() < def.args.len() {
            return Err(JmespathError::function(format!(
                "Invalid arity: {}() takes at least {} argument(s), got {}",
                def.name,
                def.args.len(),
                args.len()
            )));
        }
        return Ok(());
    }
    if args.len() != def.args.len() {
        return Err(JmespathError::function(format!(
            "incorrect number of args: {}() takes {} argument(s), got {}",
            def.name,
            def.args.len(),
            args.len()
        )));
    }
    for (types, arg) in def.args.iter().zip(args) {
        if !types.iter().any(|t| t.accepts(arg)) {
            let shown = match arg {
                Arg::Value(v) => go_debug(v),
                Arg::Expref(_) => "&expression".to_owned(),
            };
            let expected: Vec<String> = types.iter().map(|t| format!("{:?}", t.name())).collect();
            return Err(JmespathError::function(format!(
                "Invalid type for: {shown}, expected: []jmespath.JpType{{{}}}",
                expected.join(", ")
            )));
        }
    }
    Ok(())
}

/// The arguments of one call, with typed accessors. Handlers may rely on [`check_args`]
/// having run, but still return errors rather than panicking on a mismatch.
pub(crate) struct Call<'i, 'e, 'a> {
    interp: &'i mut Interp<'e>,
    args: Vec<Arg<'a>>,
    name: &'static str,
}

static NULL: Value = Value::Null;

impl<'a> Call<'_, '_, 'a> {
    pub(crate) fn env(&self) -> &dyn Env {
        self.interp.env
    }

    pub(crate) fn len(&self) -> usize {
        self.args.len()
    }

    /// Argument `i` as a value (null for a missing or `&expr` argument).
    pub(crate) fn value(&self, i: usize) -> &Value {
        match self.args.get(i) {
            Some(Arg::Value(v)) => v.as_ref(),
            _ => &NULL,
        }
    }

    /// Takes argument `i` out, avoiding a copy when it was computed rather than borrowed; a
    /// copy is charged to the evaluation's budget.
    pub(crate) fn take(&mut self, i: usize) -> Result<Value, JmespathError> {
        match self.args.get_mut(i) {
            Some(Arg::Value(v)) => match std::mem::replace(v, Cow::Owned(Value::Null)) {
                Cow::Owned(owned) => Ok(owned),
                Cow::Borrowed(borrowed) => self.interp.copy(borrowed),
            },
            _ => Ok(Value::Null),
        }
    }

    /// Kyverno's "argument #N is not of type T" error (N counts from 1).
    pub(crate) fn type_error(&self, i: usize, expected: &str) -> JmespathError {
        JmespathError::function(format!(
            "JMESPath function '{}': argument #{} is not of type {expected}",
            self.name,
            i + 1
        ))
    }

    /// Kyverno's "JMESPath function 'f': message" error.
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> JmespathError {
        JmespathError::function(format!("JMESPath function '{}': {message}", self.name))
    }

    pub(crate) fn str(&self, i: usize) -> Result<&str, JmespathError> {
        self.value(i)
            .as_str()
            .ok_or_else(|| self.type_error(i, "string"))
    }

    pub(crate) fn f64(&self, i: usize) -> Result<f64, JmespathError> {
        self.value(i)
            .as_f64()
            .ok_or_else(|| self.type_error(i, "float64"))
    }

    pub(crate) fn array(&self, i: usize) -> Result<&Vec<Value>, JmespathError> {
        self.value(i)
            .as_array()
            .ok_or_else(|| self.type_error(i, "Array"))
    }

    pub(crate) fn object(&self, i: usize) -> Result<&Map<String, Value>, JmespathError> {
        self.value(i)
            .as_object()
            .ok_or_else(|| self.type_error(i, "Object"))
    }

    pub(crate) fn expref(&self, i: usize) -> Result<&'a Ast, JmespathError> {
        match self.args.get(i) {
            Some(Arg::Expref(ast)) => Ok(ast),
            _ => Err(self.type_error(i, "expref")),
        }
    }

    /// Evaluates an `&expr` against one element.
    pub(crate) fn apply(&mut self, ast: &Ast, v: &Value) -> Result<Value, JmespathError> {
        self.interp.eval_expref(ast, v)
    }
}
