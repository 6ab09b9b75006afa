//! Version ranges in the syntax of Go's `blang/semver` (v4), which Kyverno's
//! `semver_compare` uses: comparators `= == > >= < <= ! !=` before a version, space means
//! AND, `||` means OR, `x` wildcards (`1.x`, `1.2.x`) expand to bounds.

use std::cmp::Ordering;

use semver::Version;

#[derive(Debug, Clone, Copy)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed range: alternatives (OR) of conjunctions (AND) of comparisons.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    alternatives: Vec<Vec<(Op, Version)>>,
}

/// Orders versions as blang does: numbers, then pre-release; build metadata is ignored.
fn compare(a: &Version, b: &Version) -> Ordering {
    (a.major, a.minor, a.patch)
        .cmp(&(b.major, b.minor, b.patch))
        .then_with(|| a.pre.cmp(&b.pre))
}

/// `semver.Parse`; Kyverno ignores its error and uses version 0.0.0 instead.
pub(crate) fn parse_version_or_zero(s: &str) -> Version {
    Version::parse(s).unwrap_or_else(|_| Version::new(0, 0, 0))
}

impl Range {
    pub(crate) fn parse(input: &str) -> Result<Range, String> {
        let parts = split_and_trim(input);
        let mut groups: Vec<Vec<String>> = Vec::new();
        let mut current: Vec<String> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            if part == "||" {
                if i == 0 {
                    return Err("First element in range is '||'".into());
                }
                groups.push(std::mem::take(&mut current));
            } else {
                current.push(part.clone());
            }
        }
        if current.is_empty() {
            return Err("Last element in range is '||'".into());
        }
        groups.push(current);
        let mut alternatives = Vec::new();
        for group in groups {
            let mut all = Vec::new();
            for part in expand_wildcards(&group)? {
                let (op_text, version_text) = split_comparator(&part)?;
                let op = match op_text {
                    "" | "=" | "==" => Op::Eq,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    "!" | "!=" => Op::Ne,
                    other => {
                        return Err(format!("Could not parse comparator {other:?} in {part:?}"))
                    }
                };
                let version = Version::parse(version_text).map_err(|e| {
                    format!("Could not parse Range {part:?}: Could not parse version {version_text:?}: {e}")
                })?;
                all.push((op, version));
            }
            alternatives.push(all);
        }
        Ok(Range { alternatives })
    }

    pub(crate) fn matches(&self, v: &Version) -> bool {
        self.alternatives.iter().any(|all| {
            all.iter().all(|(op, bound)| {
                let ord = compare(v, bound);
                match op {
                    Op::Eq => ord == Ordering::Equal,
                    Op::Ne => ord != Ordering::Equal,
                    Op::Gt => ord == Ordering::Greater,
                    Op::Ge => ord != Ordering::Less,
                    Op::Lt => ord == Ordering::Less,
                    Op::Le => ord != Ordering::Greater,
                }
            })
        })
    }
}

/// Splits on spaces, except spaces right after a comparator character (`>= 1.0.0`).
fn split_and_trim(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut last_char: Option<char> = None;
    for c in s.chars() {
        if c == ' ' && !matches!(last_char, Some('>' | '<' | '=')) {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else if c != ' ' {
            current.push(c);
            last_char = Some(c);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn split_comparator(s: &str) -> Result<(&str, &str), String> {
    let i = s
        .find(|c: char| c.is_ascii_digit())
        .ok_or_else(|| format!("Could not get version from string: {s:?}"))?;
    Ok((s.get(..i).unwrap_or("").trim(), s.get(i..).unwrap_or("")))
}

fn expand_wildcards(parts: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in parts {
        if !part.contains('x') {
            out.push(part.clone());
            continue;
        }
        let (op, version) = split_comparator(part)?;
        let pieces: Vec<&str> = version.split('.').collect();
        // `1.x` bumps the major, `1.2.x` (and blang's reading of `1.x.x`) the minor.
        let bump_major = pieces.len() == 2 && pieces.last() == Some(&"x");
        let flat = {
            let replaced = version.replacen(".x.x", ".x", 1).replacen(".x", ".0", 1);
            if replaced.split('.').count() == 2 {
                format!("{replaced}.0")
            } else {
                replaced
            }
        };
        let bumped = || -> Result<String, String> {
            let v = Version::parse(&flat).map_err(|e| format!("{flat:?}: {e}"))?;
            Ok(if bump_major {
                format!("{}.0.0", v.major + 1)
            } else {
                format!("{}.{}.0", v.major, v.minor + 1)
            })
        };
        let expanded = match op {
            ">" => format!(">={}", bumped()?),
            ">=" => format!(">={flat}"),
            "<" => format!("<{flat}"),
            "<=" => format!("<{}", bumped()?),
            "" | "=" | "==" => {
                out.push(format!(">={flat}"));
                format!("<{}", bumped()?)
            }
            "!=" | "!" => {
                out.push(format!("<{flat}"));
                format!(">={}", bumped()?)
            }
            other => format!("{other}{flat}"),
        };
        out.push(expanded);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(version: &str, range: &str) -> bool {
        Range::parse(range)
            .unwrap_or_else(|e| panic!("{range}: {e}"))
            .matches(&parse_version_or_zero(version))
    }

    #[test]
    fn blang_range_cases() {
        assert!(check("1.1.1", "1.1.1"));
        assert!(check("1.1.1", ">=1.1.0"));
        assert!(!check("1.1.1", "<1.1.0"));
        assert!(check("1.1.1", ">1.0.0 <2.0.0"));
        assert!(check("2.5.0", "<1.0.0 || >=2.0.0"));
        assert!(check("1.5.3", "1.x"));
        assert!(!check("2.0.0", "1.x"));
        assert!(check("1.2.9", "1.2.x"));
        assert!(check("1.0.0", ">= 1.0.0"));
        assert!(check("1.0.0-alpha", "<1.0.0"));
        assert!(!check("1.0.0", "!=1.0.0"));
    }

    #[test]
    fn bad_ranges_error() {
        assert!(Range::parse("|| 1.0.0").is_err());
        assert!(Range::parse("abc").is_err());
        assert!(Range::parse(">=1.0").is_err());
    }
}
