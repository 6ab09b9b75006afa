//! Kyverno's `*` / `?` wildcards, the one implementation the engine uses (match/exclude,
//! patterns, conditions, JMESPath `pattern_match`, podSecurity exclusions): `*` matches any run of characters (also none), `?` exactly one
//! character, everything else itself. No escapes, no classes.

/// Whether `text` matches the wildcard `pattern`.
///
/// Runs in `O(len(pattern) * len(text))` at worst: only the most recent `*` is ever widened, so
/// patterns such as `*a*a*a*b` cannot cause exponential backtracking.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if !has_wildcard(pattern) {
        return pattern == text;
    }
    let pat = pattern.as_bytes();
    // Byte offsets into `pattern` and `text`; text is walked char by char so `?` eats one
    // character, not one byte.
    let (mut pi, mut ti) = (0usize, 0usize);
    // After a `*`: the pattern offset just past it and the text offset it has covered up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < text.len() {
        let Some(tc) = text.get(ti..).and_then(|rest| rest.chars().next()) else {
            return false;
        };
        match pat.get(pi) {
            Some(b'*') => {
                pi += 1;
                if pi == pat.len() {
                    return true;
                }
                star = Some((pi, ti));
                continue;
            }
            Some(b'?') => {
                pi += 1;
                ti += tc.len_utf8();
                continue;
            }
            Some(_) => {
                let pc = pattern.get(pi..).and_then(|rest| rest.chars().next());
                if pc == Some(tc) {
                    pi += tc.len_utf8();
                    ti += tc.len_utf8();
                    continue;
                }
            }
            None => {}
        }
        // Mismatch: let the last `*` swallow one more character and retry after it.
        let Some((star_pi, star_ti)) = star else {
            return false;
        };
        let width = text
            .get(star_ti..)
            .and_then(|rest| rest.chars().next())
            .map_or(1, char::len_utf8);
        star = Some((star_pi, star_ti + width));
        pi = star_pi;
        ti = star_ti + width;
    }
    pat.get(pi..)
        .is_some_and(|rest| rest.iter().all(|b| *b == b'*'))
}

/// Whether a string contains a wildcard character (`*` or `?`).
pub fn has_wildcard(text: &str) -> bool {
    // Both are ASCII, so a byte scan finds them (a `char` pattern decodes UTF-8 first).
    text.bytes().any(|b| b == b'*' || b == b'?')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expectations follow Kyverno's documented wildcard semantics and its wildcard test table.
    #[test]
    fn kyverno_wildcard_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "s3:GetObject", true),
            ("", "s3:GetObject", false),
            ("", "", true),
            ("s3:*", "s3:ListMultipartUploadParts", true),
            ("s3:ListBucketMultipartUploads", "s3:ListBucket", false),
            ("my-bucket/oo*", "my-bucket/oo", true),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Ban/Ban/Ban/Ban/Ban",
                true,
            ),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Bangalore",
                false,
            ),
            ("my-bucket/oo*", "my-bucket/odo", false),
            ("my-bucket?/abc*", "mybucket/abc", false),
            ("my-bucket?/abc*", "my-bucket1/abc", true),
            ("my-?-bucket/abc*", "my--bucket/abc", false),
            ("my??bucket/abc*", "my4abucket/abc", true),
            ("my-bucket/abc?efg", "my-bucket/abc/efg", true),
            ("my-bucket/abc????", "my-bucket/abc", false),
            ("my-bucket/abc?", "my-bucket/abc", false),
            ("my-bucket/abc?", "my-bucket/abcde", false),
            ("my-bucket/mnop*?", "my-bucket/mnop", false),
            ("my-bucket/mnop*?", "my-bucket/mnopq", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopand", false),
            ("my-bucket/mnop*?and?", "my-bucket/mnopqanda", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopqanda", false),
            ("?*", "", false),
            ("?*", "x", true),
            ("a.b", "axb", false),
            ("h?llo", "hällo", true),
            ("*ä", "bä", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                wildcard_match(pattern, text),
                *want,
                "{pattern:?} vs {text:?}"
            );
        }
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn star_and_question_mark() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("?*", "a"));
        assert!(!wildcard_match("?*", ""));
        assert!(wildcard_match("nginx:*", "nginx:1.25"));
        assert!(!wildcard_match("nginx:*", "redis:7"));
        assert!(wildcard_match("*:latest", "repo/app:latest"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "abbc"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
        assert!(wildcard_match("*.io/*", "example.io/name"));
        assert!(wildcard_match("", ""));
        assert!(!wildcard_match("", "x"));
        assert!(wildcard_match("kyverno:*", "kyverno:admin"));
        assert!(wildcard_match("*.svc", "bylaw.bylaw.svc"));
    }

    #[test]
    fn pathological_pattern_is_decided_correctly() {
        let pattern = "*a".repeat(200) + "b";
        let text = "a".repeat(5000);
        assert!(!wildcard_match(&pattern, &text));
        assert!(wildcard_match(&pattern, &(text + "b")));
    }
}
