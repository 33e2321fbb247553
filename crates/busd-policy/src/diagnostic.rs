//! Where a configuration came from, and what is wrong with it, by line.
//!
//! Every error and warning names the file, the line and the reason, so a
//! user can fix a refused configuration without guessing; `busd
//! check-config` prints them as `FILE:LINE: error: reason`.

use std::fmt;
use std::path::{Path, PathBuf};

/// The text of a configuration file and where it lives.
#[derive(Debug, Clone)]
pub struct SourceFile<'a> {
    name: String,
    text: &'a str,
    base_dir: PathBuf,
}

impl<'a> SourceFile<'a> {
    /// A file named `name` (for messages) with contents `text`; relative
    /// paths in it (`token_file`) are taken from `base_dir`, normally the
    /// file's directory.
    pub fn new(name: impl Into<String>, text: &'a str, base_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            text,
            base_dir: base_dir.into(),
        }
    }

    /// The name used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// `path` if absolute, else `path` under [`SourceFile::base_dir`].
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The 1-based line of a byte offset into the text.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// A diagnostic at byte `offset` of this file.
    pub fn at(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.name.clone(),
            line: Some(self.line_of(offset)),
            message: message.into(),
        }
    }
}

/// One error or warning about a configuration file.
///
/// Shown as `FILE:LINE: reason`, or `FILE: reason` when no line applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as named to the loader.
    pub file: String,
    /// The 1-based line, where known.
    pub line: Option<usize>,
    /// The reason, in words.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why a policy was refused: every error found, and the warnings found on
/// the way (which alone would not have refused it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct PolicyError {
    /// The errors, in file order; never empty.
    pub errors: Vec<Diagnostic>,
    /// The warnings, in file order.
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_clamped() {
        let file = SourceFile::new("f.toml", "a = 1\nb = 2\n", "/etc/busd");
        assert_eq!(file.line_of(0), 1);
        assert_eq!(file.line_of(6), 2);
        assert_eq!(file.line_of(1000), 3);
        assert_eq!(file.at(7, "bad").to_string(), "f.toml:2: bad");
        assert_eq!(file.resolve(Path::new("k")), Path::new("/etc/busd/k"));
        assert_eq!(file.resolve(Path::new("/k")), Path::new("/k"));
    }

    #[test]
    fn a_policy_error_shows_each_error_on_its_line() {
        let d = |line, message: &str| Diagnostic {
            file: "f".into(),
            line,
            message: message.into(),
        };
        let e = PolicyError {
            errors: vec![d(Some(3), "one"), d(None, "two")],
            warnings: vec![d(Some(1), "w")],
        };
        assert_eq!(e.to_string(), "f:3: one\nf: two");
    }
}
