//! Validated subjects: dot-separated tokens, with `*` and `>` wildcards.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest subject accepted, in bytes.
pub(crate) const MAX_SUBJECT_LEN: usize = 1024;

/// A subject such as `weather.today.paris`, checked when it is made.
///
/// Tokens are separated by `.` and may not be empty or hold white space or
/// control characters. In a subscription, `*` stands for exactly one token
/// and `>` (last token only) for one or more trailing tokens. Messages are
/// published to literal subjects only ([`Subject::has_wildcards`] is false).
///
/// ```
/// use busd_proto::Subject;
/// let s = Subject::parse("weather.*.paris")?;
/// assert!(s.has_wildcards());
/// assert!(Subject::parse("weather..paris").is_err());
/// # Ok::<(), busd_proto::SubjectError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    /// Shared: a subject is cloned into every subscription, queue and
    /// decoded message that names it, and a clone should cost no copy.
    text: Arc<str>,
    wildcards: bool,
}

/// Why a string is not a valid subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// The subject is empty.
    #[error("subject is empty")]
    Empty,
    /// The subject is longer than 1024 bytes.
    #[error("subject is longer than {MAX_SUBJECT_LEN} bytes")]
    TooLong,
    /// Two dots in a row, or a leading or trailing dot.
    #[error("subject {0:?} has an empty token")]
    EmptyToken(String),
    /// White space or a control character.
    #[error("subject {0:?} contains white space or a control character")]
    BadChar(String),
    /// `*` or `>` inside a token, or `>` before the last token.
    #[error(
        "subject {0:?} misplaces a wildcard: `*` must be a whole token, `>` the whole last token"
    )]
    BadWildcard(String),
}

impl Subject {
    /// Checks `text` and makes a subject of it.
    ///
    /// # Errors
    /// A [`SubjectError`] saying which rule the text breaks.
    pub fn parse(text: impl Into<String>) -> Result<Self, SubjectError> {
        let text = text.into();
        let wildcards = validate(&text)?;
        Ok(Self {
            text: text.into(),
            wildcards,
        })
    }

    /// Makes a subject of a literal known at compile time.
    ///
    /// # Panics
    /// If `text` is not a valid subject: a programming error.
    pub fn from_static(text: &'static str) -> Self {
        match Self::parse(text) {
            Ok(s) => s,
            Err(e) => panic!("invalid static subject: {e}"),
        }
    }

    /// The subject as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the subject holds `*` or `>`; such a subject can be
    /// subscribed to but not published to.
    pub fn has_wildcards(&self) -> bool {
        self.wildcards
    }

    /// The dot-separated tokens.
    pub fn tokens(&self) -> std::str::Split<'_, char> {
        self.text.split('.')
    }

    /// Whether this subscription pattern matches the literal subject `literal`.
    ///
    /// The router uses a trie; this is the plain reference rule, used by
    /// tests and by clients that filter locally.
    pub fn matches(&self, literal: &Subject) -> bool {
        let mut pattern = self.tokens();
        let mut subject = literal.tokens();
        loop {
            match (pattern.next(), subject.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(p), Some(s)) if p == s => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

/// Returns whether `text` holds wildcards, or why it is not a subject.
fn validate(text: &str) -> Result<bool, SubjectError> {
    if text.is_empty() {
        return Err(SubjectError::Empty);
    }
    if text.len() > MAX_SUBJECT_LEN {
        return Err(SubjectError::TooLong);
    }
    // Every frame's subject passes here, so one pass over the bytes; only
    // non-ASCII text pays for the Unicode white-space check.
    if !text.is_ascii() && text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SubjectError::BadChar(text.to_owned()));
    }
    let bytes = text.as_bytes();
    let mut wildcards = false;
    let mut end = 0; // where the current token ends
    for token in bytes.split(|&b| b == b'.') {
        end += token.len() + 1;
        let last = end > bytes.len();
        match token {
            [] => return Err(SubjectError::EmptyToken(text.to_owned())),
            b"*" => wildcards = true,
            b">" if last => wildcards = true,
            _ => {
                for &b in token {
                    if b.is_ascii_whitespace() || b.is_ascii_control() {
                        return Err(SubjectError::BadChar(text.to_owned()));
                    }
                    if b == b'*' || b == b'>' {
                        return Err(SubjectError::BadWildcard(text.to_owned()));
                    }
                }
            }
        }
    }
    Ok(wildcards)
}

impl FromStr for Subject {
    type Err = SubjectError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Subject {
    type Error = SubjectError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for Subject {
    type Error = SubjectError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl AsRef<str> for Subject {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subject({:?})", self.text)
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_literals_and_wildcards() {
        assert!(!Subject::parse("a.b.c").unwrap().has_wildcards());
        assert!(Subject::parse("a.*.c").unwrap().has_wildcards());
        assert!(Subject::parse("a.>").unwrap().has_wildcards());
        assert!(Subject::parse(">").unwrap().has_wildcards());
    }

    #[test]
    fn rejects_malformed_subjects() {
        for bad in [
            "", ".", "a.", ".a", "a..b", "a b", "a.>.c", "a.b*", "a.>b", "a\tb",
        ] {
            assert!(Subject::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Subject::parse("x".repeat(MAX_SUBJECT_LEN + 1)),
            Err(SubjectError::TooLong)
        );
    }

    #[test]
    fn reference_matching() {
        let m =
            |p: &str, s: &str| Subject::from_static_str(p).matches(&Subject::from_static_str(s));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "a.b.c"));
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a.b.c"));
        assert!(m("a.>", "a.b.c"));
        assert!(!m("a.>", "a"));
        assert!(m("*.b.>", "x.b.y.z"));
    }

    /// The plain token-by-token rule the fast byte scan must agree with.
    fn reference(text: &str) -> Option<bool> {
        if text.is_empty() || text.len() > MAX_SUBJECT_LEN {
            return None;
        }
        let tokens: Vec<&str> = text.split('.').collect();
        let mut wildcards = false;
        for (i, t) in tokens.iter().enumerate() {
            let bad = t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control());
            match *t {
                _ if bad => return None,
                "*" => wildcards = true,
                ">" if i + 1 == tokens.len() => wildcards = true,
                t if t.contains(['*', '>']) => return None,
                _ => {}
            }
        }
        Some(wildcards)
    }

    proptest::proptest! {
        #[test]
        fn byte_scan_agrees_with_the_reference_rule(
            chars in proptest::collection::vec(
                proptest::sample::select(vec!['a', 'b', '.', '*', '>', ' ', '\t', 'é', '\u{a0}', '\u{85}']),
                0..12,
            )
        ) {
            let text: String = chars.into_iter().collect();
            proptest::prop_assert_eq!(validate(&text).ok(), reference(&text), "{:?}", text);
        }
    }

    impl Subject {
        fn from_static_str(s: &str) -> Self {
            Self::parse(s).unwrap()
        }
    }
}
