//! The CEL libraries bylaw's environment offers, registered once on the shared [`cel::Env`]:
//! the crate's standard library and its `strings`, `math` and `base64` extensions, Kubernetes'
//! libraries ([`kube`]: quantity, IP/CIDR, URL, regex, lists, sets, semver) and Kyverno's
//! offline ones ([`kyverno`]: image references, service accounts, time).

pub mod kube;
pub mod kyverno;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelBool, CelDouble, CelInt, CelString, CelUInt, Type, DYN_TYPE};
use cel::common::value::{CowVal, FromVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::program;

/// Registers every library on `env`.
pub fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_extension(cel::extensions::strings)?;
    env.add_extension(cel::extensions::math)?;
    env.add_extension(cel::extensions::encoders)?;
    env.add_overload(
        program::COST_FUNCTION,
        "bylaw_cost_dyn",
        vec![DYN_TYPE],
        program::cost_function,
    )?;
    env.add_overload(
        program::BUDGET_LEFT,
        "bylaw_budget_left_dyn",
        vec![DYN_TYPE],
        program::budget_left,
    )?;
    env.add_overload(
        program::OR_VALUE,
        "bylaw_or_value_dyn_dyn",
        vec![DYN_TYPE, DYN_TYPE],
        program::or_value,
    )?;
    for (arity, id) in [(3, "bylaw_replace_guard_3"), (4, "bylaw_replace_guard_4")] {
        env.add_overload(
            program::REPLACE_GUARD,
            id,
            (0..arity).map(|_| DYN_TYPE).collect(),
            program::replace_guard,
        )?;
    }
    kube::register(env)?;
    kyverno::register(env)?;
    Ok(())
}

/// The text form of a library value (quantity, IP, URL, …) for messages and JSON output.
pub fn display(value: &dyn Val) -> Option<String> {
    kube::display(value).or_else(|| kyverno::display(value))
}

/// Checks constant arguments when the policy loads (Kubernetes does the same for regexes):
/// `matches`, `find` and `findAll` with a literal pattern must have a valid one.
pub fn check_literals(expr: &IdedExpr) -> Result<(), String> {
    let mut error = None;
    visit(expr, &mut |e| {
        if error.is_some() {
            return;
        }
        if let Expr::Call(call) = &e.expr {
            let pattern_at = match (call.func_name.as_str(), call.target.is_some()) {
                ("matches" | "find" | "findAll", true) => Some(0),
                ("matches", false) => Some(1),
                _ => None,
            };
            if let Some(Expr::Literal(LiteralValue::String(pattern))) =
                pattern_at.and_then(|i| call.args.get(i)).map(|a| &a.expr)
            {
                if let Err(e) = regex::Regex::new(pattern.inner()) {
                    error = Some(format!(
                        "invalid regular expression {:?}: {e}",
                        pattern.inner()
                    ));
                }
            }
        }
    });
    error.map_or(Ok(()), Err)
}

fn visit(expr: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(expr);
    match &expr.expr {
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                visit(t, f);
            }
            for a in &call.args {
                visit(a, f);
            }
        }
        Expr::Comprehension(c) => {
            for child in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(child, f);
            }
        }
        Expr::List(l) => l.elements.iter().for_each(|x| visit(x, f)),
        Expr::Select(s) => visit(&s.operand, f),
        Expr::Map(m) => {
            for entry in &m.entries {
                if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                    visit(&me.key, f);
                    visit(&me.value, f);
                }
            }
        }
        _ => {}
    }
}

// ----- helpers shared by the libraries -----

/// An error from a library function, as the interpreter reports it.
pub(crate) fn fail(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

/// The argument at `i`, of the built-in or library type `T`.
pub(crate) fn arg<'a, 'b, 'v, T>(
    args: &'a [CowVal<'b, 'v>],
    i: usize,
    function: &str,
) -> Result<&'a T, ExecutionError>
where
    T: for<'x> FromVal<'x, 'v> + Val,
{
    let value = args
        .get(i)
        .ok_or_else(|| ExecutionError::invalid_argument_count(i + 1, args.len()))?;
    let value: &'a (dyn Val + 'v) = value.as_ref();
    value.downcast_ref::<T>().ok_or_else(|| {
        fail(
            function,
            format!(
                "argument {i} is a {}, not a {}",
                value.get_type().name(),
                T::cel_type().name()
            ),
        )
    })
}

/// A string argument.
pub(crate) fn str_arg<'a>(
    args: &'a [CowVal<'_, '_>],
    i: usize,
    function: &str,
) -> Result<&'a str, ExecutionError> {
    let value = args
        .get(i)
        .ok_or_else(|| ExecutionError::invalid_argument_count(i + 1, args.len()))?;
    value
        .downcast_ref::<CelString>()
        .map(|s| s.inner())
        .ok_or_else(|| {
            fail(
                function,
                format!(
                    "argument {i} is a {}, not a string",
                    value.get_type().name()
                ),
            )
        })
}

/// An integer argument.
pub(crate) fn int_arg(
    args: &[CowVal<'_, '_>],
    i: usize,
    function: &str,
) -> Result<i64, ExecutionError> {
    let value = args
        .get(i)
        .ok_or_else(|| ExecutionError::invalid_argument_count(i + 1, args.len()))?;
    value
        .downcast_ref::<CelInt>()
        .map(|n| *n.inner())
        .ok_or_else(|| {
            fail(
                function,
                format!("argument {i} is a {}, not an int", value.get_type().name()),
            )
        })
}

pub(crate) fn ok_bool<'b, 'v>(b: bool) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelBool::from(b)))
}

pub(crate) fn ok_int<'b, 'v>(i: i64) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelInt::from(i)))
}

pub(crate) fn ok_uint<'b, 'v>(u: u64) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelUInt::from(u)))
}

pub(crate) fn ok_double<'b, 'v>(d: f64) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelDouble::from(d)))
}

pub(crate) fn ok_string<'b, 'v>(s: String) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelString::from(s)))
}

/// Declares a library value type: a `'static` Rust type with a CEL type of its own, equal by
/// `PartialEq`, cloned by `Clone`.
macro_rules! library_type {
    ($rust:ty, $cel:ident, $name:literal) => {
        pub static $cel: cel::common::types::Type =
            cel::common::types::Type::new_unspecified_type($name);

        impl cel::common::value::Val for $rust {
            fn get_type(&self) -> &cel::common::types::Type {
                &$cel
            }

            fn cel_type() -> &'static cel::common::types::Type {
                &$cel
            }

            fn equals(&self, other: &dyn cel::common::value::Val) -> bool {
                other.downcast_ref::<$rust>().is_some_and(|o| o == self)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn cel::common::value::Val + 'v> {
                Box::new(self.clone())
            }

            fn as_any(&self) -> Option<&dyn std::any::Any> {
                Some(self)
            }
        }

        impl cel::common::value::StaticVal for $rust {}
    };
}
pub(crate) use library_type;

/// The CEL type a library value type declares, for overload signatures.
pub(crate) fn type_of<T: Val>() -> Type {
    T::cel_type().to_owned()
}
