//! Why a configuration was refused: the daemon exits with code 2 at start,
//! and keeps its old rules on a reload.

use std::fmt;

use busd_policy::{Diagnostic, PolicyError};

/// Why a configuration was refused, with the file, the line where known,
/// and the reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read, is not TOML, has an unknown key, or a
    /// `[daemon]`/`[limits]` value (or its environment override) is wrong.
    Invalid {
        /// The file, as named to the loader.
        file: String,
        /// The 1-based line, where known.
        line: Option<usize>,
        /// The 1-based column, where known.
        column: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// The access rules (`[[package]]`) are invalid: every error found.
    Policy(#[from] PolicyError),
    /// A `[[bridge]]` is invalid: every error found, each with its line.
    Bridges(Vec<Diagnostic>),
}

impl ConfigError {
    pub(super) fn invalid(file: &str, line: Option<usize>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.to_owned(),
            line,
            column: None,
            reason: reason.into(),
        }
    }

    /// The errors, each with file, line and reason (for `busd check-config`).
    pub fn errors(&self) -> Vec<Diagnostic> {
        match self {
            Self::Invalid {
                file, line, reason, ..
            } => vec![Diagnostic {
                file: file.clone(),
                line: *line,
                message: reason.clone(),
            }],
            Self::Policy(e) => e.errors.clone(),
            Self::Bridges(errors) => errors.clone(),
        }
    }

    /// Warnings found before the configuration was refused.
    pub fn warnings(&self) -> &[Diagnostic] {
        match self {
            Self::Invalid { .. } | Self::Bridges(_) => &[],
            Self::Policy(e) => &e.warnings,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid {
                file,
                line,
                column,
                reason,
            } => match (line, column) {
                (Some(l), Some(c)) => write!(f, "{file}: line {l}, column {c}: {reason}"),
                (Some(l), None) => write!(f, "{file}: line {l}: {reason}"),
                _ => write!(f, "{file}: {reason}"),
            },
            Self::Policy(e) => write!(f, "{e}"),
            Self::Bridges(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}
