//! Go-style durations (`10s`, `1m30s`, `250ms`), as the API server writes the `timeout` query
//! parameter and as bylaw's flags accept them.

use std::time::Duration;

/// Parses a Go duration string (`time.ParseDuration`, bylaw's one implementation): one or more
/// `<number><unit>` pairs, units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`; decimals allowed
/// (`1.5s`). A bare `0` is zero. Negative values are rejected: a timeout cannot be negative.
pub fn parse_go_duration(input: &str) -> Result<Duration, String> {
    let nanos = bylaw_runtime::gocompat::parse_duration(input.trim()).ok_or_else(|| {
        format!("invalid duration {input:?}: want a Go duration such as 10s or 1m30s")
    })?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("duration {input:?} is negative"))
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
