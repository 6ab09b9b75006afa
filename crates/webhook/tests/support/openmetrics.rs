//! A strict checker for the OpenMetrics text format and the classic Prometheus text format
//! (0.0.4). It always checks the OpenMetrics variant (which promtool does not read) and checks the
//! classic variant when `promtool` is not installed.

use std::collections::{BTreeMap, HashMap, HashSet};

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("bad value {text:?}")),
    }
}

/// Parses `{a="x",b="y"}` at the start of `text`; returns labels and the rest.
type Labels = Vec<(String, String)>;

fn parse_labels(text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = text.strip_prefix('{').ok_or("labels must start with '{'")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        if !labels.is_empty() {
            rest = rest
                .strip_prefix(',')
                .ok_or("labels must be separated by ','")?;
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let (name, after) = rest.split_at(eq);
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut chars = after[1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("label {name} value is not quoted"));
        }
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => return Err(format!("bad escape \\{other:?} in label {name}")),
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                '\n' => return Err("raw newline in label value".into()),
                c => value.push(c),
            }
        }
        let end = end.ok_or(format!("unterminated value of label {name}"))?;
        labels.push((name.to_owned(), value));
        rest = &after[1 + end + 1..];
    }
}

#[derive(Default)]
struct Family {
    kind: String,
    has_help: bool,
    has_unit: bool,
    samples: usize,
}

/// Checks an OpenMetrics exposition; returns the family names and their types.
pub fn check(text: &str) -> Result<BTreeMap<String, String>, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("exposition must end with '# EOF' and a newline")?;
    check_body(body, true)
}

/// Checks a classic Prometheus text exposition (format 0.0.4).
pub fn check_classic(text: &str) -> Result<BTreeMap<String, String>, String> {
    if text.contains("# EOF") {
        return Err("classic format must not contain '# EOF'".into());
    }
    check_body(text, false)
}

fn check_body(body: &str, openmetrics: bool) -> Result<BTreeMap<String, String>, String> {
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut closed: HashSet<String> = HashSet::new();
    let mut series: HashSet<String> = HashSet::new();
    // (family, labels without le) -> (last bucket count, saw +Inf, +Inf count)
    let mut buckets: HashMap<String, (f64, Option<f64>)> = HashMap::new();
    let mut counts: HashMap<String, f64> = HashMap::new();
    let mut current: Option<String> = None;

    for (number, line) in body.lines().enumerate() {
        let at = |msg: String| format!("line {}: {msg}: {line:?}", number + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            let name = parts
                .next()
                .ok_or_else(|| at("missing metric name".into()))?;
            let rest = parts.next().unwrap_or_default();
            if !is_metric_name(name) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            if current.as_deref() != Some(name) {
                if let Some(previous) = current.take() {
                    closed.insert(previous);
                }
                if closed.contains(name) {
                    return Err(at(format!("family {name} is interleaved")));
                }
                current = Some(name.to_owned());
                if !families.contains_key(name) {
                    order.push(name.to_owned());
                }
            }
            let family = families.entry(name.to_owned()).or_default();
            match keyword {
                "HELP" => {
                    if std::mem::replace(&mut family.has_help, true) {
                        return Err(at("second HELP".into()));
                    }
                }
                "TYPE" => {
                    if !family.kind.is_empty() {
                        return Err(at("second TYPE".into()));
                    }
                    if family.samples > 0 {
                        return Err(at("TYPE after samples".into()));
                    }
                    let classic_type = matches!(
                        rest,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    );
                    if !openmetrics && !classic_type {
                        return Err(at(format!("type {rest:?} is not in the classic format")));
                    }
                    if openmetrics
                        && !matches!(
                            rest,
                            "counter"
                                | "gauge"
                                | "histogram"
                                | "gaugehistogram"
                                | "summary"
                                | "info"
                                | "stateset"
                                | "unknown"
                        )
                    {
                        return Err(at(format!("unknown type {rest:?}")));
                    }
                    family.kind = rest.to_owned();
                }
                "UNIT" if !openmetrics => return Err(at("UNIT is OpenMetrics only".into())),
                "UNIT" => {
                    if std::mem::replace(&mut family.has_unit, true) {
                        return Err(at("second UNIT".into()));
                    }
                    if !name.ends_with(&format!("_{rest}")) {
                        return Err(at(format!("name must end with unit {rest}")));
                    }
                }
                other => return Err(at(format!("unknown comment keyword {other:?}"))),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(at("comment without a space after '#'".into()));
        }

        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| at("sample without value".into()))?;
        let sample_name = &line[..name_end];
        if !is_metric_name(sample_name) {
            return Err(at(format!("bad sample name {sample_name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let mut seen = HashSet::new();
        for (label, _) in &labels {
            if !seen.insert(label.as_str()) {
                return Err(at(format!("duplicate label {label}")));
            }
        }
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before value".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<f64>()
                .map_err(|_| at(format!("bad timestamp {timestamp:?}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }

        let family_name = current
            .clone()
            .ok_or_else(|| at("sample before any TYPE".into()))?;
        let family = families.get_mut(&family_name).unwrap();
        if family.kind.is_empty() {
            return Err(at("sample before TYPE".into()));
        }
        let suffix = sample_name
            .strip_prefix(family_name.as_str())
            .ok_or_else(|| at(format!("sample does not belong to family {family_name}")))?;
        let allowed: &[&str] = match family.kind.as_str() {
            "counter" if !openmetrics => &[""],
            "untyped" => &[""],
            "counter" => &["_total", "_created"],
            "gauge" | "unknown" => &[""],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "info" => &["_info"],
            "stateset" => &[""],
            "summary" => &["", "_sum", "_count", "_created"],
            _ => &["_bucket", "_gsum", "_gcount"],
        };
        if !allowed.contains(&suffix) {
            return Err(at(format!(
                "sample suffix {suffix:?} not allowed for a {}",
                family.kind
            )));
        }
        let counter_value = family.kind == "counter" && (suffix == "_total" || !openmetrics);
        // NaN is not a valid counter value either.
        if counter_value && (value.is_nan() || value < 0.0) {
            return Err(at("negative counter".into()));
        }
        family.samples += 1;

        let mut key_labels: Vec<String> = labels
            .iter()
            .filter(|(l, _)| l != "le")
            .map(|(l, v)| format!("{l}={v:?}"))
            .collect();
        key_labels.sort();
        let key = format!("{family_name}{{{}}}", key_labels.join(","));
        let full_key = format!("{sample_name}{labels:?}");
        if !series.insert(full_key) {
            return Err(at("duplicate series".into()));
        }
        if family.kind == "histogram" {
            match suffix {
                "_bucket" => {
                    let le = labels
                        .iter()
                        .find(|(l, _)| l == "le")
                        .ok_or_else(|| at("bucket without le".into()))?;
                    let bound = parse_value(&le.1).map_err(at)?;
                    let entry = buckets.entry(key.clone()).or_insert((0.0, None));
                    if value < entry.0 {
                        return Err(at("bucket counts must not decrease".into()));
                    }
                    entry.0 = value;
                    if bound == f64::INFINITY {
                        entry.1 = Some(value);
                    }
                }
                "_count" => {
                    counts.insert(key.clone(), value);
                }
                _ => {}
            }
        }
    }

    for (key, (_, inf)) in &buckets {
        let inf = inf.ok_or(format!("{key}: histogram without a +Inf bucket"))?;
        if let Some(count) = counts.get(key) {
            if *count != inf {
                return Err(format!(
                    "{key}: _count {count} differs from +Inf bucket {inf}"
                ));
            }
        }
    }
    Ok(order
        .into_iter()
        .map(|name| {
            let kind = families[&name].kind.clone();
            (name, kind)
        })
        .collect())
}
