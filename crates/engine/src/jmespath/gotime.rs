//! Go's `time` package as Kyverno's time functions use it: `time.ParseDuration`,
//! `Duration.String()`, RFC 3339 parsing/printing and `time.Parse` with Go reference layouts
//! (`2006-01-02T15:04:05Z07:00`).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike, Utc};

pub(crate) const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Go's `time.ParseDuration` and `Duration.String()`: one implementation for the engine, in
/// [`crate::quantity`].
pub(crate) use crate::quantity::{format_duration, parse_duration};

/// Go's RFC 3339 layout, the default for Kyverno's time functions.
pub(crate) const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// `time.Parse(time.RFC3339, s)`.
pub(crate) fn parse_rfc3339(s: &str) -> Result<DateTime<FixedOffset>, String> {
    parse_layout(RFC3339, s)
}

/// `t.Format(time.RFC3339)`: whole seconds, `Z` for a zero offset.
pub(crate) fn format_rfc3339(t: &DateTime<FixedOffset>) -> String {
    let offset = t.offset().local_minus_utc();
    let zone = if offset == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.abs();
        format!("{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Nanoseconds from `a` to `b` (`b.Sub(a)`), saturating like Go.
pub(crate) fn sub(b: &DateTime<FixedOffset>, a: &DateTime<FixedOffset>) -> i64 {
    let delta = b.signed_duration_since(*a);
    delta
        .num_nanoseconds()
        .unwrap_or(if delta.num_seconds() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
}

/// `t.Add(d)`.
pub(crate) fn add(t: &DateTime<FixedOffset>, nanos: i64) -> Option<DateTime<FixedOffset>> {
    t.checked_add_signed(chrono::Duration::nanoseconds(nanos))
}

/// `t.Truncate(d)`: rounds down to a multiple of `d` counted from Go's zero time
/// (0001-01-01 UTC), keeping the zone. A non-positive `d` leaves `t` unchanged.
pub(crate) fn truncate(t: &DateTime<FixedOffset>, nanos: i64) -> Option<DateTime<FixedOffset>> {
    if nanos <= 0 {
        return Some(*t);
    }
    // Seconds between 0001-01-01T00:00:00Z and the Unix epoch.
    const ZERO_TO_UNIX: i128 = 62_135_596_800;
    let since_zero = (i128::from(t.timestamp()) + ZERO_TO_UNIX) * i128::from(NANOS_PER_SECOND)
        + i128::from(t.timestamp_subsec_nanos());
    let remainder = since_zero.rem_euclid(i128::from(nanos));
    let back = i64::try_from(remainder).ok()?;
    t.checked_sub_signed(chrono::Duration::nanoseconds(back))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Year4,
    Year2,
    Month,
    ZeroMonth,
    MonthShort,
    MonthLong,
    Day,
    ZeroDay,
    UnderDay,
    YearDay,
    Hour24,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    PmUpper,
    PmLower,
    WeekdayShort,
    WeekdayLong,
    ZoneName,
    /// `Z07:00`, `Z0700`, `Z07`, `-07:00`, `-0700`, `-07`, with/without `Z` for UTC.
    Offset {
        z: bool,
        colon: bool,
        minutes: bool,
    },
    /// `.000`/`,000` (exact digits) or `.999` (optional digits).
    Fraction {
        digits: usize,
        optional: bool,
    },
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Finds the next layout element in `layout`, returning the literal text before it.
fn next_chunk(layout: &str) -> (&str, Option<(Chunk, &str)>) {
    let bytes = layout.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = layout.get(i..).unwrap_or("");
        let found: Option<(Chunk, usize)> = match bytes.get(i) {
            Some(b'J') if rest.starts_with("January") => Some((Chunk::MonthLong, 7)),
            Some(b'J') if rest.starts_with("Jan") => Some((Chunk::MonthShort, 3)),
            Some(b'M') if rest.starts_with("Monday") => Some((Chunk::WeekdayLong, 6)),
            Some(b'M') if rest.starts_with("Mon") => Some((Chunk::WeekdayShort, 3)),
            Some(b'M') if rest.starts_with("MST") => Some((Chunk::ZoneName, 3)),
            Some(b'0') => match bytes.get(i + 1) {
                Some(b'1') => Some((Chunk::ZeroMonth, 2)),
                Some(b'2') => Some((Chunk::ZeroDay, 2)),
                Some(b'3') => Some((Chunk::ZeroHour12, 2)),
                Some(b'4') => Some((Chunk::ZeroMinute, 2)),
                Some(b'5') => Some((Chunk::ZeroSecond, 2)),
                Some(b'6') => Some((Chunk::Year2, 2)),
                Some(b'0') if bytes.get(i + 2) == Some(&b'2') => Some((Chunk::YearDay, 3)),
                _ => None,
            },
            Some(b'1') if rest.starts_with("15") => Some((Chunk::Hour24, 2)),
            Some(b'1') => Some((Chunk::Month, 1)),
            Some(b'2') if rest.starts_with("2006") => Some((Chunk::Year4, 4)),
            Some(b'2') => Some((Chunk::Day, 1)),
            Some(b'_') if rest.starts_with("_2") => Some((Chunk::UnderDay, 2)),
            Some(b'3') => Some((Chunk::Hour12, 1)),
            Some(b'4') => Some((Chunk::Minute, 1)),
            Some(b'5') => Some((Chunk::Second, 1)),
            Some(b'P') if rest.starts_with("PM") => Some((Chunk::PmUpper, 2)),
            Some(b'p') if rest.starts_with("pm") => Some((Chunk::PmLower, 2)),
            Some(b'-') | Some(b'Z') => {
                let z = bytes.get(i) == Some(&b'Z');
                let body = rest.get(1..).unwrap_or("");
                if body.starts_with("07:00") {
                    Some((
                        Chunk::Offset {
                            z,
                            colon: true,
                            minutes: true,
                        },
                        6,
                    ))
                } else if body.starts_with("0700") {
                    Some((
                        Chunk::Offset {
                            z,
                            colon: false,
                            minutes: true,
                        },
                        5,
                    ))
                } else if body.starts_with("07") {
                    Some((
                        Chunk::Offset {
                            z,
                            colon: false,
                            minutes: false,
                        },
                        3,
                    ))
                } else {
                    None
                }
            }
            Some(b'.') | Some(b',') => {
                let digit = bytes.get(i + 1).copied();
                if matches!(digit, Some(b'0') | Some(b'9')) {
                    let run = rest
                        .get(1..)
                        .unwrap_or("")
                        .bytes()
                        .take_while(|b| Some(*b) == digit)
                        .count();
                    let next_is_digit = bytes.get(i + 1 + run).is_some_and(u8::is_ascii_digit);
                    if next_is_digit {
                        None
                    } else {
                        Some((
                            Chunk::Fraction {
                                digits: run,
                                optional: digit == Some(b'9'),
                            },
                            1 + run,
                        ))
                    }
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some((chunk, len)) = found {
            let prefix = layout.get(..i).unwrap_or("");
            let after = layout.get(i + len..).unwrap_or("");
            return (prefix, Some((chunk, after)));
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    (layout, None)
}

fn take_digits(s: &str, min: usize, max: usize) -> Result<(i64, &str), String> {
    let count = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if count < min {
        return Err(format!("cannot parse {s:?}: expected a number"));
    }
    let (digits, rest) = s.split_at(count);
    let n = digits.parse::<i64>().map_err(|e| e.to_string())?;
    Ok((n, rest))
}

fn take_name<'s>(s: &'s str, names: &[&str], short: bool) -> Result<(usize, &'s str), String> {
    for (i, name) in names.iter().enumerate() {
        let want = if short {
            name.get(..3).unwrap_or(name)
        } else {
            name
        };
        if s.len() >= want.len()
            && s.get(..want.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(want))
        {
            return Ok((i, s.get(want.len()..).unwrap_or("")));
        }
    }
    Err(format!("cannot parse {s:?}: unknown name"))
}

/// `time.Parse(layout, value)` for Go reference layouts. A value without zone information is
/// taken as UTC, as Go does.
pub(crate) fn parse_layout(layout: &str, value: &str) -> Result<DateTime<FixedOffset>, String> {
    let err = |why: &str| format!("parsing time {value:?} as {layout:?}: {why}");
    let mut year: Option<i64> = None;
    let mut month: i64 = 1;
    let mut day: i64 = 1;
    let mut yday: Option<i64> = None;
    let mut hour: i64 = 0;
    let mut minute: i64 = 0;
    let mut second: i64 = 0;
    let mut nanos: i64 = 0;
    let mut pm: Option<bool> = None;
    let mut offset: Option<i32> = None;
    let mut layout_rest = layout;
    let mut v = value;
    loop {
        let (literal, chunk) = next_chunk(layout_rest);
        v = v
            .strip_prefix(literal)
            .ok_or_else(|| err(&format!("cannot parse {v:?} as {literal:?}")))?;
        let Some((chunk, after)) = chunk else {
            break;
        };
        layout_rest = after;
        // Go accepts fractional seconds after a seconds field even when the layout has none.
        let allow_fraction = |v: &str, nanos: &mut i64| -> Result<String, String> {
            let after_chunk_is_fraction =
                matches!(next_chunk(after).1, Some((Chunk::Fraction { .. }, _)))
                    && next_chunk(after).0.is_empty();
            if !after_chunk_is_fraction {
                if let Some(frac) = v.strip_prefix('.').or_else(|| v.strip_prefix(',')) {
                    if frac.starts_with(|c: char| c.is_ascii_digit()) {
                        let digits: String =
                            frac.chars().take_while(char::is_ascii_digit).collect();
                        *nanos = fraction_nanos(&digits);
                        return Ok(frac.get(digits.len()..).unwrap_or("").to_owned());
                    }
                }
            }
            Ok(v.to_owned())
        };
        let rest_owned: String;
        match chunk {
            Chunk::Year4 => {
                let (n, rest) = take_digits(v, 4, 4).map_err(|e| err(&e))?;
                year = Some(n);
                v = rest;
            }
            Chunk::Year2 => {
                let (n, rest) = take_digits(v, 2, 2).map_err(|e| err(&e))?;
                year = Some(if n >= 69 { 1900 + n } else { 2000 + n });
                v = rest;
            }
            Chunk::Month | Chunk::ZeroMonth => {
                let min = if chunk == Chunk::ZeroMonth { 2 } else { 1 };
                let (n, rest) = take_digits(v, min, 2).map_err(|e| err(&e))?;
                month = n;
                v = rest;
            }
            Chunk::MonthShort | Chunk::MonthLong => {
                let (i, rest) =
                    take_name(v, &MONTHS, chunk == Chunk::MonthShort).map_err(|e| err(&e))?;
                month = i as i64 + 1;
                v = rest;
            }
            Chunk::Day | Chunk::ZeroDay | Chunk::UnderDay => {
                let trimmed = if chunk == Chunk::UnderDay {
                    v.strip_prefix(' ').unwrap_or(v)
                } else {
                    v
                };
                let min = if chunk == Chunk::ZeroDay { 2 } else { 1 };
                let (n, rest) = take_digits(trimmed, min, 2).map_err(|e| err(&e))?;
                day = n;
                v = rest;
            }
            Chunk::YearDay => {
                let (n, rest) = take_digits(v, 3, 3).map_err(|e| err(&e))?;
                yday = Some(n);
                v = rest;
            }
            Chunk::Hour24 => {
                let (n, rest) = take_digits(v, 2, 2).map_err(|e| err(&e))?;
                hour = n;
                v = rest;
            }
            Chunk::Hour12 | Chunk::ZeroHour12 => {
                let min = if chunk == Chunk::ZeroHour12 { 2 } else { 1 };
                let (n, rest) = take_digits(v, min, 2).map_err(|e| err(&e))?;
                hour = n;
                v = rest;
            }
            Chunk::Minute | Chunk::ZeroMinute => {
                let min = if chunk == Chunk::ZeroMinute { 2 } else { 1 };
                let (n, rest) = take_digits(v, min, 2).map_err(|e| err(&e))?;
                minute = n;
                v = rest;
            }
            Chunk::Second | Chunk::ZeroSecond => {
                let min = if chunk == Chunk::ZeroSecond { 2 } else { 1 };
                let (n, rest) = take_digits(v, min, 2).map_err(|e| err(&e))?;
                second = n;
                rest_owned = allow_fraction(rest, &mut nanos)?;
                // Re-borrow from the value: find where the remaining text starts.
                v = value.get(value.len() - rest_owned.len()..).unwrap_or("");
            }
            Chunk::PmUpper | Chunk::PmLower => {
                let head = v.get(..2).unwrap_or("");
                pm = match head.to_ascii_uppercase().as_str() {
                    "PM" => Some(true),
                    "AM" => Some(false),
                    _ => return Err(err("expected AM or PM")),
                };
                v = v.get(2..).unwrap_or("");
            }
            Chunk::WeekdayShort | Chunk::WeekdayLong => {
                let (_, rest) =
                    take_name(v, &WEEKDAYS, chunk == Chunk::WeekdayShort).map_err(|e| err(&e))?;
                v = rest;
            }
            Chunk::ZoneName => {
                let len = v.bytes().take_while(u8::is_ascii_uppercase).count();
                if len < 3 {
                    return Err(err("expected a time zone name"));
                }
                // Go knows the offset of UTC only; other abbreviations parse with offset 0.
                offset = Some(0);
                v = v.get(len..).unwrap_or("");
            }
            Chunk::Offset { z, colon, minutes } => {
                if z && v.starts_with('Z') {
                    offset = Some(0);
                    v = v.get(1..).unwrap_or("");
                } else {
                    let sign = match v.as_bytes().first() {
                        Some(b'+') => 1,
                        Some(b'-') => -1,
                        _ => return Err(err("expected a zone offset")),
                    };
                    let (h, rest) =
                        take_digits(v.get(1..).unwrap_or(""), 2, 2).map_err(|e| err(&e))?;
                    let mut rest = rest;
                    let mut m = 0;
                    if minutes {
                        if colon {
                            rest = rest.strip_prefix(':').ok_or_else(|| err("expected ':'"))?;
                        }
                        let (mm, r) = take_digits(rest, 2, 2).map_err(|e| err(&e))?;
                        m = mm;
                        rest = r;
                    }
                    offset = Some(sign * (h as i32 * 3600 + m as i32 * 60));
                    v = rest;
                }
            }
            Chunk::Fraction { digits, optional } => {
                if let Some(frac) = v.strip_prefix('.').or_else(|| v.strip_prefix(',')) {
                    let count = frac.bytes().take_while(u8::is_ascii_digit).count();
                    if !optional && count != digits {
                        return Err(err("wrong number of fractional digits"));
                    }
                    nanos = fraction_nanos(frac.get(..count).unwrap_or(""));
                    v = frac.get(count..).unwrap_or("");
                } else if !optional {
                    return Err(err("expected fractional seconds"));
                }
            }
        }
    }
    if !v.is_empty() {
        return Err(err(&format!("extra text: {v:?}")));
    }
    if let Some(is_pm) = pm {
        if !(1..=12).contains(&hour) {
            return Err(err("hour out of range"));
        }
        if is_pm && hour < 12 {
            hour += 12;
        } else if !is_pm && hour == 12 {
            hour = 0;
        }
    }
    let year = year.unwrap_or(0);
    let date = match yday {
        Some(d) => NaiveDate::from_yo_opt(
            i32::try_from(year).map_err(|e| err(&e.to_string()))?,
            u32::try_from(d).map_err(|e| err(&e.to_string()))?,
        ),
        None => NaiveDate::from_ymd_opt(
            i32::try_from(year).map_err(|e| err(&e.to_string()))?,
            u32::try_from(month).map_err(|e| err(&e.to_string()))?,
            u32::try_from(day).map_err(|e| err(&e.to_string()))?,
        ),
    }
    .ok_or_else(|| err("day out of range"))?;
    let time = date
        .and_hms_nano_opt(
            u32::try_from(hour).map_err(|e| err(&e.to_string()))?,
            u32::try_from(minute).map_err(|e| err(&e.to_string()))?,
            u32::try_from(second).map_err(|e| err(&e.to_string()))?,
            u32::try_from(nanos).map_err(|e| err(&e.to_string()))?,
        )
        .ok_or_else(|| err("time out of range"))?;
    let zone = FixedOffset::east_opt(offset.unwrap_or(0)).ok_or_else(|| err("bad offset"))?;
    zone.from_local_datetime(&time)
        .single()
        .ok_or_else(|| err("invalid local time"))
}

fn fraction_nanos(digits: &str) -> i64 {
    let mut padded: String = digits.chars().take(9).collect();
    while padded.len() < 9 {
        padded.push('0');
    }
    padded.parse().unwrap_or(0)
}

/// Seconds since the Unix epoch as a UTC time (`time.Unix(s, 0).UTC()`).
pub(crate) fn from_unix(seconds: i64) -> Option<DateTime<FixedOffset>> {
    Utc.timestamp_opt(seconds, 0)
        .single()
        .map(|t| t.fixed_offset())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_through_go_format() {
        let cases = [
            ("1h", "1h0m0s"),
            ("90m", "1h30m0s"),
            ("1.5s", "1.5s"),
            ("100ms", "100ms"),
            ("1us", "1µs"),
            ("-2m3s", "-2m3s"),
            ("0", "0s"),
            ("1h2m3.004s", "1h2m3.004s"),
        ];
        for (input, printed) in cases {
            let nanos = parse_duration(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(format_duration(nanos), printed, "{input}");
        }
        for bad in ["", "1", "1x", "h", "1.h2", "--1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_parses_and_prints_like_go() {
        let t = parse_rfc3339("2021-01-02T15:04:05+02:00").unwrap();
        assert_eq!(format_rfc3339(&t), "2021-01-02T15:04:05+02:00");
        let z = parse_rfc3339("2021-01-02T15:04:05.123Z").unwrap();
        assert_eq!(format_rfc3339(&z), "2021-01-02T15:04:05Z");
        assert!(parse_rfc3339("2021-01-02").is_err());
        assert!(parse_rfc3339("2021-13-02T15:04:05Z").is_err());
    }

    #[test]
    fn reference_layouts_parse() {
        let t = parse_layout("Mon Jan _2 15:04:05 2006", "Sat Mar  7 11:06:39 2021").unwrap();
        assert_eq!(format_rfc3339(&t), "2021-03-07T11:06:39Z");
        let t = parse_layout("2006-01-02", "2024-02-29").unwrap();
        assert_eq!(format_rfc3339(&t), "2024-02-29T00:00:00Z");
        let t = parse_layout("02 Jan 06 15:04 -0700", "05 Feb 21 09:30 -0500").unwrap();
        assert_eq!(format_rfc3339(&t), "2021-02-05T09:30:00-05:00");
        let t = parse_layout("3:04PM", "9:15PM").unwrap();
        assert_eq!(t.hour(), 21);
    }

    #[test]
    fn truncate_counts_from_go_zero_time() {
        let t = parse_rfc3339("2021-01-02T15:04:05Z").unwrap();
        let hour = parse_duration("1h").unwrap();
        assert_eq!(
            format_rfc3339(&truncate(&t, hour).unwrap()),
            "2021-01-02T15:00:00Z"
        );
        let day = parse_duration("24h").unwrap();
        assert_eq!(
            format_rfc3339(&truncate(&t, day).unwrap()),
            "2021-01-02T00:00:00Z"
        );
    }
}
