//! Kubernetes' CEL libraries (k8s.io/apiserver/pkg/cel/library), with their semantics:
//! quantity, IP and CIDR, URL, regex (`find`, `findAll`), lists (`isSorted`, `sum`, `min`,
//! `max`, `indexOf`, `lastIndexOf`), sets and semver.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelString, CelUInt, DYN_TYPE, INT_TYPE,
    LIST_TYPE, STRING_TYPE,
};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::{
    arg, fail, int_arg, library_type, ok_bool, ok_double, ok_int, ok_string, str_arg, type_of,
};
use crate::quantity::Quantity as Q;

/// Result of a library function.
type Res<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

// ----- quantity -----

/// `quantity(…)`: a Kubernetes resource quantity.
#[derive(Debug, Clone)]
pub struct Quantity(pub Q);

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

library_type!(Quantity, QUANTITY_TYPE, "kubernetes.Quantity");

fn quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let text = str_arg(&args, 0, "quantity")?;
    let q = Q::parse(text).ok_or_else(|| fail("quantity", format!("invalid quantity {text:?}")))?;
    Ok(CowVal::owned(Quantity(q)))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(Q::parse(str_arg(&args, 0, "isQuantity")?).is_some())
}

fn quantity_of<'a>(args: &'a [CowVal<'_, '_>], i: usize, f: &str) -> Result<&'a Q, ExecutionError> {
    arg::<Quantity>(args, i, f).map(|q| &q.0)
}

/// The right-hand side of `add`/`sub`: a quantity or an int.
fn quantity_or_int(args: &[CowVal<'_, '_>], i: usize, f: &str) -> Result<Q, ExecutionError> {
    if let Ok(q) = quantity_of(args, i, f) {
        return Ok(q.clone());
    }
    let n = int_arg(args, i, f)?;
    Ok(Q::from_i64(n, crate::quantity::Format::DecimalSI))
}

fn q_is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(quantity_of(&args, 0, "isInteger")?.to_i64().is_some())
}

fn q_as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let q = quantity_of(&args, 0, "asInteger")?;
    ok_int(q.to_i64().ok_or_else(|| {
        fail(
            "asInteger",
            "cannot convert value to integer losslessly or it would overflow",
        )
    })?)
}

fn q_as_approximate_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_double(quantity_of(&args, 0, "asApproximateFloat")?.to_f64())
}

fn q_sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_int(i64::from(quantity_of(&args, 0, "sign")?.signum()))
}

fn q_add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let lhs = quantity_of(&args, 0, "add")?;
    let rhs = quantity_or_int(&args, 1, "add")?;
    let sum = lhs
        .checked_add(&rhs)
        .ok_or_else(|| fail("add", "quantities too far apart to add"))?;
    Ok(CowVal::owned(Quantity(sum)))
}

fn q_sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let lhs = quantity_of(&args, 0, "sub")?;
    let rhs = quantity_or_int(&args, 1, "sub")?;
    let diff = lhs
        .checked_sub(&rhs)
        .ok_or_else(|| fail("sub", "quantities too far apart to subtract"))?;
    Ok(CowVal::owned(Quantity(diff)))
}

fn q_compare(args: &[CowVal<'_, '_>], f: &str) -> Result<Ordering, ExecutionError> {
    Ok(quantity_of(args, 0, f)?.cmp(quantity_of(args, 1, f)?))
}

fn q_is_greater_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(q_compare(&args, "isGreaterThan")? == Ordering::Greater)
}

fn q_is_less_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(q_compare(&args, "isLessThan")? == Ordering::Less)
}

fn q_compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_int(match q_compare(&args, "compareTo")? {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
}

// ----- IP and CIDR -----

/// `ip(…)`: an IPv4 or IPv6 address (no zone, no IPv4-mapped IPv6).
#[derive(Debug, Clone, PartialEq)]
pub struct Ip(pub IpAddr);

library_type!(Ip, IP_TYPE, "net.IP");

/// `cidr(…)`: an address and a prefix length.
#[derive(Debug, Clone, PartialEq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

library_type!(Cidr, CIDR_TYPE, "net.CIDR");

/// Parses an address as Kubernetes' `ip()` does.
pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    if text.contains('%') {
        return Err(format!("IP address with zone value is not allowed: {text}"));
    }
    let addr: IpAddr = text
        .parse()
        .map_err(|_| format!("IP Address {text:?} parse error during conversion from string"))?;
    if let IpAddr::V6(v6) = addr {
        if v6.to_ipv4_mapped().is_some() {
            return Err(format!("IPv4-mapped IPv6 address {text:?} is not allowed"));
        }
    }
    Ok(addr)
}

/// Parses a prefix as Kubernetes' `cidr()` does (host bits may be set).
pub fn parse_cidr(text: &str) -> Result<Cidr, String> {
    let (addr, len) = text.split_once('/').ok_or_else(|| {
        format!("network address parse error during conversion from string: {text:?}")
    })?;
    let addr = parse_ip(addr)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = len
        .parse()
        .ok()
        .filter(|p| *p <= max && !len.starts_with('+') && (len == "0" || !len.starts_with('0')))
        .ok_or_else(|| format!("invalid prefix length in {text:?}"))?;
    Ok(Cidr { addr, prefix })
}

fn bits(addr: IpAddr) -> (u128, u32) {
    match addr {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn masked(addr: IpAddr, prefix: u8) -> IpAddr {
    let (value, width) = bits(addr);
    let host_bits = width - u32::from(prefix);
    let mask = if host_bits >= 128 {
        0
    } else {
        !((1u128 << host_bits) - 1)
    };
    let net = value & mask;
    match addr {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(net as u32)),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(net)),
    }
}

impl Cidr {
    fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4()
            && masked(addr, self.prefix) == masked(self.addr, self.prefix)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let addr = parse_ip(str_arg(&args, 0, "ip")?).map_err(|e| fail("ip", e))?;
    Ok(CowVal::owned(Ip(addr)))
}

fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(parse_ip(str_arg(&args, 0, "isIP")?).is_ok())
}

fn ip_is_canonical<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let text = str_arg(&args, 0, "ip.isCanonical")?;
    let addr = parse_ip(text).map_err(|e| fail("ip.isCanonical", e))?;
    ok_bool(addr.to_string() == text)
}

fn ip_of(args: &[CowVal<'_, '_>], f: &str) -> Result<IpAddr, ExecutionError> {
    arg::<Ip>(args, 0, f).map(|ip| ip.0)
}

fn ip_family<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_int(if ip_of(&args, "family")?.is_ipv4() {
        4
    } else {
        6
    })
}

fn ip_is_unspecified<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(ip_of(&args, "isUnspecified")?.is_unspecified())
}

fn ip_is_loopback<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(ip_of(&args, "isLoopback")?.is_loopback())
}

fn is_link_local_multicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 224 && o[1] == 0 && o[2] == 0
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            s & 0xff0f == 0xff02
        }
    }
}

fn is_link_local_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 169 && o[1] == 254
        }
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn ip_is_link_local_multicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(is_link_local_multicast(ip_of(
        &args,
        "isLinkLocalMulticast",
    )?))
}

fn ip_is_link_local_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(is_link_local_unicast(ip_of(&args, "isLinkLocalUnicast")?))
}

/// Go's `netip.Addr.IsGlobalUnicast`.
fn ip_is_global_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let addr = ip_of(&args, "isGlobalUnicast")?;
    let broadcast = matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    ok_bool(
        !addr.is_unspecified()
            && !addr.is_loopback()
            && !addr.is_multicast()
            && !is_link_local_unicast(addr)
            && !broadcast,
    )
}

fn ip_to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(ip_of(&args, "string")?.to_string())
}

fn cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let c = parse_cidr(str_arg(&args, 0, "cidr")?).map_err(|e| fail("cidr", e))?;
    Ok(CowVal::owned(c))
}

fn is_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(parse_cidr(str_arg(&args, 0, "isCIDR")?).is_ok())
}

fn cidr_contains_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let c = arg::<Cidr>(&args, 0, "containsIP")?;
    let addr = match arg::<Ip>(&args, 1, "containsIP") {
        Ok(ip) => ip.0,
        Err(_) => parse_ip(str_arg(&args, 1, "containsIP")?).map_err(|e| fail("containsIP", e))?,
    };
    ok_bool(c.contains(addr))
}

fn cidr_contains_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let c = arg::<Cidr>(&args, 0, "containsCIDR")?;
    let other = match arg::<Cidr>(&args, 1, "containsCIDR") {
        Ok(o) => o.clone(),
        Err(_) => {
            parse_cidr(str_arg(&args, 1, "containsCIDR")?).map_err(|e| fail("containsCIDR", e))?
        }
    };
    ok_bool(other.prefix >= c.prefix && c.contains(other.addr))
}

fn cidr_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    Ok(CowVal::owned(Ip(arg::<Cidr>(&args, 0, "ip")?.addr)))
}

fn cidr_masked<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let c = arg::<Cidr>(&args, 0, "masked")?;
    Ok(CowVal::owned(Cidr {
        addr: masked(c.addr, c.prefix),
        prefix: c.prefix,
    }))
}

fn cidr_prefix_length<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_int(i64::from(arg::<Cidr>(&args, 0, "prefixLength")?.prefix))
}

fn cidr_to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(arg::<Cidr>(&args, 0, "string")?.to_string())
}

// ----- URL -----

/// `url(…)`: an absolute URL or an absolute path.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    pub text: String,
    pub scheme: String,
    pub host: String,
    pub path: String,
    pub query: String,
}

library_type!(Url, URL_TYPE, "net.URL");

/// Parses a URL as Kubernetes' `url()` does (Go's `url.ParseRequestURI`): an absolute URI
/// with a scheme, or an absolute path; no fragment.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let invalid = || format!("URL parse error during conversion from string: {text:?}");
    if text.is_empty() || text.chars().any(char::is_control) || text.contains('#') {
        return Err(invalid());
    }
    let (rest, query) = match text.split_once('?') {
        Some((r, q)) => (r, q.to_owned()),
        None => (text, String::new()),
    };
    if rest.starts_with('/') {
        return Ok(Url {
            text: text.to_owned(),
            scheme: String::new(),
            host: String::new(),
            path: rest.to_owned(),
            query,
        });
    }
    let (scheme, after) = rest.split_once(':').ok_or_else(invalid)?;
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(invalid());
    }
    let (host, path) = match after.strip_prefix("//") {
        Some(authority) => {
            let (host, path) = match authority.find('/') {
                Some(i) => authority.split_at(i),
                None => (authority, ""),
            };
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            if host.contains(' ') {
                return Err(invalid());
            }
            (host.to_owned(), path.to_owned())
        }
        None if after.starts_with('/') => (String::new(), after.to_owned()),
        None => return Err(invalid()),
    };
    Ok(Url {
        text: text.to_owned(),
        scheme: scheme.to_owned(),
        host,
        path,
        query,
    })
}

impl Url {
    fn hostname(&self) -> &str {
        if let Some(inner) = self.host.strip_prefix('[') {
            return inner.split(']').next().unwrap_or(inner);
        }
        self.host.rsplit_once(':').map_or(&self.host, |(h, _)| h)
    }

    fn port(&self) -> &str {
        if self.host.starts_with('[') {
            return self.host.rsplit_once("]:").map_or("", |(_, p)| p);
        }
        self.host.rsplit_once(':').map_or("", |(_, p)| p)
    }
}

fn url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let u = parse_url(str_arg(&args, 0, "url")?).map_err(|e| fail("url", e))?;
    Ok(CowVal::owned(u))
}

fn is_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(parse_url(str_arg(&args, 0, "isURL")?).is_ok())
}

fn url_scheme<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(arg::<Url>(&args, 0, "getScheme")?.scheme.clone())
}

fn url_host<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(arg::<Url>(&args, 0, "getHost")?.host.clone())
}

fn url_hostname<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(arg::<Url>(&args, 0, "getHostname")?.hostname().to_owned())
}

fn url_port<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_string(arg::<Url>(&args, 0, "getPort")?.port().to_owned())
}

/// The path with the characters Go's `url.EscapedPath` escapes percent-encoded.
fn url_escaped_path<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let path = &arg::<Url>(&args, 0, "getEscapedPath")?.path;
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'~'
                    | b'$'
                    | b'&'
                    | b'+'
                    | b','
                    | b'/'
                    | b':'
                    | b';'
                    | b'='
                    | b'@'
                    | b'%'
                    | b'!'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
            );
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    ok_string(out)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b);
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_query<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let u = arg::<Url>(&args, 0, "getQuery")?;
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for pair in u.query.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        match grouped.iter_mut().find(|(key, _)| *key == k) {
            Some((_, values)) => values.push(v),
            None => grouped.push((k, vec![v])),
        }
    }
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = grouped
        .into_iter()
        .map(|(k, values)| {
            let list: Vec<Box<dyn Val + 'v>> = values
                .into_iter()
                .map(|v| Box::new(CelString::from(v)) as Box<dyn Val + 'v>)
                .collect();
            (
                CelMapKey::from(k),
                Box::new(CelList::from(list)) as Box<dyn Val + 'v>,
            )
        })
        .collect();
    Ok(CowVal::owned(CelMap::from(map)))
}

// ----- semver -----

/// `semver(…)`: a semantic version.
#[derive(Debug, Clone, PartialEq)]
pub struct Semver(pub semver::Version);

library_type!(Semver, SEMVER_TYPE, "kubernetes.Semver");

/// Parses as Kubernetes' `semver()` does; `normalize` accepts a `v` prefix and missing
/// minor/patch numbers, and drops leading zeros.
pub fn parse_semver(text: &str, normalize: bool) -> Result<semver::Version, String> {
    let invalid = |e: &dyn std::fmt::Display| format!("could not parse {text:?} as semver: {e}");
    if !normalize {
        return semver::Version::parse(text).map_err(|e| invalid(&e));
    }
    let trimmed = text.strip_prefix('v').unwrap_or(text);
    let (core, suffix) = match trimmed.find(['-', '+']) {
        Some(i) => trimmed.split_at(i),
        None => (trimmed, ""),
    };
    let mut parts: Vec<String> = core
        .split('.')
        .map(|p| {
            let stripped = p.trim_start_matches('0');
            if stripped.is_empty() && !p.is_empty() {
                "0".to_owned()
            } else {
                stripped.to_owned()
            }
        })
        .collect();
    while parts.len() < 3 {
        parts.push("0".to_owned());
    }
    semver::Version::parse(&format!("{}{suffix}", parts.join("."))).map_err(|e| invalid(&e))
}

fn semver_fn<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let text = str_arg(&args, 0, "semver")?;
    let normalize = args
        .get(1)
        .and_then(|v| v.downcast_ref::<CelBool>().map(|b| *b.inner()))
        .unwrap_or(false);
    let v = parse_semver(text, normalize).map_err(|e| fail("semver", e))?;
    Ok(CowVal::owned(Semver(v)))
}

fn is_semver<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let normalize = args
        .get(1)
        .and_then(|v| v.downcast_ref::<CelBool>().map(|b| *b.inner()))
        .unwrap_or(false);
    ok_bool(parse_semver(str_arg(&args, 0, "isSemver")?, normalize).is_ok())
}

fn semver_major<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_int(arg::<Semver>(&args, 0, "major")?.0.major as i64)
}

fn semver_minor<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_int(arg::<Semver>(&args, 0, "minor")?.0.minor as i64)
}

fn semver_patch<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_int(arg::<Semver>(&args, 0, "patch")?.0.patch as i64)
}

fn semver_compare(args: &[CowVal<'_, '_>], f: &str) -> Result<Ordering, ExecutionError> {
    let a = &arg::<Semver>(args, 0, f)?.0;
    let b = &arg::<Semver>(args, 1, f)?.0;
    // Build metadata does not take part in precedence.
    Ok(a.cmp_precedence(b))
}

fn semver_is_greater_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(semver_compare(&args, "isGreaterThan")? == Ordering::Greater)
}

fn semver_is_less_than<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_bool(semver_compare(&args, "isLessThan")? == Ordering::Less)
}

fn semver_compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    ok_int(match semver_compare(&args, "compareTo")? {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
}

// ----- regex -----

fn regex_of(pattern: &str, f: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(pattern).map_err(|e| fail(f, format!("invalid regular expression: {e}")))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let text = str_arg(&args, 0, "find")?;
    let re = regex_of(str_arg(&args, 1, "find")?, "find")?;
    ok_string(
        re.find(text)
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
    )
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let text = str_arg(&args, 0, "findAll")?;
    let re = regex_of(str_arg(&args, 1, "findAll")?, "findAll")?;
    let limit = match args.get(2) {
        Some(_) => int_arg(&args, 2, "findAll")?,
        None => -1,
    };
    let found: Vec<Box<dyn Val + 'v>> = if limit == 0 {
        Vec::new()
    } else {
        re.find_iter(text)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|m| Box::new(CelString::from(m.as_str().to_owned())) as Box<dyn Val + 'v>)
            .collect()
    };
    Ok(CowVal::owned(CelList::from(found)))
}

// ----- lists -----

fn list_items<'a, 'v>(
    args: &'a [CowVal<'_, 'v>],
    f: &str,
) -> Result<&'a [Box<dyn Val + 'v>], ExecutionError> {
    let value = args
        .first()
        .ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    value
        .downcast_ref::<CelList>()
        .map(|l| l.inner())
        .ok_or_else(|| fail(f, format!("{} is not a list", value.get_type().name())))
}

fn compare_items(a: &dyn Val, b: &dyn Val, f: &str) -> Result<Ordering, ExecutionError> {
    let comparer = a.as_comparer().ok_or_else(|| {
        fail(
            f,
            format!("{} values cannot be compared", a.get_type().name()),
        )
    })?;
    comparer.compare(b)
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let items = list_items(&args, "isSorted")?;
    for pair in items.windows(2) {
        if let [a, b] = pair {
            if compare_items(a.as_ref(), b.as_ref(), "isSorted")? == Ordering::Greater {
                return ok_bool(false);
            }
        }
    }
    ok_bool(true)
}

fn extreme<'b, 'v>(args: Vec<CowVal<'b, 'v>>, want: Ordering, f: &str) -> Res<'b, 'v> {
    let items = list_items(&args, f)?;
    let mut best: Option<&Box<dyn Val + 'v>> = None;
    for item in items {
        best = match best {
            None => Some(item),
            Some(current) if compare_items(item.as_ref(), current.as_ref(), f)? == want => {
                Some(item)
            }
            keep => keep,
        };
    }
    let best = best.ok_or_else(|| fail(f, format!("{f} called on empty list")))?;
    Ok(CowVal::Owned(best.clone()))
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    extreme(args, Ordering::Less, "min")
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    extreme(args, Ordering::Greater, "max")
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let items = list_items(&args, "sum")?;
    let Some(first) = items.first() else {
        return ok_int(0);
    };
    if first.downcast_ref::<CelInt>().is_some() {
        let mut total: i64 = 0;
        for item in items {
            let n = item
                .downcast_ref::<CelInt>()
                .ok_or_else(|| fail("sum", "mixed element types"))?;
            total = total
                .checked_add(*n.inner())
                .ok_or_else(|| fail("sum", "integer overflow"))?;
        }
        return ok_int(total);
    }
    if first.downcast_ref::<CelUInt>().is_some() {
        let mut total: u64 = 0;
        for item in items {
            let n = item
                .downcast_ref::<CelUInt>()
                .ok_or_else(|| fail("sum", "mixed element types"))?;
            total = total
                .checked_add(*n.inner())
                .ok_or_else(|| fail("sum", "unsigned integer overflow"))?;
        }
        return super::ok_uint(total);
    }
    if first.downcast_ref::<CelDouble>().is_some() {
        let mut total = 0.0;
        for item in items {
            let n = item
                .downcast_ref::<CelDouble>()
                .ok_or_else(|| fail("sum", "mixed element types"))?;
            total += *n.inner();
        }
        return ok_double(total);
    }
    if let Some(d) = first.downcast_ref::<cel::common::types::CelDuration>() {
        let mut total = *d.inner();
        for item in items.iter().skip(1) {
            let n = item
                .downcast_ref::<cel::common::types::CelDuration>()
                .ok_or_else(|| fail("sum", "mixed element types"))?;
            total = total
                .checked_add(n.inner())
                .ok_or_else(|| fail("sum", "duration overflow"))?;
        }
        return Ok(CowVal::owned(cel::common::types::CelDuration::from(total)));
    }
    Err(fail(
        "sum",
        format!("cannot sum {} values", first.get_type().name()),
    ))
}

fn position<'b, 'v>(args: Vec<CowVal<'b, 'v>>, last: bool, f: &str) -> Res<'b, 'v> {
    let items = list_items(&args, f)?;
    let needle = args
        .get(1)
        .ok_or_else(|| ExecutionError::invalid_argument_count(2, 1))?;
    let found = if last {
        items.iter().rposition(|i| i.equals(needle.as_ref()))
    } else {
        items.iter().position(|i| i.equals(needle.as_ref()))
    };
    ok_int(found.map_or(-1, |i| i as i64))
}

fn list_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    position(args, false, "indexOf")
}

fn list_last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    position(args, true, "lastIndexOf")
}

// ----- sets -----

/// Two list arguments' elements.
type ListPair<'a, 'v> = (&'a [Box<dyn Val + 'v>], &'a [Box<dyn Val + 'v>]);

fn set_pair<'a, 'v>(
    args: &'a [CowVal<'_, 'v>],
    f: &str,
) -> Result<ListPair<'a, 'v>, ExecutionError> {
    let list = |i: usize| -> Result<&'a [Box<dyn Val + 'v>], ExecutionError> {
        let v = args
            .get(i)
            .ok_or_else(|| ExecutionError::invalid_argument_count(2, args.len()))?;
        v.downcast_ref::<CelList>()
            .map(|l| l.inner())
            .ok_or_else(|| fail(f, "arguments must be lists"))
    };
    Ok((list(0)?, list(1)?))
}

fn contains_all(a: &[Box<dyn Val + '_>], b: &[Box<dyn Val + '_>]) -> bool {
    b.iter().all(|x| a.iter().any(|y| y.equals(x.as_ref())))
}

fn sets_contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let (a, b) = set_pair(&args, "sets.contains")?;
    ok_bool(contains_all(a, b))
}

fn sets_equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let (a, b) = set_pair(&args, "sets.equivalent")?;
    ok_bool(contains_all(a, b) && contains_all(b, a))
}

fn sets_intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Res<'b, 'v> {
    let (a, b) = set_pair(&args, "sets.intersects")?;
    ok_bool(b.iter().any(|x| a.iter().any(|y| y.equals(x.as_ref()))))
}

/// Registers the Kubernetes libraries.
pub fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let q = type_of::<Quantity>();
    let ip_t = type_of::<Ip>();
    let cidr_t = type_of::<Cidr>();
    let url_t = type_of::<Url>();
    let sv = type_of::<Semver>();
    for t in [&q, &ip_t, &cidr_t, &url_t, &sv] {
        env.add_type(t.to_owned())?;
    }
    // quantity
    env.add_overload(
        "quantity",
        "string_to_quantity",
        vec![STRING_TYPE],
        quantity,
    )?;
    env.add_overload(
        "isQuantity",
        "is_quantity_string",
        vec![STRING_TYPE],
        is_quantity,
    )?;
    let member = |env: &mut Env,
                  name: &str,
                  target: &cel::common::types::Type,
                  args: Vec<cel::common::types::Type>,
                  f: cel::common::functions::Function| {
        let id = format!(
            "{}.{name}({})",
            target.name(),
            args.iter()
                .map(|a| a.name().to_owned())
                .collect::<Vec<_>>()
                .join(",")
        );
        env.add_member_overload(name, &id, target.to_owned(), args, f)
    };
    member(env, "isInteger", &q, vec![], q_is_integer)?;
    member(env, "asInteger", &q, vec![], q_as_integer)?;
    member(
        env,
        "asApproximateFloat",
        &q,
        vec![],
        q_as_approximate_float,
    )?;
    member(env, "sign", &q, vec![], q_sign)?;
    member(env, "add", &q, vec![q.to_owned()], q_add)?;
    member(env, "add", &q, vec![INT_TYPE], q_add)?;
    member(env, "sub", &q, vec![q.to_owned()], q_sub)?;
    member(env, "sub", &q, vec![INT_TYPE], q_sub)?;
    member(
        env,
        "isGreaterThan",
        &q,
        vec![q.to_owned()],
        q_is_greater_than,
    )?;
    member(env, "isLessThan", &q, vec![q.to_owned()], q_is_less_than)?;
    member(env, "compareTo", &q, vec![q.to_owned()], q_compare_to)?;
    // ip / cidr
    env.add_overload("ip", "string_to_ip", vec![STRING_TYPE], ip)?;
    env.add_overload("isIP", "is_ip_string", vec![STRING_TYPE], is_ip)?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical_string",
        vec![STRING_TYPE],
        ip_is_canonical,
    )?;
    member(env, "family", &ip_t, vec![], ip_family)?;
    member(env, "isUnspecified", &ip_t, vec![], ip_is_unspecified)?;
    member(env, "isLoopback", &ip_t, vec![], ip_is_loopback)?;
    member(
        env,
        "isLinkLocalMulticast",
        &ip_t,
        vec![],
        ip_is_link_local_multicast,
    )?;
    member(
        env,
        "isLinkLocalUnicast",
        &ip_t,
        vec![],
        ip_is_link_local_unicast,
    )?;
    member(env, "isGlobalUnicast", &ip_t, vec![], ip_is_global_unicast)?;
    env.add_overload(
        "string",
        "ip_to_string",
        vec![ip_t.to_owned()],
        ip_to_string,
    )?;
    env.add_overload("cidr", "string_to_cidr", vec![STRING_TYPE], cidr)?;
    env.add_overload("isCIDR", "is_cidr_string", vec![STRING_TYPE], is_cidr)?;
    member(
        env,
        "containsIP",
        &cidr_t,
        vec![ip_t.to_owned()],
        cidr_contains_ip,
    )?;
    member(
        env,
        "containsIP",
        &cidr_t,
        vec![STRING_TYPE],
        cidr_contains_ip,
    )?;
    member(
        env,
        "containsCIDR",
        &cidr_t,
        vec![cidr_t.to_owned()],
        cidr_contains_cidr,
    )?;
    member(
        env,
        "containsCIDR",
        &cidr_t,
        vec![STRING_TYPE],
        cidr_contains_cidr,
    )?;
    member(env, "ip", &cidr_t, vec![], cidr_ip)?;
    member(env, "masked", &cidr_t, vec![], cidr_masked)?;
    member(env, "prefixLength", &cidr_t, vec![], cidr_prefix_length)?;
    env.add_overload(
        "string",
        "cidr_to_string",
        vec![cidr_t.to_owned()],
        cidr_to_string,
    )?;
    // url
    env.add_overload("url", "string_to_url", vec![STRING_TYPE], url)?;
    env.add_overload("isURL", "is_url_string", vec![STRING_TYPE], is_url)?;
    member(env, "getScheme", &url_t, vec![], url_scheme)?;
    member(env, "getHost", &url_t, vec![], url_host)?;
    member(env, "getHostname", &url_t, vec![], url_hostname)?;
    member(env, "getPort", &url_t, vec![], url_port)?;
    member(env, "getEscapedPath", &url_t, vec![], url_escaped_path)?;
    member(env, "getQuery", &url_t, vec![], url_query)?;
    // semver
    env.add_overload("semver", "string_to_semver", vec![STRING_TYPE], semver_fn)?;
    env.add_overload(
        "semver",
        "string_bool_to_semver",
        vec![STRING_TYPE, cel::common::types::BOOL_TYPE],
        semver_fn,
    )?;
    env.add_overload("isSemver", "is_semver_string", vec![STRING_TYPE], is_semver)?;
    env.add_overload(
        "isSemver",
        "is_semver_string_bool",
        vec![STRING_TYPE, cel::common::types::BOOL_TYPE],
        is_semver,
    )?;
    member(env, "major", &sv, vec![], semver_major)?;
    member(env, "minor", &sv, vec![], semver_minor)?;
    member(env, "patch", &sv, vec![], semver_patch)?;
    member(
        env,
        "isGreaterThan",
        &sv,
        vec![sv.to_owned()],
        semver_is_greater_than,
    )?;
    member(
        env,
        "isLessThan",
        &sv,
        vec![sv.to_owned()],
        semver_is_less_than,
    )?;
    member(
        env,
        "compareTo",
        &sv,
        vec![sv.to_owned()],
        semver_compare_to,
    )?;
    // regex
    member(env, "find", &STRING_TYPE, vec![STRING_TYPE], find)?;
    member(env, "findAll", &STRING_TYPE, vec![STRING_TYPE], find_all)?;
    member(
        env,
        "findAll",
        &STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all,
    )?;
    // lists
    member(env, "isSorted", &LIST_TYPE, vec![], is_sorted)?;
    member(env, "sum", &LIST_TYPE, vec![], sum)?;
    member(env, "min", &LIST_TYPE, vec![], min)?;
    member(env, "max", &LIST_TYPE, vec![], max)?;
    member(env, "indexOf", &LIST_TYPE, vec![DYN_TYPE], list_index_of)?;
    member(
        env,
        "lastIndexOf",
        &LIST_TYPE,
        vec![DYN_TYPE],
        list_last_index_of,
    )?;
    // sets
    env.add_overload(
        "sets.contains",
        "sets_contains_list_list",
        vec![LIST_TYPE, LIST_TYPE],
        sets_contains,
    )?;
    env.add_overload(
        "sets.equivalent",
        "sets_equivalent_list_list",
        vec![LIST_TYPE, LIST_TYPE],
        sets_equivalent,
    )?;
    env.add_overload(
        "sets.intersects",
        "sets_intersects_list_list",
        vec![LIST_TYPE, LIST_TYPE],
        sets_intersects,
    )?;
    Ok(())
}

/// The text of a Kubernetes library value.
pub fn display(value: &dyn Val) -> Option<String> {
    if let Some(q) = value.downcast_ref::<Quantity>() {
        return Some(q.0.to_string());
    }
    if let Some(ip) = value.downcast_ref::<Ip>() {
        return Some(ip.0.to_string());
    }
    if let Some(c) = value.downcast_ref::<Cidr>() {
        return Some(c.to_string());
    }
    if let Some(u) = value.downcast_ref::<Url>() {
        return Some(u.text.clone());
    }
    if let Some(s) = value.downcast_ref::<Semver>() {
        return Some(s.0.to_string());
    }
    None
}
