//! `Subject::parse` and the wildcard rule of `Subject::matches`.
//!
//! Input: UTF-8 text, one candidate subject per line (the first 16).
//!
//! Checks: no panic; `parse` accepts exactly what the rule written out
//! below accepts (non-empty, at most 1024 bytes, no empty token, no white
//! space or control character, `*` only as a whole token, `>` only as the
//! whole last token), says `Empty` and `TooLong` exactly when they apply,
//! and finds wildcards exactly where they are; a subject keeps its text,
//! parses again to itself and survives MessagePack; and for every pattern
//! and literal among the lines, `matches` agrees with a count-the-tokens
//! statement of the rule. (The router's trie is the `router` check's.)

use busd_proto::{Subject, SubjectError};

/// Whether `text` is a subject, and if so whether it holds wildcards.
fn rule(text: &str) -> Option<bool> {
    if text.is_empty() || text.len() > 1024 {
        return None;
    }
    let tokens: Vec<&str> = text.split('.').collect();
    let mut wildcards = false;
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        match *token {
            "*" => wildcards = true,
            ">" if i + 1 == tokens.len() => wildcards = true,
            t if t.contains(['*', '>']) => return None,
            _ => {}
        }
    }
    Some(wildcards)
}

/// Whether `pattern` matches the literal `subject`: token by token, `*`
/// for any one; a last `>` for one or more.
fn matches(pattern: &str, subject: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    let (fixed, rest) = match p.split_last() {
        Some((&">", fixed)) => (fixed, true),
        _ => (&p[..], false),
    };
    let long_enough = if rest {
        s.len() > fixed.len()
    } else {
        s.len() == fixed.len()
    };
    long_enough && fixed.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

/// Checks one input (see the module's documentation).
///
/// # Panics
/// On any broken invariant.
pub fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_lines(text.split('\n').take(16));
    }
}

/// Parses each of `lines` as a subject, then matches each pattern among
/// them against each literal.
///
/// # Panics
/// On any broken invariant.
pub fn check_lines<'a>(lines: impl IntoIterator<Item = &'a str>) {
    let mut subjects = Vec::new();
    for line in lines {
        let parsed = Subject::parse(line);
        assert_eq!(
            parsed.as_ref().ok().map(Subject::has_wildcards),
            rule(line),
            "{line:?}: {parsed:?}"
        );
        match parsed {
            Ok(subject) => {
                assert_eq!(subject.as_str(), line);
                assert_eq!(subject.to_string(), line);
                assert!(subject.tokens().eq(line.split('.')));
                assert_eq!(Subject::parse(subject.as_str()).as_ref(), Ok(&subject));
                let packed = rmp_serde::to_vec(&subject).unwrap();
                assert_eq!(rmp_serde::from_slice::<Subject>(&packed).unwrap(), subject);
                subjects.push(subject);
            }
            Err(SubjectError::Empty) => assert!(line.is_empty()),
            Err(SubjectError::TooLong) => assert!(line.len() > 1024),
            Err(e) => assert!(!line.is_empty() && line.len() <= 1024, "{e}"),
        }
    }
    for pattern in &subjects {
        for literal in subjects.iter().filter(|s| !s.has_wildcards()) {
            assert_eq!(
                pattern.matches(literal),
                matches(pattern.as_str(), literal.as_str()),
                "{pattern} against {literal}"
            );
        }
    }
}
