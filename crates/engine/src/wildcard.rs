//! Kyverno's `*` / `?` wildcards, matched in linear time (no backtracking blow-up on hostile
//! patterns such as `*a*a*a*a*b`).

/// Whether `text` matches `pattern`, where `*` matches any run of characters (also empty) and
/// `?` exactly one character. Everything else is literal.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return pattern == text;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Greedy two-pointer scan remembering the last star: O(len(p) * len(t)) worst case, no
    // recursion.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

/// Whether a string contains wildcard characters.
pub fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
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
    }

    #[test]
    fn pathological_pattern_is_fast_and_correct() {
        let pattern = "*a".repeat(200) + "b";
        let text = "a".repeat(5000);
        assert!(!wildcard_match(&pattern, &text));
        assert!(wildcard_match(&pattern, &(text + "b")));
    }
}
