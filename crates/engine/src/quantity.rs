//! Kubernetes resource quantities (`"500m"`, `"1Gi"`, `"1e3"`) and Go durations (`"1h30m"`).
//!
//! [`Quantity`] follows the parsing, comparison and canonical printing rules of Kubernetes'
//! `resource.Quantity` exactly: values are exact decimals (never floats), finer than a nano are
//! rounded away from zero, binary (`Ki`…`Ei`) values are capped at 2^63-1. It also keeps the same
//! internal "unscaled × 10^exp" shape Kubernetes keeps, because Kyverno's arithmetic (division
//! scale, `AsApproximateFloat64`) depends on it.
//!
//! [`parse_duration`] and [`format_duration`] follow Go's `time.ParseDuration` and
//! `Duration.String()`.

use std::cmp::Ordering;
use std::fmt;

/// How a quantity prints; remembered from the suffix it was parsed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `12e6`
    DecimalExponent,
    /// `12Mi` (powers of 1024)
    BinarySI,
    /// `12M` (powers of 1000)
    DecimalSI,
}

/// Largest operand or result size (in decimal digits) the arithmetic helpers accept; beyond it
/// they return `None` instead of doing unbounded work on hostile input.
const MAX_ARITH_DIGITS: usize = 2048;
/// Parsing pads small-exponent values to nano scale like Kubernetes does, but never by more
/// zeros than this (only absurd exponents such as `1e999999` hit the limit).
const MAX_PAD_DIGITS: i64 = 1024;
/// Kubernetes keeps parsed values down to nano (10^-9).
const NANO_EXP: i64 = -9;
/// `2^63 - 1`, the cap Kubernetes applies to binary-suffixed values.
const MAX_INT64_DIGITS: &[u8] = &[9, 2, 2, 3, 3, 7, 2, 0, 3, 6, 8, 5, 4, 7, 7, 5, 8, 0, 7];

/// An exact Kubernetes resource quantity.
///
/// Equality and ordering compare values: `"1Gi" == "1024Mi"`, `"0.5" == "500m"`.
#[derive(Clone, Debug)]
pub struct Quantity {
    negative: bool,
    /// Unscaled magnitude, most significant digit first, no leading zeros; empty means zero.
    /// Trailing zeros are kept, as Kubernetes keeps them.
    digits: Vec<u8>,
    /// The value is `±digits × 10^exp`.
    exp: i64,
    format: Format,
    /// The original text, kept when Kubernetes would print it back unchanged.
    text: Option<Box<str>>,
}

impl Quantity {
    fn zero(format: Format) -> Quantity {
        Quantity {
            negative: false,
            digits: Vec::new(),
            exp: 0,
            format,
            text: None,
        }
    }

    fn from_parts(negative: bool, digits: Vec<u8>, exp: i64, format: Format) -> Quantity {
        let digits = trim_leading_zeros(digits);
        Quantity {
            negative: negative && !digits.is_empty(),
            digits,
            exp,
            format,
            text: None,
        }
    }

    /// The value as an `i64` when it is a whole number that fits one: patterns compare JSON
    /// integers (ports, user IDs) with it directly instead of parsing their text.
    pub fn as_exact_i64(&self) -> Option<i64> {
        if self.digits.is_empty() {
            return Some(0);
        }
        // Digits below the decimal point must all be zeros.
        let fraction = usize::try_from(self.exp.checked_neg()?).unwrap_or(0);
        let whole_digits = self.digits.len().checked_sub(fraction)?;
        let (whole, below) = self.digits.split_at(whole_digits);
        if below.iter().any(|&digit| digit != 0) {
            return None;
        }
        let mut value: i64 = 0;
        for &digit in whole {
            value = value.checked_mul(10)?.checked_add(i64::from(digit))?;
        }
        if value != 0 {
            for _ in 0..self.exp {
                value = value.checked_mul(10)?;
            }
        }
        Some(if self.negative { -value } else { value })
    }

    /// Parses a quantity exactly as Kubernetes' `resource.ParseQuantity` does; `None` where it
    /// returns an error.
    pub fn parse(s: &str) -> Option<Quantity> {
        if s.is_empty() {
            return None;
        }
        if s == "0" {
            let mut zero = Quantity::zero(Format::DecimalSI);
            zero.text = Some(s.into());
            return Some(zero);
        }
        let scan = scan_quantity(s)?;
        let (base, exponent, format) = interpret_suffix(scan.suffix)?;

        let num_len = scan.num.len() as i64;
        let den_len = scan.denom.len() as i64;
        let (precision, scale, shift) = match format {
            Format::DecimalExponent | Format::DecimalSI => {
                (18 - (num_len + den_len), i64::from(exponent), 0)
            }
            Format::BinarySI if exponent >= 0 && scan.denom.is_empty() => {
                // Kubernetes estimates the decimal digits a binary suffix adds as exponent*3/10.
                let exponent = i64::from(exponent);
                (15 - num_len - exponent * 3 / 10 - 1, 0, exponent)
            }
            Format::BinarySI => (-1, 0, 0),
        };

        // Fast path: the value fits an int64 mantissa with a scale of at least nano.
        if precision >= 0 {
            // Kubernetes does this in int32 arithmetic.
            let scale = i64::from((scale - den_len) as i32);
            if scale >= NANO_EXP {
                let shifted = format!("{}{}", scan.num, scan.denom);
                let value: i64 = shifted.parse().ok()?;
                if let Some(result) = 1i64
                    .checked_shl(shift as u32)
                    .and_then(|mantissa| value.checked_mul(mantissa))
                {
                    let result = if scan.positive { result } else { -result };
                    let mut quantity = Quantity::from_parts(
                        result < 0,
                        digits_of_u128(u128::from(result.unsigned_abs())),
                        scale,
                        format,
                    );
                    let canonical = match format {
                        Format::BinarySI => i64::from(exponent) % 10 == 0 && value & 0x07 != 0,
                        _ => {
                            scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
                        }
                    };
                    if canonical {
                        quantity.text = Some(s.into());
                    }
                    return Some(quantity);
                }
            }
        }

        // Slow path: exact decimal arithmetic, then Kubernetes' rounding and capping.
        if !scan.value_has_digit {
            return None;
        }
        let mut digits: Vec<u8> = scan
            .num
            .bytes()
            .chain(scan.denom.bytes())
            .map(|b| b - b'0')
            .collect();
        digits = trim_leading_zeros(digits);
        let mut exp = -den_len;
        if base == 10 {
            exp += i64::from(exponent);
        } else {
            for _ in 0..exponent / 10 {
                digits = mag_mul_small(&digits, 1024);
            }
        }
        let mut format = format;
        if !digits.is_empty() {
            if exp < NANO_EXP {
                let drop = usize::try_from(NANO_EXP - exp).unwrap_or(usize::MAX);
                let keep = digits.len().saturating_sub(drop);
                let dropped_nonzero = digits.iter().skip(keep).any(|&d| d != 0);
                digits.truncate(keep);
                if dropped_nonzero {
                    digits = mag_add(&digits, &[1]);
                }
                exp = NANO_EXP;
            } else if exp > NANO_EXP && exp - NANO_EXP <= MAX_PAD_DIGITS {
                digits.resize(digits.len() + (exp - NANO_EXP) as usize, 0);
                exp = NANO_EXP;
            }
            if format == Format::BinarySI
                && mag_cmp(&digits, exp, MAX_INT64_DIGITS, 0) == Ordering::Greater
            {
                digits = MAX_INT64_DIGITS.to_vec();
                exp = 0;
            }
            if format == Format::BinarySI && (digits.len() as i64) + exp <= 0 {
                format = Format::DecimalSI;
            }
        }
        Some(Quantity::from_parts(!scan.positive, digits, exp, format))
    }

    /// The quantity Kyverno gets from a JSON number: `ParseQuantity(fmt.Sprintf("%v", f))`.
    /// `None` for NaN and infinities. Used for quantity × number and quantity ÷ number.
    pub fn from_f64(f: f64) -> Option<Quantity> {
        if !f.is_finite() {
            return None;
        }
        Quantity::parse(&go_format_float(f))
    }

    /// An integer quantity in the given format (Kubernetes' `NewQuantity`).
    pub fn from_i64(value: i64, format: Format) -> Quantity {
        Quantity::from_parts(
            value < 0,
            digits_of_u128(u128::from(value.unsigned_abs())),
            0,
            format,
        )
    }

    /// The format the quantity prints in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// The value as an integer when it is one and fits in 64 bits (Kubernetes' `AsInt64`).
    pub fn to_i64(&self) -> Option<i64> {
        let len = i64::try_from(self.digits.len()).ok()?;
        let whole = usize::try_from((len + self.exp.min(0)).max(0)).ok()?;
        let (int_digits, fraction) = self.digits.split_at(whole.min(self.digits.len()));
        if fraction.iter().any(|d| *d != 0) {
            return None;
        }
        let mut value: i128 = 0;
        for d in int_digits {
            value = value.checked_mul(10)?.checked_add(i128::from(*d))?;
            if value > i128::from(u64::MAX) {
                return None;
            }
        }
        // Zero stays zero however large the exponent; anything else overflows past 10^19, so
        // the loop is short (a fuzzed `0e88888888888807` looped 10^14 times here).
        if value == 0 {
            return Some(0);
        }
        for _ in 0..self.exp.clamp(0, 20) {
            value = value.checked_mul(10)?;
            if value > i128::from(u64::MAX) {
                return None;
            }
        }
        if self.negative {
            value = -value;
        }
        i64::try_from(value).ok()
    }

    /// -1, 0 or 1 by the sign of the value.
    pub fn signum(&self) -> i32 {
        match (self.digits.is_empty(), self.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }

    /// An approximate float, computed like Kubernetes' `AsApproximateFloat64` (so that float
    /// results Kyverno derives from it, such as quantity ÷ quantity, come out identical).
    pub fn to_f64(&self) -> f64 {
        let base = if self.digits.is_empty() {
            0.0
        } else {
            digits_to_string(&self.digits)
                .parse::<f64>()
                .unwrap_or(f64::INFINITY)
        };
        let base = if self.negative { -base } else { base };
        if self.exp == 0 {
            return base;
        }
        base * go_pow10(self.exp)
    }

    /// `self + other`, exact (Kubernetes' `Quantity.Add`); the result keeps `self`'s format
    /// unless `self` is zero. `None` only when the operands are too far apart to add cheaply.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        self.add_signed(other, other.negative)
    }

    /// `self - other`, exact (Kubernetes' `Quantity.Sub`); formats as in [`Self::checked_add`].
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        self.add_signed(other, !other.negative)
    }

    fn add_signed(&self, other: &Quantity, other_negative: bool) -> Option<Quantity> {
        let format = if self.is_zero() {
            other.format
        } else {
            self.format
        };
        if other.is_zero() {
            let mut sum = self.clone();
            sum.text = None;
            sum.format = format;
            return Some(sum);
        }
        if self.is_zero() {
            return Some(Quantity::from_parts(
                other_negative,
                other.digits.clone(),
                other.exp,
                format,
            ));
        }
        let exp = self.exp.min(other.exp);
        let a = shift_left(&self.digits, self.exp - exp)?;
        let b = shift_left(&other.digits, other.exp - exp)?;
        let (negative, digits) = if self.negative == other_negative {
            (self.negative, mag_add(&a, &b))
        } else {
            match mag_cmp(&a, 0, &b, 0) {
                Ordering::Less => (other_negative, mag_sub(&b, &a)),
                _ => (self.negative, mag_sub(&a, &b)),
            }
        };
        Some(Quantity::from_parts(negative, digits, exp, format))
    }

    /// `self × other`, exact; the result keeps `self`'s format and is not rounded (what
    /// Kyverno's `multiply` does with `inf.Dec.Mul` and `NewDecimalQuantity`).
    pub fn checked_mul(&self, other: &Quantity) -> Option<Quantity> {
        if self.digits.len() + other.digits.len() > MAX_ARITH_DIGITS {
            return None;
        }
        let exp = self.exp.checked_add(other.exp)?;
        Some(Quantity::from_parts(
            self.negative != other.negative,
            mag_mul(&self.digits, &other.digits),
            exp,
            self.format,
        ))
    }

    /// `self ÷ divisor`, truncated toward zero at the finer decimal scale of the two operands
    /// (Kyverno's quantity ÷ number: `QuoRound(.., max(scales), RoundDown)`); keeps `self`'s
    /// format. `None` for a zero divisor or operands too large to divide cheaply.
    pub fn checked_div_trunc(&self, divisor: &Quantity) -> Option<Quantity> {
        if divisor.is_zero() {
            return None;
        }
        let result_exp = self.exp.min(divisor.exp);
        // quotient / 10^result_exp = self.digits × 10^shift / divisor.digits
        let shift = self.exp - divisor.exp - result_exp;
        let numerator = shift_left(&self.digits, shift.max(0))?;
        let denominator = shift_left(&divisor.digits, (-shift).max(0))?;
        if numerator.len() + denominator.len() > MAX_ARITH_DIGITS {
            return None;
        }
        Some(Quantity::from_parts(
            self.negative != divisor.negative,
            mag_div(&numerator, &denominator),
            result_exp,
            self.format,
        ))
    }

    /// Digits with trailing zeros moved into the exponent.
    fn normalized(&self) -> (&[u8], i64) {
        let zeros = self.digits.iter().rev().take_while(|&&d| d == 0).count();
        let len = self.digits.len() - zeros;
        (
            self.digits.get(..len).unwrap_or(&[]),
            self.exp + zeros as i64,
        )
    }

    fn write_canonical(&self, out: &mut String) {
        if self.is_zero() {
            out.push('0');
            return;
        }
        let (digits, exp) = self.normalized();
        let mut format = self.format;
        if format == Format::BinarySI {
            let small = mag_cmp(digits, exp, &[1, 0, 2, 4], 0) == Ordering::Less;
            // Huge exponents only arise from arithmetic; printing them in decimal keeps the
            // output small where Kubernetes would spell out every digit.
            if small || !(0..=MAX_PAD_DIGITS).contains(&exp) {
                format = Format::DecimalSI;
            }
        }
        if self.negative {
            out.push('-');
        }
        if format == Format::BinarySI {
            // An integer ≥ 1024: print it in the largest power of 1024 that divides it.
            let mut value = digits.to_vec();
            value.resize(digits.len() + exp as usize, 0);
            let mut power = 0;
            while power < BINARY_SUFFIXES.len() - 1 {
                let (quotient, remainder) = mag_divrem_small(&value, 1024);
                if remainder != 0 {
                    break;
                }
                value = quotient;
                power += 1;
            }
            out.push_str(&digits_to_string(&value));
            out.push_str(BINARY_SUFFIXES.get(power).copied().unwrap_or(""));
            return;
        }
        // Lower the exponent to a multiple of 3 by padding zeros.
        let pad = exp.rem_euclid(3);
        out.push_str(&digits_to_string(digits));
        for _ in 0..pad {
            out.push('0');
        }
        let exp = exp - pad;
        let suffix = match format {
            Format::DecimalSI => decimal_suffix(exp),
            _ => None,
        };
        match suffix {
            Some(suffix) => out.push_str(suffix),
            None if exp == 0 => {}
            None => {
                out.push('e');
                out.push_str(&exp.to_string());
            }
        }
    }
}

impl fmt::Display for Quantity {
    /// The canonical form Kubernetes prints (`1.5Gi` → `1536Mi`, `0.5` → `500m`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = &self.text {
            return f.write_str(text);
        }
        let mut out = String::new();
        self.write_canonical(&mut out);
        f.write_str(&out)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.signum(), other.signum());
        if a != b {
            return a.cmp(&b);
        }
        if a == 0 {
            return Ordering::Equal;
        }
        let magnitude = mag_cmp(&self.digits, self.exp, &other.digits, other.exp);
        if a > 0 {
            magnitude
        } else {
            magnitude.reverse()
        }
    }
}

impl std::str::FromStr for Quantity {
    type Err = InvalidQuantity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s).ok_or_else(|| InvalidQuantity(s.to_owned()))
    }
}

/// A string that is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {0:?}")]
pub struct InvalidQuantity(pub String);

const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

fn decimal_suffix(exp: i64) -> Option<&'static str> {
    Some(match exp {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

/// The pieces of a quantity string, as Kubernetes' scanner splits them.
struct Scan<'a> {
    positive: bool,
    /// Integer digits without leading zeros; `"0"` when there are none.
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
    value_has_digit: bool,
}

fn scan_quantity(s: &str) -> Option<Scan<'_>> {
    let bytes = s.as_bytes();
    let end = bytes.len();
    let mut pos = 0;
    let mut positive = true;
    match bytes.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    while pos < end && bytes.get(pos) == Some(&b'0') {
        pos += 1;
    }
    if pos >= end {
        return Some(Scan {
            positive,
            num: "0",
            denom: "",
            suffix: "",
            value_has_digit: true,
        });
    }
    let num_start = pos;
    while pos < end && bytes.get(pos).is_some_and(u8::is_ascii_digit) {
        pos += 1;
    }
    let num = match s.get(num_start..pos) {
        Some("") | None => "0",
        Some(num) => num,
    };
    let mut denom = "";
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        let denom_start = pos;
        while pos < end && bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        denom = s.get(denom_start..pos).unwrap_or("");
    }
    // Kubernetes' slow path needs at least one digit before the suffix ("." alone is not a number).
    let value_has_digit = s
        .get(..pos)
        .is_some_and(|value| value.bytes().any(|b| b.is_ascii_digit()));
    let suffix_start = pos;
    while pos < end && bytes.get(pos).is_some_and(|b| b"eEinumkKMGTP".contains(b)) {
        pos += 1;
    }
    if matches!(bytes.get(pos), Some(b'-' | b'+')) {
        pos += 1;
    }
    while pos < end {
        if !bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        pos += 1;
    }
    Some(Scan {
        positive,
        num,
        denom,
        suffix: s.get(suffix_start..).unwrap_or(""),
        value_has_digit,
    })
}

/// (base, exponent, format) for a suffix, as Kubernetes' suffixer interprets it.
fn interpret_suffix(suffix: &str) -> Option<(u32, i32, Format)> {
    let decimal = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(exponent) = decimal {
        return Some((10, exponent, Format::DecimalSI));
    }
    if let Some(power) = BINARY_SUFFIXES
        .iter()
        .skip(1)
        .position(|&binary| binary == suffix)
    {
        return Some((2, (power as i32 + 1) * 10, Format::BinarySI));
    }
    let rest = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))?;
    if rest.is_empty() {
        return None;
    }
    let parsed = parse_go_int(rest)?;
    // Kubernetes narrows the parsed int64 to int32.
    Some((10, parsed as i32, Format::DecimalExponent))
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, ASCII digits, no overflow.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `fmt.Sprintf("%v", f)` for a float64: shortest digits, `%e` form when the
/// decimal exponent is below -4 or at least 6 (Go's `%g` rule for shortest precision). The one
/// `%v` float formatter of the engine (quantities from numbers, `%v` in messages).
pub(crate) fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let exp_form = format!("{f:e}");
    let (negative, body) = match exp_form.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, exp_form.as_str()),
    };
    let (mantissa, exponent) = body.split_once('e').unwrap_or((body, "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if digits == "0" {
        out.push('0');
        return out;
    }
    if !(-4..6).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.unsigned_abs()));
    } else {
        let point = exponent + 1;
        if point <= 0 {
            out.push_str("0.");
            for _ in 0..-point {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                for _ in digits.len()..point {
                    out.push('0');
                }
            } else {
                let (int_part, frac_part) = digits.split_at(point);
                out.push_str(int_part);
                out.push('.');
                out.push_str(frac_part);
            }
        }
    }
    out
}

/// Go's `math.Pow10`, bit for bit (table products, not correctly rounded powers).
fn go_pow10(n: i64) -> f64 {
    const POW10: [f64; 32] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
    ];
    const POS32: [f64; 10] = [
        1e0, 1e32, 1e64, 1e96, 1e128, 1e160, 1e192, 1e224, 1e256, 1e288,
    ];
    const NEG32: [f64; 11] = [
        1e-0, 1e-32, 1e-64, 1e-96, 1e-128, 1e-160, 1e-192, 1e-224, 1e-256, 1e-288, 1e-320,
    ];
    let small = |m: u64| POW10.get((m % 32) as usize).copied().unwrap_or(1.0);
    if (0..=308).contains(&n) {
        let m = n as u64;
        POS32
            .get((m / 32) as usize)
            .copied()
            .unwrap_or(f64::INFINITY)
            * small(m)
    } else if (-323..=0).contains(&n) {
        let m = n.unsigned_abs();
        NEG32.get((m / 32) as usize).copied().unwrap_or(0.0) / small(m)
    } else if n > 0 {
        f64::INFINITY
    } else {
        0.0
    }
}

// ---- magnitude arithmetic on decimal digit vectors (most significant first) ----

fn trim_leading_zeros(mut digits: Vec<u8>) -> Vec<u8> {
    let zeros = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..zeros);
    digits
}

fn digits_of_u128(value: u128) -> Vec<u8> {
    if value == 0 {
        return Vec::new();
    }
    value.to_string().bytes().map(|b| b - b'0').collect()
}

fn digits_to_string(digits: &[u8]) -> String {
    if digits.is_empty() {
        return "0".to_owned();
    }
    digits.iter().map(|&d| char::from(b'0' + d)).collect()
}

/// Appends `count` zeros (multiplies by 10^count), refusing absurd sizes.
fn shift_left(digits: &[u8], count: i64) -> Option<Vec<u8>> {
    if digits.is_empty() {
        return Some(Vec::new());
    }
    let count = usize::try_from(count).ok()?;
    if digits.len().checked_add(count)? > MAX_ARITH_DIGITS {
        return None;
    }
    let mut shifted = digits.to_vec();
    shifted.resize(digits.len() + count, 0);
    Some(shifted)
}

/// Compares `a × 10^a_exp` with `b × 10^b_exp` (both non-negative, no leading zeros).
fn mag_cmp(a: &[u8], a_exp: i64, b: &[u8], b_exp: i64) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (false, false) => {}
    }
    // Position of the most significant digit decides first.
    let a_top = a.len() as i64 + a_exp;
    let b_top = b.len() as i64 + b_exp;
    if a_top != b_top {
        return a_top.cmp(&b_top);
    }
    let len = a.len().max(b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        if x != y {
            return x.cmp(&y);
        }
    }
    Ordering::Equal
}

fn mag_add(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0u8;
    let mut ai = a.iter().rev();
    let mut bi = b.iter().rev();
    loop {
        let (x, y) = (ai.next(), bi.next());
        if x.is_none() && y.is_none() {
            break;
        }
        let sum = x.copied().unwrap_or(0) + y.copied().unwrap_or(0) + carry;
        out.push(sum % 10);
        carry = sum / 10;
    }
    if carry > 0 {
        out.push(carry);
    }
    out.reverse();
    trim_leading_zeros(out)
}

/// `a - b` for `a ≥ b`.
fn mag_sub(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i8;
    let mut bi = b.iter().rev();
    for &x in a.iter().rev() {
        let mut d = x as i8 - borrow - bi.next().copied().unwrap_or(0) as i8;
        borrow = 0;
        if d < 0 {
            d += 10;
            borrow = 1;
        }
        out.push(d as u8);
    }
    out.reverse();
    trim_leading_zeros(out)
}

fn mag_mul(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    // Little-endian accumulator; each slot stays far below u64 overflow for bounded sizes.
    let mut acc = vec![0u64; a.len() + b.len()];
    for (i, &x) in a.iter().rev().enumerate() {
        for (j, &y) in b.iter().rev().enumerate() {
            if let Some(slot) = acc.get_mut(i + j) {
                *slot += u64::from(x) * u64::from(y);
            }
        }
    }
    let mut carry = 0u64;
    let mut out = Vec::with_capacity(acc.len());
    for slot in acc {
        let v = slot + carry;
        out.push((v % 10) as u8);
        carry = v / 10;
    }
    while carry > 0 {
        out.push((carry % 10) as u8);
        carry /= 10;
    }
    out.reverse();
    trim_leading_zeros(out)
}

fn mag_mul_small(a: &[u8], m: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len() + 10);
    let mut carry = 0u64;
    for &x in a.iter().rev() {
        let v = u64::from(x) * u64::from(m) + carry;
        out.push((v % 10) as u8);
        carry = v / 10;
    }
    while carry > 0 {
        out.push((carry % 10) as u8);
        carry /= 10;
    }
    out.reverse();
    trim_leading_zeros(out)
}

fn mag_divrem_small(a: &[u8], d: u32) -> (Vec<u8>, u32) {
    let mut out = Vec::with_capacity(a.len());
    let mut rem = 0u64;
    for &x in a {
        let v = rem * 10 + u64::from(x);
        out.push((v / u64::from(d)) as u8);
        rem = v % u64::from(d);
    }
    (trim_leading_zeros(out), rem as u32)
}

/// `floor(a / b)` by schoolbook long division (`b` non-zero).
fn mag_div(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut quotient = Vec::with_capacity(a.len());
    let mut rem: Vec<u8> = Vec::new();
    for &x in a {
        rem.push(x);
        rem = trim_leading_zeros(rem);
        let mut q = 0u8;
        while mag_cmp(&rem, 0, b, 0) != Ordering::Less {
            rem = mag_sub(&rem, b);
            q += 1;
        }
        quotient.push(q);
    }
    trim_leading_zeros(quotient)
}

// ---- Go durations ----

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1000 * NANOSECOND;
const MILLISECOND: u64 = 1000 * MICROSECOND;
const SECOND: u64 = 1000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const OVERFLOW: u64 = 1 << 63;

/// Parses a duration like Go's `time.ParseDuration` (`"1h30m"`, `"300ms"`, `"-1.5h"`, `"0"`),
/// returning nanoseconds; `None` where Go returns an error.
pub fn parse_duration(s: &str) -> Option<i64> {
    let mut rest = s.as_bytes();
    let mut negative = false;
    if let Some((&c, tail)) = rest.split_first() {
        if c == b'-' || c == b'+' {
            negative = c == b'-';
            rest = tail;
        }
    }
    if rest == b"0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.first().copied().unwrap_or(0);
        if !(first == b'.' || first.is_ascii_digit()) {
            return None;
        }
        // Integer part; overflow is an error.
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in rest.get(..int_len).unwrap_or(&[]) {
            if whole > OVERFLOW / 10 {
                return None;
            }
            whole = whole * 10 + u64::from(c - b'0');
            if whole > OVERFLOW {
                return None;
            }
        }
        rest = rest.get(int_len..).unwrap_or(&[]);
        let pre = int_len > 0;
        // Fraction; extra precision is silently dropped.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if rest.first() == Some(&b'.') {
            rest = rest.get(1..).unwrap_or(&[]);
            let frac_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            post = frac_len > 0;
            let mut overflow = false;
            for &c in rest.get(..frac_len).unwrap_or(&[]) {
                if overflow {
                    continue;
                }
                if fraction > (OVERFLOW - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(c - b'0');
                if next > OVERFLOW {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            rest = rest.get(frac_len..).unwrap_or(&[]);
        }
        if !pre && !post {
            return None;
        }
        let unit_len = rest
            .iter()
            .take_while(|&&b| b != b'.' && !b.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return None;
        }
        let unit = match rest.get(..unit_len).unwrap_or(&[]) {
            b"ns" => NANOSECOND,
            // "µs" with the micro sign (U+00B5) or the Greek letter mu (U+03BC).
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => MICROSECOND,
            b"ms" => MILLISECOND,
            b"s" => SECOND,
            b"m" => MINUTE,
            b"h" => HOUR,
            _ => return None,
        };
        rest = rest.get(unit_len..).unwrap_or(&[]);
        if whole > OVERFLOW / unit {
            return None;
        }
        whole *= unit;
        if fraction > 0 {
            // Go computes the fractional part in float64, then truncates.
            whole += (fraction as f64 * (unit as f64 / scale)) as u64;
            if whole > OVERFLOW {
                return None;
            }
        }
        total += whole;
        if total > OVERFLOW {
            return None;
        }
    }
    if negative {
        return Some((total as i64).wrapping_neg());
    }
    if total > OVERFLOW - 1 {
        return None;
    }
    Some(total as i64)
}

/// Formats nanoseconds like Go's `Duration.String()`: `"1h30m0s"`, `"1.5s"`, `"300ms"`, `"0s"`.
pub fn format_duration(nanos: i64) -> String {
    let mut value = nanos.unsigned_abs();
    let mut out = String::new();
    if value < SECOND {
        let (unit, precision) = match value {
            0 => return "0s".to_owned(),
            v if v < MICROSECOND => ("ns", 0),
            v if v < MILLISECOND => ("\u{b5}s", 3),
            _ => ("ms", 6),
        };
        let (whole, fraction) = split_fraction(value, precision);
        out.push_str(&whole.to_string());
        out.push_str(&fraction);
        out.push_str(unit);
    } else {
        let (seconds, fraction) = split_fraction(value, 9);
        value = seconds;
        let secs = value % 60;
        value /= 60;
        if value > 0 {
            let minutes = value % 60;
            value /= 60;
            if value > 0 {
                out.push_str(&value.to_string());
                out.push('h');
            }
            out.push_str(&minutes.to_string());
            out.push('m');
        }
        out.push_str(&secs.to_string());
        out.push_str(&fraction);
        out.push('s');
    }
    if nanos < 0 {
        out.insert(0, '-');
    }
    out
}

/// Splits `value` into `value / 10^precision` and its fraction printed as `.ddd` without
/// trailing zeros (empty when the fraction is zero).
fn split_fraction(value: u64, precision: u32) -> (u64, String) {
    let divisor = 10u64.pow(precision);
    let fraction = value % divisor;
    if fraction == 0 {
        return (value / divisor, String::new());
    }
    let digits = format!("{:0width$}", fraction, width = precision as usize);
    (
        value / divisor,
        format!(".{}", digits.trim_end_matches('0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    #[test]
    fn whole_quantities_read_as_integers() {
        let cases = [
            ("0", Some(0)),
            ("-0", Some(0)),
            ("1000", Some(1000)),
            ("1k", Some(1000)),
            ("1e3", Some(1000)),
            ("1Ki", Some(1024)),
            ("-5", Some(-5)),
            ("9223372036854775807", Some(i64::MAX)),
            ("0.0", Some(0)),
            ("500m", None),
            ("1.5", None),
            ("2000m", Some(2)),
            ("0.000000001", None),
        ];
        for (text, want) in cases {
            assert_eq!(q(text).as_exact_i64(), want, "{text}");
        }
    }

    #[test]
    fn equal_values_across_suffixes() {
        let cases = [
            ("1Gi", "1024Mi"),
            ("0.5", "500m"),
            ("1k", "1000"),
            ("1e3", "1k"),
            ("1E3", "1000"),
            ("1.5Gi", "1536Mi"),
            ("100m", "0.1"),
            ("1M", "1000k"),
            ("1Ki", "1024"),
            ("0.000000001", "1n"),
            ("1000u", "1m"),
            ("+5", "5"),
            ("-0", "0"),
            ("0.0", "0"),
            ("12e-3", "12m"),
            ("1.", "1"),
            (".5", "500m"),
            ("1e+3", "1k"),
        ];
        for (a, b) in cases {
            assert_eq!(q(a), q(b), "{a} == {b}");
            assert_eq!(q(a).cmp(&q(b)), Ordering::Equal, "{a} cmp {b}");
        }
    }

    #[test]
    fn ordering() {
        let ascending = [
            "-1Gi", "-1k", "-1", "-1m", "0", "1n", "1u", "1m", "0.5", "1", "1k", "1Ki", "1M",
            "1Mi", "500Mi", "1G", "1Gi", "1T", "1Ti", "1P", "1Pi", "1E", "1Ei", "1e19",
        ];
        for pair in ascending.windows(2) {
            let (a, b) = (q(pair[0]), q(pair[1]));
            assert!(a < b, "{} < {}", pair[0], pair[1]);
            assert!(b > a, "{} > {}", pair[1], pair[0]);
        }
        assert!(q("1Gi") > q("500Mi"));
        assert!(q("250m") < q("1"));
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for s in [
            "", "abc", "1K", "1KiB", "1.5.5", "1e", "1ee3", "1 Gi", " 1", "1Gi ", "1mi", "1i", "e",
            "--1", "1e3.5", "0x10", "1gi", "1Gi1", ".e-10", "1.5h", "true",
        ] {
            assert!(Quantity::parse(s).is_none(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn kubernetes_parse_quirks_are_accepted() {
        // Kubernetes' scanner accepts these; Kyverno therefore treats them as quantities.
        assert_eq!(q("-"), q("0"));
        assert_eq!(q("+"), q("0"));
        assert_eq!(q("."), q("0"));
        // A bare suffix has an empty (zero) number in front of it.
        assert_eq!(q("Gi"), q("0"));
        assert_eq!(q("m"), q("0"));
        assert_eq!(q("e3"), q("0"));
        assert_eq!(q("k"), q("M"));
        assert_eq!(q("1.G"), q("1G"));
        assert_eq!(q("1e-1"), q("100m"));
    }

    #[test]
    fn finer_than_nano_rounds_away_from_zero() {
        assert_eq!(q("0.1n"), q("1n"));
        assert_eq!(q("1.0000000001"), q("1000000001n"));
        assert_eq!(q("-0.1n"), q("-1n"));
        assert_eq!(q("1e-20"), q("1n"));
    }

    #[test]
    fn binary_values_cap_at_int64_max() {
        assert_eq!(q("8Ei"), q("9223372036854775807"));
        assert_eq!(q("16Ei").to_string(), "9223372036854775807");
        // Decimal values are not capped (current Kubernetes).
        assert!(q("18446744073709551616") > q("9223372036854775807"));
        assert!(q("1e100") > q("8Ei"));
    }

    #[test]
    fn canonical_strings() {
        let cases = [
            ("1.5", "1500m"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("0.5Gi", "512Mi"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("0.1", "100m"),
            ("1e3", "1e3"),
            ("1E3", "1E3"),
            ("1.5e3", "1500"),
            ("10e3", "10e3"),
            ("100e3", "100e3"),
            ("1000e3", "1e6"),
            ("0", "0"),
            ("0.0", "0"),
            ("+1k", "+1k"),
            ("1Ki", "1Ki"),
            ("1000Ki", "1000Ki"),
            ("1.5Ki", "1536"),
            ("0.5Ki", "512"),
            ("100Mi", "100Mi"),
            ("12345", "12345"),
            ("1200m", "1200m"),
            ("0.001m", "1u"),
            ("0.5n", "1n"),
            ("-1.5", "-1500m"),
            ("-1536Mi", "-1536Mi"),
            ("1000E", "1e21"),
            ("8Ei", "9223372036854775807"),
            ("1Ei", "1Ei"),
            ("2048", "2048"),
            ("0.25Ki", "256"),
        ];
        for (input, canonical) in cases {
            assert_eq!(q(input).to_string(), canonical, "canonical form of {input}");
        }
    }

    #[test]
    fn arithmetic() {
        let add = |a: &str, b: &str| q(a).checked_add(&q(b)).map(|r| r.to_string());
        let sub = |a: &str, b: &str| q(a).checked_sub(&q(b)).map(|r| r.to_string());
        assert_eq!(add("1Gi", "1Mi").as_deref(), Some("1025Mi"));
        assert_eq!(add("500m", "500m").as_deref(), Some("1"));
        assert_eq!(add("1", "500m").as_deref(), Some("1500m"));
        assert_eq!(add("0", "1Ki").as_deref(), Some("1Ki"));
        assert_eq!(sub("1Gi", "512Mi").as_deref(), Some("512Mi"));
        assert_eq!(sub("1", "2").as_deref(), Some("-1"));
        assert_eq!(sub("100m", "100m").as_deref(), Some("0"));
        assert_eq!(sub("0", "1Ki").as_deref(), Some("-1Ki"));
        assert!(q("1e100000").checked_add(&q("1")).is_none());

        let mul = |a: &str, f: f64| {
            q(a).checked_mul(&Quantity::from_f64(f).unwrap_or_else(|| panic!("{f}")))
                .map(|r| r.to_string())
        };
        assert_eq!(mul("1Gi", 2.0).as_deref(), Some("2Gi"));
        assert_eq!(mul("100m", 3.0).as_deref(), Some("300m"));
        assert_eq!(mul("1Gi", 0.5).as_deref(), Some("512Mi"));
        assert_eq!(mul("10", 1.5).as_deref(), Some("15"));

        let div = |a: &str, f: f64| {
            q(a).checked_div_trunc(&Quantity::from_f64(f).unwrap_or_else(|| panic!("{f}")))
                .map(|r| r.to_string())
        };
        assert_eq!(div("10Gi", 2.0).as_deref(), Some("5Gi"));
        assert_eq!(div("10", 3.0).as_deref(), Some("3"));
        assert_eq!(div("1", 3.0).as_deref(), Some("0"));
        assert_eq!(div("1.0", 3.0).as_deref(), Some("300m"));
        assert_eq!(div("-10", 3.0).as_deref(), Some("-3"));
        assert!(q("1").checked_div_trunc(&q("0")).is_none());
    }

    #[test]
    fn from_f64_matches_go_formatting() {
        assert_eq!(go_format_float(1.0), "1");
        assert_eq!(go_format_float(0.5), "0.5");
        assert_eq!(go_format_float(1e6), "1e+06");
        assert_eq!(go_format_float(123456.0), "123456");
        assert_eq!(go_format_float(1234567.0), "1.234567e+06");
        assert_eq!(go_format_float(0.0001), "0.0001");
        assert_eq!(go_format_float(0.00001), "1e-05");
        assert_eq!(go_format_float(-2.5), "-2.5");
        assert_eq!(go_format_float(1e21), "1e+21");
        assert_eq!(go_format_float(1.5e300), "1.5e+300");
        assert_eq!(go_format_float(f64::NAN), "NaN");
        assert_eq!(go_format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(Quantity::from_f64(1e6), Some(q("1M")));
        assert_eq!(Quantity::from_f64(1.5e-10), Some(q("1n")));
        assert!(Quantity::from_f64(f64::NAN).is_none());
    }

    #[test]
    fn to_f64_values() {
        assert_eq!(q("1Gi").to_f64(), 1073741824.0);
        assert_eq!(q("500m").to_f64(), 0.5);
        assert_eq!(q("1.5Gi").to_f64(), 1610612736.0);
        assert_eq!(q("-2k").to_f64(), -2000.0);
        assert_eq!(q("0").to_f64(), 0.0);
        assert_eq!(q("1e400").to_f64(), f64::INFINITY);
    }

    #[test]
    fn zero_with_a_huge_exponent_converts_at_once() {
        // Found by `make fuzz` (scalars): to_i64 looped once per unit of the exponent.
        let zero = Quantity::parse("0e88888888888807").expect("a valid quantity");
        assert_eq!(zero.to_i64(), Some(0));
        let big = Quantity::parse("1e88888888888807").expect("a valid quantity");
        assert_eq!(big.to_i64(), None);
        assert_eq!(
            Quantity::parse("12e3").and_then(|q| q.to_i64()),
            Some(12_000)
        );
    }

    #[test]
    fn hostile_inputs_stay_bounded() {
        let long = "9".repeat(100_000);
        assert!(Quantity::parse(&long).is_some());
        let tiny = format!("0.{}1", "0".repeat(100_000));
        assert_eq!(q(&tiny), q("1n"));
        assert!(Quantity::parse("1e9999999999999999999").is_none());
        assert!(q("1e2147483647") > q("1e2147483646"));
    }

    #[test]
    fn durations_parse_like_go() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("-0", Some(0)),
            ("+0", Some(0)),
            ("1h30m", Some(5_400_000_000_000)),
            ("300ms", Some(300_000_000)),
            ("-1.5h", Some(-5_400_000_000_000)),
            ("1.5s", Some(1_500_000_000)),
            (".5s", Some(500_000_000)),
            ("5.s", Some(5_000_000_000)),
            ("2h45m10s", Some(9_910_000_000_000)),
            ("1us", Some(1000)),
            ("1\u{b5}s", Some(1000)),
            ("1\u{3bc}s", Some(1000)),
            ("10ns", Some(10)),
            ("1m1m", Some(120_000_000_000)),
            ("1.0000000001s", Some(1_000_000_000)),
            ("2562047h47m16.854775807s", Some(i64::MAX)),
            ("-2562047h47m16.854775808s", Some(i64::MIN)),
            ("2562047h47m16.854775808s", None),
            ("", None),
            ("-", None),
            ("1", None),
            ("00", None),
            ("0.0", None),
            ("1d", None),
            ("1H", None),
            (".s", None),
            ("1.5", None),
            ("1h 30m", None),
            ("9999999999999999999h", None),
            ("30", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_duration(input),
                *expected,
                "parse_duration({input:?})"
            );
        }
    }

    #[test]
    fn durations_format_like_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{b5}s"),
            (2_200_000, "2.2ms"),
            (1_500_000_000, "1.5s"),
            (5_400_000_000_000, "1h30m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (90_000_000_000, "1m30s"),
            (-5_400_000_000_000, "-1h30m0s"),
            (-1, "-1ns"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (60_000_000_000, "1m0s"),
        ];
        for (nanos, expected) in cases {
            assert_eq!(
                format_duration(*nanos),
                *expected,
                "format_duration({nanos})"
            );
        }
    }
}
