//! `x509_decode`: PEM certificates and certificate requests to the JSON shape Go's
//! `crypto/x509` types marshal to (what Kyverno returns): byte fields as base64, enums as
//! Go's numbers, times as RFC 3339, names with their attribute lists, parsed extensions.
//! Only RSA keys are accepted, as in Kyverno; the key becomes `{"N": "<decimal>", "E": e}`.

use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Decodes the first PEM block of `input`, a `CERTIFICATE` or a `CERTIFICATE REQUEST`.
pub(crate) fn decode(input: &str) -> Result<Value, String> {
    let (kind, der) = pem_block(input).ok_or_else(|| "failed to decode PEM block".to_owned())?;
    match kind.as_str() {
        "CERTIFICATE" => certificate(&der),
        "CERTIFICATE REQUEST" => certificate_request(&der),
        _ => Err("PEM block neither contains a CERTIFICATE or CERTIFICATE REQUEST".to_owned()),
    }
}

/// The type and decoded bytes of the first PEM block (headers before the base64 body are
/// skipped, as Go's `pem.Decode` does).
fn pem_block(input: &str) -> Option<(String, Vec<u8>)> {
    let start = input.find("-----BEGIN ")?;
    let rest = input.get(start + "-----BEGIN ".len()..)?;
    let type_end = rest.find("-----")?;
    let kind = rest.get(..type_end)?.to_owned();
    let body = rest.get(type_end + 5..)?;
    let end_marker = format!("-----END {kind}-----");
    let body = body.get(..body.find(&end_marker)?)?;
    let base64_text: String = body
        .lines()
        .filter(|line| !line.contains(':'))
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64_text)
        .ok()?;
    Some((kind, der))
}

// ---- DER ----

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

fn malformed(what: &str) -> String {
    format!("x509: malformed {what}")
}

/// One DER element: its tag, its contents and its whole encoding.
#[derive(Clone, Copy)]
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
    raw: &'a [u8],
}

/// Reads DER elements one after the other.
#[derive(Clone, Copy)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.0.first().copied()
    }

    fn element(&mut self) -> Result<Element<'a>, String> {
        let data = self.0;
        let tag = *data.first().ok_or_else(|| malformed("element"))?;
        let first = *data.get(1).ok_or_else(|| malformed("length"))?;
        let (length, header) = if first < 0x80 {
            (usize::from(first), 2)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(malformed("length"));
            }
            let bytes = data.get(2..2 + count).ok_or_else(|| malformed("length"))?;
            let length = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (length, 2 + count)
        };
        let end = header
            .checked_add(length)
            .filter(|end| *end <= data.len())
            .ok_or_else(|| malformed("length"))?;
        let element = Element {
            tag,
            content: data.get(header..end).ok_or_else(|| malformed("element"))?,
            raw: data.get(..end).ok_or_else(|| malformed("element"))?,
        };
        self.0 = data.get(end..).unwrap_or_default();
        Ok(element)
    }

    fn expect(&mut self, tag: u8, what: &str) -> Result<Element<'a>, String> {
        let element = self.element()?;
        if element.tag != tag {
            return Err(malformed(what));
        }
        Ok(element)
    }

    /// The next element when it has `tag`.
    fn optional(&mut self, tag: u8) -> Result<Option<Element<'a>>, String> {
        if self.peek_tag() == Some(tag) {
            self.element().map(Some)
        } else {
            Ok(None)
        }
    }

    fn sequence(&mut self, what: &str) -> Result<Reader<'a>, String> {
        Ok(Reader(self.expect(SEQUENCE, what)?.content))
    }
}

fn oid_arcs(content: &[u8]) -> Result<Vec<u64>, String> {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for (i, byte) in content.iter().enumerate() {
        value = value
            .checked_mul(128)
            .ok_or_else(|| malformed("object identifier"))?
            | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = if value < 40 {
                    0
                } else if value < 80 {
                    1
                } else {
                    2
                };
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i + 1 == content.len() {
            return Err(malformed("object identifier"));
        }
    }
    if arcs.is_empty() {
        return Err(malformed("object identifier"));
    }
    Ok(arcs)
}

fn oid_json(arcs: &[u64]) -> Value {
    Value::Array(arcs.iter().map(|a| json!(a)).collect())
}

fn oid_text(arcs: &[u64]) -> String {
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn base64_json(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A BIT STRING's bytes (the unused-bits count dropped) and that count.
fn bit_string(content: &[u8]) -> Result<(&[u8], u8), String> {
    let (&unused, bytes) = content
        .split_first()
        .ok_or_else(|| malformed("bit string"))?;
    if unused > 7 {
        return Err(malformed("bit string"));
    }
    Ok((bytes, unused))
}

/// A non-negative INTEGER as decimal text (two's complement honoured for negatives).
fn integer_decimal(content: &[u8]) -> String {
    let negative = content.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude: Vec<u8> = if negative {
        // Two's complement: invert and add one.
        let mut bytes: Vec<u8> = content.iter().map(|b| !b).collect();
        for byte in bytes.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
        bytes
    } else {
        content.to_vec()
    };
    // Repeated division by 10^9 over base-256 digits.
    let mut chunks = Vec::new();
    while magnitude.iter().any(|b| *b != 0) {
        let mut remainder: u64 = 0;
        for byte in magnitude.iter_mut() {
            let current = (remainder << 8) | u64::from(*byte);
            *byte = u8::try_from(current / 1_000_000_000).unwrap_or(u8::MAX);
            remainder = current % 1_000_000_000;
        }
        chunks.push(remainder);
    }
    let mut text = match chunks.pop() {
        Some(top) => top.to_string(),
        None => "0".to_owned(),
    };
    for chunk in chunks.iter().rev() {
        text.push_str(&format!("{chunk:09}"));
    }
    if negative && text != "0" {
        text.insert(0, '-');
    }
    text
}

fn small_integer(content: &[u8]) -> Result<i64, String> {
    if content.is_empty() || content.len() > 8 {
        return Err(malformed("integer"));
    }
    let negative = content.first().is_some_and(|b| b & 0x80 != 0);
    let start: i64 = if negative { -1 } else { 0 };
    Ok(content
        .iter()
        .fold(start, |acc, b| (acc << 8) | i64::from(*b)))
}

// ---- names, times, algorithms ----

/// A distinguished name as Go's `pkix.Name` marshals: the known attributes gathered, and every
/// attribute in `Names`.
fn name(raw: &[u8]) -> Result<Value, String> {
    let mut rdns = Reader(raw);
    let set_of = |key: &str, fields: &mut Map<String, Value>, value: &Value| {
        if let Some(Value::Array(list)) = fields.get_mut(key) {
            list.push(value.clone());
        } else {
            fields.insert(key.to_owned(), Value::Array(vec![value.clone()]));
        }
    };
    let mut fields = Map::new();
    let mut names = Vec::new();
    let mut common_name = String::new();
    let mut serial_number = String::new();
    while !rdns.is_empty() {
        let mut set = Reader(rdns.expect(SET, "name")?.content);
        while !set.is_empty() {
            let mut pair = set.sequence("name")?;
            let arcs = oid_arcs(pair.expect(OID, "name")?.content)?;
            let value = string_value(pair.element()?);
            if let [2, 5, 4, attribute] = arcs.as_slice() {
                match attribute {
                    3 => common_name = value.as_str().unwrap_or_default().to_owned(),
                    5 => serial_number = value.as_str().unwrap_or_default().to_owned(),
                    6 => set_of("Country", &mut fields, &value),
                    7 => set_of("Locality", &mut fields, &value),
                    8 => set_of("Province", &mut fields, &value),
                    9 => set_of("StreetAddress", &mut fields, &value),
                    10 => set_of("Organization", &mut fields, &value),
                    11 => set_of("OrganizationalUnit", &mut fields, &value),
                    17 => set_of("PostalCode", &mut fields, &value),
                    _ => {}
                }
            }
            names.push(json!({"Type": oid_json(&arcs), "Value": value}));
        }
    }
    let mut out = Map::new();
    for key in [
        "Country",
        "Organization",
        "OrganizationalUnit",
        "Locality",
        "Province",
        "StreetAddress",
        "PostalCode",
    ] {
        out.insert(key.to_owned(), fields.remove(key).unwrap_or(Value::Null));
    }
    out.insert("SerialNumber".into(), Value::String(serial_number));
    out.insert("CommonName".into(), Value::String(common_name));
    out.insert("Names".into(), Value::Array(names));
    out.insert("ExtraNames".into(), Value::Null);
    Ok(Value::Object(out))
}

/// An attribute value as Go's `asn1` decodes into `interface{}`: strings as text, integers as
/// numbers, booleans, anything else as its bytes.
fn string_value(element: Element<'_>) -> Value {
    match element.tag {
        // UTF8String, PrintableString, IA5String, T61String, NumericString, VisibleString
        0x0c | 0x13 | 0x16 | 0x14 | 0x12 | 0x1a => {
            Value::String(String::from_utf8_lossy(element.content).into_owned())
        }
        // BMPString
        0x1e => {
            let units: Vec<u16> = element
                .content
                .chunks(2)
                .map(|c| {
                    u16::from_be_bytes([
                        c.first().copied().unwrap_or(0),
                        c.get(1).copied().unwrap_or(0),
                    ])
                })
                .collect();
            Value::String(String::from_utf16_lossy(&units))
        }
        INTEGER => small_integer(element.content).map_or(Value::Null, |n| json!(n)),
        BOOLEAN => Value::Bool(element.content.first().is_some_and(|b| *b != 0)),
        _ => base64_json(element.content),
    }
}

/// UTCTime or GeneralizedTime as RFC 3339 in UTC, as Go's `time.Time` marshals.
fn time(element: Element<'_>) -> Result<Value, String> {
    let text = std::str::from_utf8(element.content).map_err(|_| malformed("time"))?;
    let text = text.strip_suffix('Z').ok_or_else(|| malformed("time"))?;
    let (year, rest) = match element.tag {
        UTC_TIME => {
            let yy: i32 = text
                .get(..2)
                .and_then(|y| y.parse().ok())
                .ok_or_else(|| malformed("time"))?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..))
        }
        GENERALIZED_TIME => (
            text.get(..4)
                .and_then(|y| y.parse().ok())
                .ok_or_else(|| malformed("time"))?,
            text.get(4..),
        ),
        _ => return Err(malformed("validity")),
    };
    let rest = rest.ok_or_else(|| malformed("time"))?;
    let part = |from: usize| -> Result<u32, String> {
        rest.get(from..from + 2)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| malformed("time"))
    };
    let (month, day, hour, minute, second) = (part(0)?, part(2)?, part(4)?, part(6)?, part(8)?);
    let fraction = rest
        .get(10..)
        .and_then(|f| f.strip_prefix('.'))
        .map(|f| f.trim_end_matches('0'))
        .filter(|f| !f.is_empty())
        .map(|f| format!(".{f}"))
        .unwrap_or_default();
    Ok(Value::String(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z"
    )))
}

/// Go's `x509.SignatureAlgorithm` number for an algorithm OID (0: unknown).
fn signature_algorithm(arcs: &[u64]) -> u64 {
    match arcs {
        [1, 2, 840, 113549, 1, 1, 2] => 1,
        [1, 2, 840, 113549, 1, 1, 4] => 2,
        [1, 2, 840, 113549, 1, 1, 5] => 3,
        [1, 2, 840, 113549, 1, 1, 11] => 4,
        [1, 2, 840, 113549, 1, 1, 12] => 5,
        [1, 2, 840, 113549, 1, 1, 13] => 6,
        [1, 2, 840, 10040, 4, 3] => 7,
        [2, 16, 840, 1, 101, 3, 4, 3, 2] => 8,
        [1, 2, 840, 10045, 4, 1] => 9,
        [1, 2, 840, 10045, 4, 3, 2] => 10,
        [1, 2, 840, 10045, 4, 3, 3] => 11,
        [1, 2, 840, 10045, 4, 3, 4] => 12,
        [1, 2, 840, 113549, 1, 1, 10] => 13,
        [1, 3, 101, 112] => 16,
        _ => 0,
    }
}

fn algorithm_identifier(reader: &mut Reader<'_>) -> Result<Vec<u64>, String> {
    let mut algorithm = reader.sequence("algorithm identifier")?;
    oid_arcs(algorithm.expect(OID, "algorithm identifier")?.content)
}

/// The subject public key info: it must be RSA; returns `{N, E}`.
fn rsa_public_key(raw: &[u8]) -> Result<Value, String> {
    let mut spki = Reader(raw);
    let mut spki = spki.sequence("public key info")?;
    let algorithm = algorithm_identifier(&mut spki)?;
    if algorithm != [1, 2, 840, 113549, 1, 1, 1] {
        return Err("certificate should use rsa algorithm".to_owned());
    }
    let (key, _) = bit_string(spki.expect(BIT_STRING, "public key")?.content)?;
    let mut key = Reader(key).sequence("RSA public key")?;
    let modulus = key.expect(INTEGER, "RSA modulus")?;
    let exponent = key.expect(INTEGER, "RSA exponent")?;
    Ok(json!({
        "N": integer_decimal(modulus.content),
        "E": small_integer(exponent.content)?,
    }))
}

// ---- extensions ----

/// What the extensions say, in Go's field names; absent lists are null.
#[derive(Default)]
struct Parsed {
    fields: Map<String, Value>,
    unhandled_critical: Vec<Value>,
}

impl Parsed {
    fn push(&mut self, key: &str, value: Value) {
        match self.fields.get_mut(key) {
            Some(Value::Array(list)) => list.push(value),
            _ => {
                self.fields
                    .insert(key.to_owned(), Value::Array(vec![value]));
            }
        }
    }

    fn set(&mut self, key: &str, value: Value) {
        self.fields.insert(key.to_owned(), value);
    }
}

/// `Extensions` as listed, and their parsed meaning into `parsed`.
fn extensions(raw: &[u8], parsed: &mut Parsed, certificate: bool) -> Result<Value, String> {
    let mut list = Vec::new();
    let mut reader = Reader(raw);
    while !reader.is_empty() {
        let mut extension = reader.sequence("extension")?;
        let arcs = oid_arcs(extension.expect(OID, "extension")?.content)?;
        let critical = match extension.optional(BOOLEAN)? {
            Some(b) => b.content.first().is_some_and(|b| *b != 0),
            None => false,
        };
        let value = extension.expect(OCTET_STRING, "extension")?.content;
        list.push(
            json!({"Id": oid_json(&arcs), "Critical": critical, "Value": base64_json(value)}),
        );
        let handled = match arcs.as_slice() {
            [2, 5, 29, 17] => {
                subject_alt_names(value, parsed)?;
                true
            }
            _ if !certificate => false,
            [2, 5, 29, 15] => {
                key_usage(value, parsed)?;
                true
            }
            [2, 5, 29, 19] => {
                basic_constraints(value, parsed)?;
                true
            }
            [2, 5, 29, 14] => {
                let id = Reader(value).expect(OCTET_STRING, "subject key identifier")?;
                parsed.set("SubjectKeyId", base64_json(id.content));
                true
            }
            [2, 5, 29, 35] => {
                let mut akid = Reader(value).sequence("authority key identifier")?;
                if let Some(id) = akid.optional(0x80)? {
                    parsed.set("AuthorityKeyId", base64_json(id.content));
                }
                true
            }
            [2, 5, 29, 37] => {
                ext_key_usage(value, parsed)?;
                true
            }
            [2, 5, 29, 31] => {
                crl_distribution_points(value, parsed)?;
                true
            }
            [1, 3, 6, 1, 5, 5, 7, 1, 1] => {
                authority_info_access(value, parsed)?;
                true
            }
            [2, 5, 29, 32] => {
                certificate_policies(value, parsed)?;
                true
            }
            [2, 5, 29, 30] => {
                name_constraints(value, critical, parsed)?;
                true
            }
            _ => false,
        };
        if critical && !handled {
            parsed.unhandled_critical.push(oid_json(&arcs));
        }
    }
    Ok(if list.is_empty() {
        Value::Null
    } else {
        Value::Array(list)
    })
}

fn key_usage(value: &[u8], parsed: &mut Parsed) -> Result<(), String> {
    let (bits, unused) = bit_string(Reader(value).expect(BIT_STRING, "key usage")?.content)?;
    let total = bits.len() * 8 - usize::from(unused);
    let mut usage = 0u64;
    for i in 0..9.min(total) {
        let set = bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
        if set {
            usage |= 1 << i;
        }
    }
    parsed.set("KeyUsage", json!(usage));
    Ok(())
}

fn basic_constraints(value: &[u8], parsed: &mut Parsed) -> Result<(), String> {
    let mut constraints = Reader(value).sequence("basic constraints")?;
    let is_ca = match constraints.optional(BOOLEAN)? {
        Some(b) => b.content.first().is_some_and(|b| *b != 0),
        None => false,
    };
    let max_path_len = match constraints.optional(INTEGER)? {
        Some(n) => small_integer(n.content)?,
        None => -1,
    };
    parsed.set("BasicConstraintsValid", Value::Bool(true));
    parsed.set("IsCA", Value::Bool(is_ca));
    parsed.set("MaxPathLen", json!(max_path_len));
    parsed.set("MaxPathLenZero", Value::Bool(max_path_len == 0));
    Ok(())
}

/// Go's `x509.ExtKeyUsage` number for a usage OID.
fn ext_key_usage_number(arcs: &[u64]) -> Option<u64> {
    Some(match arcs {
        [2, 5, 29, 37, 0] => 0,
        [1, 3, 6, 1, 5, 5, 7, 3, 1] => 1,
        [1, 3, 6, 1, 5, 5, 7, 3, 2] => 2,
        [1, 3, 6, 1, 5, 5, 7, 3, 3] => 3,
        [1, 3, 6, 1, 5, 5, 7, 3, 4] => 4,
        [1, 3, 6, 1, 5, 5, 7, 3, 5] => 5,
        [1, 3, 6, 1, 5, 5, 7, 3, 6] => 6,
        [1, 3, 6, 1, 5, 5, 7, 3, 7] => 7,
        [1, 3, 6, 1, 5, 5, 7, 3, 8] => 8,
        [1, 3, 6, 1, 5, 5, 7, 3, 9] => 9,
        [1, 3, 6, 1, 4, 1, 311, 10, 3, 3] => 10,
        [2, 16, 840, 1, 113730, 4, 1] => 11,
        [1, 3, 6, 1, 4, 1, 311, 2, 1, 22] => 12,
        [1, 3, 6, 1, 4, 1, 311, 61, 1, 1] => 13,
        _ => return None,
    })
}

fn ext_key_usage(value: &[u8], parsed: &mut Parsed) -> Result<(), String> {
    let mut usages = Reader(value).sequence("extended key usage")?;
    while !usages.is_empty() {
        let arcs = oid_arcs(usages.expect(OID, "extended key usage")?.content)?;
        match ext_key_usage_number(&arcs) {
            Some(n) => parsed.push("ExtKeyUsage", json!(n)),
            None => parsed.push("UnknownExtKeyUsage", oid_json(&arcs)),
        }
    }
    Ok(())
}

/// An IP address as Go's `net.IP` prints it.
fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
        return Some(std::net::Ipv4Addr::from(octets).to_string());
    }
    let address = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
    Some(match address.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => address.to_string(),
    })
}

fn subject_alt_names(value: &[u8], parsed: &mut Parsed) -> Result<(), String> {
    let mut names = Reader(value).sequence("subject alternative names")?;
    while !names.is_empty() {
        let name = names.element()?;
        let text = || String::from_utf8_lossy(name.content).into_owned();
        match name.tag {
            0x81 => parsed.push("EmailAddresses", Value::String(text())),
            0x82 => parsed.push("DNSNames", Value::String(text())),
            0x86 => parsed.push("URIs", url_json(&text())),
            0x87 => {
                let ip = ip_text(name.content).ok_or_else(|| malformed("IP address"))?;
                parsed.push("IPAddresses", Value::String(ip));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A URL as Go's `url.URL` struct marshals (scheme, host, path, query and fragment split).
fn url_json(text: &str) -> Value {
    let (rest, fragment) = text.split_once('#').unwrap_or((text, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (scheme, rest) = match rest.split_once(':') {
        Some((scheme, rest)) if !scheme.is_empty() && !scheme.contains('/') => (scheme, rest),
        _ => ("", rest),
    };
    let (host, path, opaque) = match rest.strip_prefix("//") {
        Some(authority) => {
            let (host, path) = match authority.find('/') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            };
            (host, path, "")
        }
        None if !scheme.is_empty() && !rest.starts_with('/') => ("", "", rest),
        None => ("", rest, ""),
    };
    json!({
        "Scheme": scheme.to_ascii_lowercase(), "Opaque": opaque, "User": null, "Host": host,
        "Path": path, "RawPath": "", "OmitHost": false, "ForceQuery": false,
        "RawQuery": query, "Fragment": fragment, "RawFragment": "",
    })
}

fn crl_distribution_points(value: &[u8], parsed: &mut Parsed) -> Result<(), String> {
    let mut points = Reader(value).sequence("CRL distribution points")?;
    while !points.is_empty() {
        let mut point = points.sequence("CRL distribution point")?;
        let Some(name) = point.optional(0xa0)? else {
            continue;
        };
        let Some(full) = Reader(name.content).optional(0xa0)? else {
            continue;
        };
        let mut general = Reader(full.content);
        while !general.is_empty() {
            let entry = general.element()?;
            if entry.tag == 0x86 {
                parsed.push(
                    "CRLDistributionPoints",
                    Value::String(String::from_utf8_lossy(entry.content).into_owned()),
                );
            }
        }
    }
    Ok(())
}

fn authority_info_access(value: &[u8], parsed: &mut Parsed) -> Result<(), String> {
    let mut descriptions = Reader(value).sequence("authority information access")?;
    while !descriptions.is_empty() {
        let mut description = descriptions.sequence("access description")?;
        let method = oid_arcs(description.expect(OID, "access description")?.content)?;
        let location = description.element()?;
        if location.tag != 0x86 {
            continue;
        }
        let url = Value::String(String::from_utf8_lossy(location.content).into_owned());
        match method.as_slice() {
            [1, 3, 6, 1, 5, 5, 7, 48, 1] => parsed.push("OCSPServer", url),
            [1, 3, 6, 1, 5, 5, 7, 48, 2] => parsed.push("IssuingCertificateURL", url),
            _ => {}
        }
    }
    Ok(())
}

fn certificate_policies(value: &[u8], parsed: &mut Parsed) -> Result<(), String> {
    let mut policies = Reader(value).sequence("certificate policies")?;
    while !policies.is_empty() {
        let mut policy = policies.sequence("policy information")?;
        let arcs = oid_arcs(policy.expect(OID, "policy information")?.content)?;
        parsed.push("PolicyIdentifiers", oid_json(&arcs));
        parsed.push("Policies", Value::String(oid_text(&arcs)));
    }
    Ok(())
}

fn name_constraints(value: &[u8], critical: bool, parsed: &mut Parsed) -> Result<(), String> {
    let mut constraints = Reader(value).sequence("name constraints")?;
    parsed.set("PermittedDNSDomainsCritical", Value::Bool(critical));
    for (tag, prefix) in [(0xa0, "Permitted"), (0xa1, "Excluded")] {
        let Some(subtrees) = constraints.optional(tag)? else {
            continue;
        };
        let mut subtrees = Reader(subtrees.content);
        while !subtrees.is_empty() {
            let mut subtree = subtrees.sequence("general subtree")?;
            let base = subtree.element()?;
            let text = || Value::String(String::from_utf8_lossy(base.content).into_owned());
            match base.tag {
                0x82 => parsed.push(&format!("{prefix}DNSDomains"), text()),
                0x81 => parsed.push(&format!("{prefix}EmailAddresses"), text()),
                0x86 => parsed.push(&format!("{prefix}URIDomains"), text()),
                0x87 => {
                    let half = base.content.len() / 2;
                    let (ip, mask) = base.content.split_at(half);
                    let ip = ip_text(ip).ok_or_else(|| malformed("IP constraint"))?;
                    parsed.push(
                        &format!("{prefix}IPRanges"),
                        json!({"IP": ip, "Mask": base64_json(mask)}),
                    );
                }
                _ => {}
            }
        }
    }
    Ok(())
}

// ---- certificates and requests ----

const CERTIFICATE_LISTS: [&str; 20] = [
    "ExtraExtensions",
    "ExtKeyUsage",
    "UnknownExtKeyUsage",
    "SubjectKeyId",
    "AuthorityKeyId",
    "OCSPServer",
    "IssuingCertificateURL",
    "DNSNames",
    "EmailAddresses",
    "IPAddresses",
    "URIs",
    "PermittedDNSDomains",
    "ExcludedDNSDomains",
    "PermittedIPRanges",
    "ExcludedIPRanges",
    "PermittedEmailAddresses",
    "ExcludedEmailAddresses",
    "PermittedURIDomains",
    "ExcludedURIDomains",
    "CRLDistributionPoints",
];

fn certificate(der: &[u8]) -> Result<Value, String> {
    let mut outer = Reader(der);
    let certificate = outer.expect(SEQUENCE, "certificate")?;
    let mut fields = Reader(certificate.content);
    let tbs = fields.expect(SEQUENCE, "tbs certificate")?;
    let signature_algorithm = algorithm_identifier(&mut fields)?;
    let (signature, _) = bit_string(fields.expect(BIT_STRING, "signature")?.content)?;

    let mut tbs_fields = Reader(tbs.content);
    let version = match tbs_fields.optional(0xa0)? {
        Some(explicit) => {
            small_integer(Reader(explicit.content).expect(INTEGER, "version")?.content)?
        }
        None => 0,
    };
    let serial = tbs_fields.expect(INTEGER, "serial number")?;
    algorithm_identifier(&mut tbs_fields)?;
    let issuer = tbs_fields.expect(SEQUENCE, "issuer")?;
    let mut validity = tbs_fields.sequence("validity")?;
    let not_before = time(validity.element()?)?;
    let not_after = time(validity.element()?)?;
    let subject = tbs_fields.expect(SEQUENCE, "subject")?;
    let spki = tbs_fields.expect(SEQUENCE, "public key info")?;
    let public_key = rsa_public_key(spki.raw)?;
    tbs_fields.optional(0x81)?;
    tbs_fields.optional(0x82)?;
    let mut parsed = Parsed::default();
    let extensions = match tbs_fields.optional(0xa3)? {
        Some(explicit) => {
            let list = Reader(explicit.content).expect(SEQUENCE, "extensions")?;
            self::extensions(list.content, &mut parsed, true)?
        }
        None => Value::Null,
    };

    let serial_number: f64 = integer_decimal(serial.content)
        .parse()
        .map_err(|_| malformed("serial number"))?;
    let mut out = json!({
        "Raw": base64_json(certificate.raw),
        "RawTBSCertificate": base64_json(tbs.raw),
        "RawSubjectPublicKeyInfo": base64_json(spki.raw),
        "RawSubject": base64_json(subject.raw),
        "RawIssuer": base64_json(issuer.raw),
        "Signature": base64_json(signature),
        "SignatureAlgorithm": signature_algorithm_number(&signature_algorithm),
        "PublicKeyAlgorithm": 1,
        "PublicKey": public_key,
        "Version": version + 1,
        "SerialNumber": serial_number,
        "Issuer": name(issuer.content)?,
        "Subject": name(subject.content)?,
        "NotBefore": not_before,
        "NotAfter": not_after,
        "KeyUsage": 0,
        "Extensions": extensions,
        "UnhandledCriticalExtensions": null,
        "BasicConstraintsValid": false,
        "IsCA": false,
        "MaxPathLen": 0,
        "MaxPathLenZero": false,
        "PermittedDNSDomainsCritical": false,
        "Policies": null,
        "PolicyIdentifiers": null,
        "InhibitAnyPolicy": 0,
        "InhibitAnyPolicyZero": false,
        "InhibitPolicyMapping": 0,
        "InhibitPolicyMappingZero": false,
        "RequireExplicitPolicy": 0,
        "RequireExplicitPolicyZero": false,
        "PolicyMappings": null,
    });
    if let Value::Object(map) = &mut out {
        for key in CERTIFICATE_LISTS {
            map.insert(key.to_owned(), Value::Null);
        }
        map.extend(parsed.fields);
        if !parsed.unhandled_critical.is_empty() {
            map.insert(
                "UnhandledCriticalExtensions".into(),
                Value::Array(parsed.unhandled_critical),
            );
        }
    }
    Ok(out)
}

fn signature_algorithm_number(arcs: &[u64]) -> Value {
    json!(signature_algorithm(arcs))
}

fn certificate_request(der: &[u8]) -> Result<Value, String> {
    let mut outer = Reader(der);
    let request = outer.expect(SEQUENCE, "certificate request")?;
    let mut fields = Reader(request.content);
    let info = fields.expect(SEQUENCE, "certificate request info")?;
    let signature_algorithm = algorithm_identifier(&mut fields)?;
    let (signature, _) = bit_string(fields.expect(BIT_STRING, "signature")?.content)?;

    let mut info_fields = Reader(info.content);
    let version = small_integer(info_fields.expect(INTEGER, "version")?.content)?;
    let subject = info_fields.expect(SEQUENCE, "subject")?;
    let spki = info_fields.expect(SEQUENCE, "public key info")?;
    let public_key = rsa_public_key(spki.raw)?;
    let mut parsed = Parsed::default();
    let mut extensions = Value::Null;
    if let Some(attributes) = info_fields.optional(0xa0)? {
        let mut attributes = Reader(attributes.content);
        while !attributes.is_empty() {
            let mut attribute = attributes.sequence("attribute")?;
            let arcs = oid_arcs(attribute.expect(OID, "attribute")?.content)?;
            // PKCS #9 extensionRequest: the requested extensions.
            if arcs == [1, 2, 840, 113549, 1, 9, 14] {
                let mut values = Reader(attribute.expect(SET, "attribute values")?.content);
                let list = values.expect(SEQUENCE, "extension request")?;
                extensions = self::extensions(list.content, &mut parsed, false)?;
            }
        }
    }
    let mut out = json!({
        "Raw": base64_json(request.raw),
        "RawTBSCertificateRequest": base64_json(info.raw),
        "RawSubjectPublicKeyInfo": base64_json(spki.raw),
        "RawSubject": base64_json(subject.raw),
        "Version": version,
        "Signature": base64_json(signature),
        "SignatureAlgorithm": signature_algorithm_number(&signature_algorithm),
        "PublicKeyAlgorithm": 1,
        "PublicKey": public_key,
        "Subject": name(subject.content)?,
        "Attributes": null,
        "Extensions": extensions,
        "ExtraExtensions": null,
        "DNSNames": null,
        "EmailAddresses": null,
        "IPAddresses": null,
        "URIs": null,
    });
    if let Value::Object(map) = &mut out {
        map.extend(parsed.fields);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate made with OpenSSL from known inputs; the expected key, serial and
    /// extension bytes were read with Python's `cryptography`, the field shapes are Go's
    /// `x509.Certificate` JSON.
    #[test]
    fn a_certificate_decodes_to_gos_shape() {
        let cert = decode(include_str!("testdata/x509-cert.pem")).unwrap();
        assert_eq!(cert["Version"], 3);
        assert_eq!(cert["SignatureAlgorithm"], 4, "SHA256WithRSA");
        assert_eq!(cert["PublicKeyAlgorithm"], 1, "RSA");
        assert_eq!(cert["PublicKey"]["E"], 65537);
        assert_eq!(
            cert["PublicKey"]["N"],
            "18474258932140571731809792795842872017734585218852288876509960578311271410295846589709685539738433656378327342035000378235046950887382888591762279272152152374788168325889210109789238259563118405315977712672031155289839630676167055677431456724305926853083629693480302128139501704478260556104659185990667377404618271748933371609011513439237579873841323612684359680026617729647112609937406553594923083797718176576975393896607633759330759838964325920809860706285865976851314516746589378927849866130667055457249949791071169793136770280638836721510932566007384724133192380056206345879110582882012312126348344063634306447177"
        );
        // A big.Int marshals as a JSON number; decoded, it is a float64.
        assert_eq!(cert["SerialNumber"], json!(4.1446156801443026e37));
        assert_eq!(cert["NotBefore"], "2026-12-03T09:50:09Z");
        assert_eq!(cert["NotAfter"], "2026-12-04T09:50:09Z");
        let subject = &cert["Subject"];
        assert_eq!(subject["CommonName"], "web.shop.svc");
        assert_eq!(subject["Country"], json!(["DE"]));
        assert_eq!(subject["Organization"], json!(["Bylaw Test"]));
        assert_eq!(subject["OrganizationalUnit"], json!(["Policy"]));
        assert_eq!(subject["Locality"], Value::Null);
        assert_eq!(subject["SerialNumber"], "");
        assert_eq!(
            subject["Names"][3],
            json!({"Type": [2, 5, 4, 3], "Value": "web.shop.svc"})
        );
        assert_eq!(cert["Issuer"], cert["Subject"], "self-signed");
        // digitalSignature | keyEncipherment | keyCertSign
        assert_eq!(cert["KeyUsage"], 1 + 4 + 32);
        assert_eq!(cert["BasicConstraintsValid"], true);
        assert_eq!(cert["IsCA"], true);
        assert_eq!(cert["MaxPathLen"], 0);
        assert_eq!(cert["MaxPathLenZero"], true);
        assert_eq!(cert["ExtKeyUsage"], json!([1, 2]), "serverAuth, clientAuth");
        assert_eq!(cert["UnknownExtKeyUsage"], Value::Null);
        assert_eq!(
            cert["DNSNames"],
            json!(["web.shop.svc", "web.shop.svc.cluster.local"])
        );
        assert_eq!(cert["IPAddresses"], json!(["10.0.0.7"]));
        assert_eq!(cert["EmailAddresses"], json!(["ops@example.com"]));
        assert_eq!(cert["URIs"][0]["Scheme"], "spiffe");
        assert_eq!(cert["URIs"][0]["Path"], "/ns/shop/sa/web");
        assert_eq!(cert["SubjectKeyId"], "BSMq+iKWMKEivTTvMeUGqNQh00Y=");
        assert_eq!(cert["AuthorityKeyId"], Value::Null);
        assert_eq!(cert["PolicyIdentifiers"], json!([[2, 23, 140, 1, 2, 1]]));
        assert_eq!(cert["Policies"], json!(["2.23.140.1.2.1"]));
        assert_eq!(
            cert["CRLDistributionPoints"],
            json!(["http://crl.example.com/ca.crl"])
        );
        assert_eq!(cert["OCSPServer"], json!(["http://ocsp.example.com"]));
        assert_eq!(cert["IssuingCertificateURL"], Value::Null);
        assert_eq!(cert["UnhandledCriticalExtensions"], Value::Null);
        assert_eq!(
            cert["Extensions"][0],
            json!({"Id": [2, 5, 29, 19], "Critical": true, "Value": "MAYBAf8CAQA="})
        );
        assert_eq!(cert["Extensions"].as_array().map(Vec::len), Some(8));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(cert["Raw"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw.first(), Some(&0x30));
    }

    #[test]
    fn a_certificate_request_decodes_to_gos_shape() {
        let csr = decode(include_str!("testdata/x509-csr.pem")).unwrap();
        assert_eq!(csr["Version"], 0);
        assert_eq!(csr["SignatureAlgorithm"], 4);
        assert_eq!(csr["Subject"]["CommonName"], "api.shop.svc");
        assert_eq!(csr["Subject"]["Province"], json!(["Berlin"]));
        assert_eq!(csr["DNSNames"], json!(["api.shop.svc"]));
        assert_eq!(csr["Extensions"][0]["Id"], json!([2, 5, 29, 17]));
        // The same key as the certificate.
        let cert = decode(include_str!("testdata/x509-cert.pem")).unwrap();
        assert_eq!(csr["PublicKey"], cert["PublicKey"]);
    }

    #[test]
    fn integers_print_in_decimal() {
        assert_eq!(integer_decimal(&[0x00]), "0");
        assert_eq!(integer_decimal(&[0x01, 0x00]), "256");
        assert_eq!(
            integer_decimal(&[0x7f, 0xff, 0xff, 0xff, 0xff]),
            "549755813887"
        );
        assert_eq!(integer_decimal(&[0xff]), "-1");
        assert_eq!(integer_decimal(&[0x3b, 0x9a, 0xca, 0x00]), "1000000000");
    }

    #[test]
    fn object_identifiers_decode() {
        assert_eq!(oid_arcs(&[0x55, 0x1d, 0x0f]).unwrap(), [2, 5, 29, 15]);
        assert_eq!(
            oid_arcs(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]).unwrap(),
            [1, 2, 840, 113549, 1, 1, 11]
        );
        assert!(oid_arcs(&[0x86]).is_err());
    }

    #[test]
    fn urls_split_as_go_does() {
        let url = url_json("spiffe://cluster.local/ns/default/sa/web?x=1#f");
        assert_eq!(url["Scheme"], "spiffe");
        assert_eq!(url["Host"], "cluster.local");
        assert_eq!(url["Path"], "/ns/default/sa/web");
        assert_eq!(url["RawQuery"], "x=1");
        assert_eq!(url["Fragment"], "f");
        assert_eq!(url_json("mailto:a@b")["Opaque"], "a@b");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(
            decode("nothing here").unwrap_err(),
            "failed to decode PEM block"
        );
        assert_eq!(
            decode("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap_err(),
            "PEM block neither contains a CERTIFICATE or CERTIFICATE REQUEST"
        );
        assert!(
            decode("-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n").is_err()
        );
        // Truncated lengths anywhere never panic.
        let der = [0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(certificate(&der).is_err());
    }
}
