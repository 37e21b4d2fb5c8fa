//! A tiny glob matcher: `*` matches any run of characters (also none), `?` exactly one.

/// Whether `text` matches `pattern` as a whole. `*` and `?` are the only special
/// characters; everything else matches itself (case-sensitive).
pub(crate) fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position of the last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` swallow one more character and retry.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn star_and_question_mark() {
        assert!(matches("v*", "v1.0"));
        assert!(matches("v*", "v"));
        assert!(!matches("v*", "before-v1"));
        assert!(matches("before-*", "before-migration"));
        assert!(!matches("before-*", "before"));
        assert!(matches("v?.?", "v1.0"));
        assert!(!matches("v?.?", "v10.0"));
        assert!(matches("*-*-*", "a-b-c"));
        assert!(matches("a*b*c", "aXXbYYbc"));
        assert!(!matches("a*b*c", "aXXbYYbd"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        assert!(matches("*", ""));
        assert!(matches("ü?", "üß"));
    }
}
