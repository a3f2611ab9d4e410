//! `*` globbing as Vault's `strutil.GlobbedStringsMatch` does it: a `*` at the start
//! and/or end of a pattern matches any run of characters; elsewhere it is literal.

/// Whether `value` matches `pattern`.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) if pattern.len() >= 2 => value.contains(&pattern[1..pattern.len() - 1]),
        (Some(suffix), None) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        _ => pattern == value,
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_at_either_end() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("svc-*", "svc-a"));
        assert!(glob_match("*end", "the-end"));
        assert!(!glob_match("*end", "ending"));
        assert!(glob_match("*mid*", "a-mid-b"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("a*b", "axb"), "a * in the middle is literal");
        assert!(glob_match("a*b", "a*b"));
        assert!(glob_match("**", "x"));
    }
}
