//! Anchors written in pattern keys: `(key)`, `=(key)`, `^(key)`, `X(key)`, `<(key)`, `+(key)`.

/// The kind of anchor wrapped around a pattern key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorKind {
    /// `(key)`: if the value matches, siblings are checked; otherwise the element is skipped.
    Conditional,
    /// `=(key)`: if the key is present, its value must match.
    Equality,
    /// `^(key)`: on lists, at least one element must match.
    Existence,
    /// `X(key)`: the key must be absent.
    Negation,
    /// `<(key)`: if the value does not match, the whole rule is skipped.
    Global,
    /// `+(key)`: add-if-not-present, a mutate-only anchor.
    AddIfNotPresent,
}

/// A parsed anchor: its kind and the bare key inside the parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor<'a> {
    pub kind: AnchorKind,
    pub key: &'a str,
}

/// Parses an anchored key; `None` for a plain key. The key inside must not be empty.
pub fn parse_anchor(raw: &str) -> Option<Anchor<'_>> {
    let inner = raw.strip_suffix(')')?;
    let (kind, rest) = match inner.as_bytes().first()? {
        b'(' => (AnchorKind::Conditional, inner.get(1..)?),
        b'=' => (AnchorKind::Equality, inner.get(1..)?.strip_prefix('(')?),
        b'^' => (AnchorKind::Existence, inner.get(1..)?.strip_prefix('(')?),
        b'X' => (AnchorKind::Negation, inner.get(1..)?.strip_prefix('(')?),
        b'<' => (AnchorKind::Global, inner.get(1..)?.strip_prefix('(')?),
        b'+' => (
            AnchorKind::AddIfNotPresent,
            inner.get(1..)?.strip_prefix('(')?,
        ),
        _ => return None,
    };
    if rest.is_empty() {
        return None;
    }
    Some(Anchor { kind, key: rest })
}

/// The key with any anchor removed.
pub fn strip_anchor(raw: &str) -> &str {
    parse_anchor(raw).map_or(raw, |a| a.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_anchor_kind() {
        let cases = [
            ("(image)", Some((AnchorKind::Conditional, "image"))),
            ("=(hostPath)", Some((AnchorKind::Equality, "hostPath"))),
            ("^(containers)", Some((AnchorKind::Existence, "containers"))),
            (
                "X(hostNetwork)",
                Some((AnchorKind::Negation, "hostNetwork")),
            ),
            ("<(image)", Some((AnchorKind::Global, "image"))),
            ("+(label)", Some((AnchorKind::AddIfNotPresent, "label"))),
            ("(a(b)c)", Some((AnchorKind::Conditional, "a(b)c"))),
            ("image", None),
            ("()", None),
            ("=()", None),
            ("x(key)", None),
            ("=key)", None),
            ("(key", None),
            ("", None),
        ];
        for (raw, want) in cases {
            let got = parse_anchor(raw).map(|a| (a.kind, a.key));
            assert_eq!(got, want, "{raw}");
        }
        assert_eq!(strip_anchor("^(containers)"), "containers");
        assert_eq!(strip_anchor("plain"), "plain");
    }
}
