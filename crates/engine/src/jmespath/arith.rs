//! Operands of Kyverno's arithmetic functions (`add`, `subtract`, `multiply`, `divide`,
//! `modulo`, `sum`): plain numbers, Kubernetes quantities (`"1Gi"`, `"500m"`) and Go
//! durations (`"1h30m"`). A string is read as a quantity first, then as a duration.
//!
//! Quantities are exact decimals here (mantissa × 10^-scale) printed in Kubernetes'
//! canonical form, so `add('1Gi', '512Mi')` is `"1536Mi"` as in Kyverno.

use serde_json::Value;

use super::gotime::{format_duration, parse_duration, NANOS_PER_SECOND};
use super::value::{go_g, num};

/// How a quantity was written, which decides how results print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

/// An exact Kubernetes quantity: `mantissa × 10^(-scale)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quantity {
    mantissa: i128,
    scale: i32,
    format: Format,
}

/// One arithmetic operand.
#[derive(Debug, Clone, Copy, PartialEq)]
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

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Quantity {
    /// `resource.ParseQuantity`.
    pub(crate) fn parse(input: &str) -> Option<Quantity> {
        let s = input;
        if s.is_empty() {
            return None;
        }
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, s.get(1..)?),
            Some(b'+') => (false, s.get(1..)?),
            _ => (false, s),
        };
        let int_len = body.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = body.get(..int_len)?;
        let mut rest = body.get(int_len..)?;
        let mut frac_part = "";
        if let Some(after) = rest.strip_prefix('.') {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = after.get(..n)?;
            rest = after.get(n..)?;
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let (base2_exp, dec_exp, format): (u32, i32, Format) = match rest {
            "" => (0, 0, Format::DecimalSI),
            "n" => (0, -9, Format::DecimalSI),
            "u" => (0, -6, Format::DecimalSI),
            "m" => (0, -3, Format::DecimalSI),
            "k" => (0, 3, Format::DecimalSI),
            "M" => (0, 6, Format::DecimalSI),
            "G" => (0, 9, Format::DecimalSI),
            "T" => (0, 12, Format::DecimalSI),
            "P" => (0, 15, Format::DecimalSI),
            "E" => (0, 18, Format::DecimalSI),
            "Ki" => (10, 0, Format::BinarySI),
            "Mi" => (20, 0, Format::BinarySI),
            "Gi" => (30, 0, Format::BinarySI),
            "Ti" => (40, 0, Format::BinarySI),
            "Pi" => (50, 0, Format::BinarySI),
            "Ei" => (60, 0, Format::BinarySI),
            other => {
                let exp = other.strip_prefix(['e', 'E'])?;
                if exp.is_empty() {
                    return None;
                }
                let parsed: i32 = exp.parse().ok()?;
                (0, parsed, Format::DecimalExponent)
            }
        };
        let digits = format!("{int_part}{frac_part}");
        if digits.len() > 30 {
            return None;
        }
        let mut mantissa: i128 = digits.parse().ok()?;
        mantissa = mantissa.checked_mul(1i128.checked_shl(base2_exp)?)?;
        let frac_len = i32::try_from(frac_part.len()).ok()?;
        let mut scale = frac_len - dec_exp;
        // Kubernetes rounds anything finer than a nano up (away from zero).
        if scale > 9 {
            let drop = u32::try_from(scale - 9).ok()?;
            let div = pow10(drop)?;
            let rounded = mantissa / div + i128::from(mantissa % div != 0);
            mantissa = rounded;
            scale = 9;
        }
        if negative {
            mantissa = -mantissa;
        }
        let mut format = format;
        if format == Format::BinarySI
            && mantissa != 0
            && mantissa.abs() < pow10(u32::try_from(scale.max(0)).ok()?)?
        {
            // Below one, binary suffixes cannot express the value.
            format = Format::DecimalSI;
        }
        Some(Quantity {
            mantissa,
            scale,
            format,
        })
    }

    fn from_int(value: i128, format: Format) -> Quantity {
        Quantity {
            mantissa: value,
            scale: 0,
            format,
        }
    }

    fn as_f64(&self) -> f64 {
        self.mantissa as f64 / 10f64.powi(self.scale)
    }

    fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Both mantissas at the finer of the two scales.
    fn aligned(&self, other: &Quantity) -> Option<(i128, i128, i32)> {
        let scale = self.scale.max(other.scale);
        let a = self
            .mantissa
            .checked_mul(pow10(u32::try_from(scale - self.scale).ok()?)?)?;
        let b = other
            .mantissa
            .checked_mul(pow10(u32::try_from(scale - other.scale).ok()?)?)?;
        Some((a, b, scale))
    }

    fn add(&self, other: &Quantity) -> Option<Quantity> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Quantity {
            mantissa: a.checked_add(b)?,
            scale,
            format: if self.is_zero() {
                other.format
            } else {
                self.format
            },
        })
    }

    fn sub(&self, other: &Quantity) -> Option<Quantity> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Quantity {
            mantissa: a.checked_sub(b)?,
            scale,
            format: if self.is_zero() {
                other.format
            } else {
                self.format
            },
        })
    }

    /// Whole value when it has no fractional part.
    fn as_integer(&self) -> Option<i128> {
        if self.scale <= 0 {
            return self
                .mantissa
                .checked_mul(pow10(u32::try_from(-self.scale).ok()?)?);
        }
        let div = pow10(u32::try_from(self.scale).ok()?)?;
        (self.mantissa % div == 0).then_some(self.mantissa / div)
    }

    /// `Quantity.String()`: Kubernetes' canonical form.
    pub(crate) fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_owned();
        }
        let mut format = self.format;
        if format == Format::BinarySI {
            let small = self.as_integer().is_some_and(|v| v > -1024 && v < 1024)
                || self.as_f64().abs() < 1024.0;
            if small || self.as_integer().is_none() {
                format = Format::DecimalSI;
            }
        }
        if format == Format::BinarySI {
            let mut value = self.as_integer().unwrap_or(0);
            let mut power = 0;
            while value != 0 && value % 1024 == 0 && power < 6 {
                value /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .get(power)
                .copied()
                .unwrap_or("");
            return format!("{value}{suffix}");
        }
        let mut mantissa = self.mantissa;
        let mut exponent = -self.scale;
        while mantissa != 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            exponent += 1;
        }
        while exponent % 3 != 0 {
            mantissa *= 10;
            exponent -= 1;
        }
        let suffix = match format {
            Format::DecimalExponent => {
                if exponent == 0 {
                    String::new()
                } else {
                    format!("e{exponent}")
                }
            }
            _ => match exponent {
                -9 => "n".into(),
                -6 => "u".into(),
                -3 => "m".into(),
                0 => String::new(),
                3 => "k".into(),
                6 => "M".into(),
                9 => "G".into(),
                12 => "T".into(),
                15 => "P".into(),
                18 => "E".into(),
                other => format!("e{other}"),
            },
        };
        format!("{mantissa}{suffix}")
    }
}

/// A float as the quantity `ParseQuantity(fmt.Sprintf("%v", f))` gives.
fn scalar_quantity(f: f64) -> Option<Quantity> {
    Quantity::parse(&go_g(f))
}

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
    Value::String(q.canonical())
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
        (Operand::Quantity(x), Operand::Quantity(y)) => {
            x.add(&y).map(quantity_value).ok_or(ArithError::Overflow)
        }
        (Operand::Duration(x), Operand::Duration(y)) => Ok(duration_value(x.wrapping_add(y))),
        (Operand::Scalar(x), Operand::Scalar(y)) => Ok(num(x + y)),
        _ => Err(ArithError::TypeMismatch),
    }
}

pub(crate) fn subtract(a: Operand, b: Operand) -> Res {
    match (a, b) {
        (Operand::Quantity(x), Operand::Quantity(y)) => {
            x.sub(&y).map(quantity_value).ok_or(ArithError::Overflow)
        }
        (Operand::Duration(x), Operand::Duration(y)) => Ok(duration_value(x.wrapping_sub(y))),
        (Operand::Scalar(x), Operand::Scalar(y)) => Ok(num(x - y)),
        _ => Err(ArithError::TypeMismatch),
    }
}

fn multiply_quantity(q: Quantity, f: f64) -> Res {
    let s = scalar_quantity(f).ok_or(ArithError::Overflow)?;
    let mantissa = q
        .mantissa
        .checked_mul(s.mantissa)
        .ok_or(ArithError::Overflow)?;
    Ok(quantity_value(Quantity {
        mantissa,
        scale: q.scale + s.scale,
        format: q.format,
    }))
}

pub(crate) fn multiply(a: Operand, b: Operand) -> Res {
    match (a, b) {
        (Operand::Scalar(x), Operand::Scalar(y)) => Ok(num(x * y)),
        (Operand::Quantity(q), Operand::Scalar(f)) | (Operand::Scalar(f), Operand::Quantity(q)) => {
            multiply_quantity(q, f)
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
            let divisor = y.as_f64();
            if divisor == 0.0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(num(x.as_f64() / divisor))
        }
        (Operand::Quantity(q), Operand::Scalar(f)) => {
            if f == 0.0 {
                return Err(ArithError::ZeroDivision);
            }
            let s = scalar_quantity(f).ok_or(ArithError::Overflow)?;
            // inf.Dec QuoRound to the larger scale, rounding toward zero.
            let scale = q.scale.max(s.scale);
            let shift = scale + s.scale - q.scale;
            let (num_, den) = if shift >= 0 {
                (
                    q.mantissa
                        .checked_mul(
                            pow10(u32::try_from(shift).map_err(|_| ArithError::Overflow)?)
                                .ok_or(ArithError::Overflow)?,
                        )
                        .ok_or(ArithError::Overflow)?,
                    s.mantissa,
                )
            } else {
                (
                    q.mantissa,
                    s.mantissa
                        .checked_mul(
                            pow10(u32::try_from(-shift).map_err(|_| ArithError::Overflow)?)
                                .ok_or(ArithError::Overflow)?,
                        )
                        .ok_or(ArithError::Overflow)?,
                )
            };
            if den == 0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(quantity_value(Quantity {
                mantissa: num_ / den,
                scale,
                format: q.format,
            }))
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
            let i1 = integral(x.as_f64()).ok_or(ArithError::NonIntModulo)?;
            let i2 = integral(y.as_f64()).ok_or(ArithError::NonIntModulo)?;
            if i2 == 0 {
                return Err(ArithError::ZeroDivision);
            }
            Ok(quantity_value(Quantity::from_int(
                i128::from(i1.wrapping_rem(i2)),
                x.format,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn canonical_forms_match_kubernetes() {
        let cases = [
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("1.5", "1500m"),
            ("1k", "1k"),
            ("1000", "1k"),
            ("12e6", "12e6"),
            ("0", "0"),
            ("512Ki", "512Ki"),
            ("0.5Ki", "512"),
        ];
        for (input, expected) in cases {
            assert_eq!(q(input).canonical(), expected, "{input}");
        }
    }

    #[test]
    fn rejects_non_quantities() {
        for bad in ["", "abc", "1h", "1.2.3", "Gi", "1Gb", "1e"] {
            assert!(Quantity::parse(bad).is_none(), "{bad}");
        }
    }
}
