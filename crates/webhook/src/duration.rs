//! Go-style durations (`10s`, `1m30s`, `250ms`), as the API server writes the `timeout` query
//! parameter and as bylaw's flags accept them.

use std::time::Duration;

/// Parses a Go duration string: one or more `<number><unit>` pairs, units `ns`, `us`, `µs`, `ms`,
/// `s`, `m`, `h`; decimals allowed (`1.5s`). A bare `0` is zero. Negative values are rejected.
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("duration {input:?} is missing a unit (e.g. 10s)"))?;
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid number {number:?} in duration {input:?}"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let seconds_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("duration {input:?} is missing a unit (e.g. 10s)")),
            other => return Err(format!("unknown unit {other:?} in duration {input:?}")),
        };
        total += value * seconds_per_unit;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("duration {input:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases = [
            ("10s", Duration::from_secs(10)),
            ("0", Duration::ZERO),
            ("250ms", Duration::from_millis(250)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("2h", Duration::from_secs(7200)),
            ("100us", Duration::from_micros(100)),
            ("100µs", Duration::from_micros(100)),
            ("7ns", Duration::from_nanos(7)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_go_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_durations() {
        for text in ["", "10", "s", "-1s", "10x", "1..5s", "ten seconds"] {
            assert!(parse_go_duration(text).is_err(), "{text:?} should fail");
        }
    }
}
