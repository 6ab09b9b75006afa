//! Operands of Kyverno's arithmetic functions (`add`, `subtract`, `multiply`, `divide`,
//! `modulo`, `sum`): plain numbers, Kubernetes quantities (`"1Gi"`, `"500m"`) and Go
//! durations (`"1h30m"`). A string is read as a quantity first, then as a duration.
//!
//! Quantities are the engine's one Kubernetes quantity ([`crate::quantity::Quantity`]): exact
//! decimals printed in canonical form, so `add('1Gi', '512Mi')` is `"1536Mi"` as in Kyverno.

use serde_json::Value;

use super::gotime::{format_duration, parse_duration, NANOS_PER_SECOND};
use super::value::num;
use crate::quantity::Quantity;

/// One arithmetic operand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Scalar(f64),
    Quantity(Quantity),
    /// Nanoseconds.
    Duration(i64),
}

/// Errors named by the Kyverno message they produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArithError {
    TypeMismatch,
    ZeroDivision,
    NonIntModulo,
    Overflow,
}

impl ArithError {
    pub(crate) fn message(&self) -> &'static str {
        match self {
            ArithError::TypeMismatch => "Types mismatch",
            ArithError::ZeroDivision => "Zero divisor passed",
            ArithError::NonIntModulo => "Non-integer argument(s) passed for modulo",
            ArithError::Overflow => "result out of range",
        }
    }
}

type Res = Result<Value, ArithError>;

impl Operand {
    /// Reads an argument: numbers are scalars; strings are quantities, else durations.
    pub(crate) fn from_value(value: &Value) -> Option<Operand> {
        match value {
            Value::Number(n) => n.as_f64().map(Operand::Scalar),
            Value::String(s) => Quantity::parse(s)
                .map(Operand::Quantity)
                .or_else(|| parse_duration(s).map(Operand::Duration)),
            _ => None,
        }
    }
}

fn quantity_value(q: Quantity) -> Value {
    Value::String(q.to_string())
}

fn duration_value(nanos: i64) -> Value {
    Value::String(format_duration(nanos))
}

/// `time.Duration(seconds * float64(time.Second))`, truncating like Go's conversion.
fn seconds_to_nanos(seconds: f64) -> i64 {
    let nanos = seconds * NANOS_PER_SECOND as f64;
    if nanos.is_nan() {
        i64::MIN
    } else {
        nanos as i64
    }
}

fn seconds(nanos: i64) -> f64 {
    nanos as f64 / NANOS_PER_SECOND as f64
}

pub(crate) fn add(a: Operand, b: Operand) -> Res {
    match (a, b) {
        (Operand::Quantity(x), Operand::Quantity(y)) => x
            .checked_add(&y)
            .map(quantity_value)
            .ok_or(ArithError::Overflow),
        (Operand::Duration(x), Operand::Duration(y)) => Ok(duration_value(x.wrapping_add(y))),
        (Operand::Scalar(x), Operand::Scalar(y)) => Ok(num(x + y)),
        _ => Err(ArithError::TypeMismatch),
    }
}

pub(crate) fn subtract(a: Operand, b: Operand) -> Res {
    match (a, b) {
        (Operand::Quantity(x), Operand::Quantity(y)) => x
            .checked_sub(&y)
            .map(quantity_value)
            .ok_or(ArithError::Overflow),
        (Operand::Duration(x), Operand::Duration(y)) => Ok(duration_value(x.wrapping_sub(y))),
        (Operand::Scalar(x), Operand::Scalar(y)) => Ok(num(x - y)),
        _ => Err(ArithError::TypeMismatch),
    }
}

/// Quantity × number: the number as the quantity `ParseQuantity(fmt.Sprintf("%v", f))`, the
/// product exact, as in Kyverno.
fn multiply_quantity(q: &Quantity, f: f64) -> Res {
    let factor = Quantity::from_f64(f).ok_or(ArithError::Overflow)?;
    q.checked_mul(&factor)
        .map(quantity_value)
        .ok_or(ArithError::Overflow)
}

pub(crate) fn multiply(a: Operand, b: Operand) -> Res {
    match (a, b) {
        (Operand::Scalar(x), Operand::Scalar(y)) => Ok(num(x * y)),
        (Operand::Quantity(q), Operand::Scalar(f)) | (Operand::Scalar(f), Operand::Quantity(q)) => {
            multiply_quantity(&q, f)
        }
        (Operand::Duration(d), Operand::Scalar(f)) | (Operand::Scalar(f), Operand::Duration(d)) => {
            Ok(duration_value(seconds_to_nanos(seconds(d) * f)))
        }
        _ => Err(ArithError::TypeMismatch),
    }
}

pub(crate) fn divide(a: Operand, b: Operand) -> Res {
    match (a, b) {
        (Operand::Quantity(x), Operand::Quantity(y)) => {
            let divisor = y.to_f64();
            if divisor == 0.0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(num(x.to_f64() / divisor))
        }
        (Operand::Quantity(q), Operand::Scalar(f)) => {
            if f == 0.0 {
                return Err(ArithError::ZeroDivision);
            }
            let divisor = Quantity::from_f64(f).ok_or(ArithError::Overflow)?;
            // inf.Dec QuoRound to the larger scale, rounding toward zero.
            q.checked_div_trunc(&divisor)
                .map(quantity_value)
                .ok_or(ArithError::Overflow)
        }
        (Operand::Duration(x), Operand::Duration(y)) => {
            if y == 0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(num(seconds(x) / seconds(y)))
        }
        (Operand::Duration(d), Operand::Scalar(f)) => {
            if f == 0.0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(duration_value(seconds_to_nanos(seconds(d) / f)))
        }
        (Operand::Scalar(x), Operand::Scalar(y)) => {
            if y == 0.0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(num(x / y))
        }
        _ => Err(ArithError::TypeMismatch),
    }
}

fn integral(f: f64) -> Option<i64> {
    let i = f as i64;
    (i as f64 == f).then_some(i)
}

pub(crate) fn modulo(a: Operand, b: Operand) -> Res {
    match (a, b) {
        (Operand::Quantity(x), Operand::Quantity(y)) => {
            let i1 = integral(x.to_f64()).ok_or(ArithError::NonIntModulo)?;
            let i2 = integral(y.to_f64()).ok_or(ArithError::NonIntModulo)?;
            if i2 == 0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(quantity_value(Quantity::from_i64(
                i1.wrapping_rem(i2),
                x.format(),
            )))
        }
        (Operand::Duration(x), Operand::Duration(y)) => {
            if y == 0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(duration_value(x.wrapping_rem(y)))
        }
        (Operand::Scalar(x), Operand::Scalar(y)) => {
            let i1 = integral(x).ok_or(ArithError::NonIntModulo)?;
            let i2 = integral(y).ok_or(ArithError::NonIntModulo)?;
            if i2 == 0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(num(i1.wrapping_rem(i2) as f64))
        }
        _ => Err(ArithError::TypeMismatch),
    }
}
