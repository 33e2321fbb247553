//! `--attach FILE` for `busd pub` and `busd req`, and how `busd sub` shows
//! the files a message carries.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

/// Files to attach, opened read-only: the receiver can read them, never
/// write them, and needs no access to their paths.
#[derive(Debug, clap::Args)]
pub(crate) struct AttachArgs {
    /// Attach FILE, opened read-only, as an open fd (unix:// and shm://
    /// only; repeat for several). The receiver reads it without access to
    /// its path.
    #[arg(long = "attach", value_name = "FILE")]
    files: Vec<PathBuf>,
}

impl AttachArgs {
    /// The files, freshly opened (one set per message).
    pub(crate) fn open(&self) -> Result<Vec<OwnedFd>, ExitCode> {
        self.files
            .iter()
            .map(|path| {
                std::fs::File::open(path).map(OwnedFd::from).map_err(|e| {
                    eprintln!("busd: cannot open {} to attach it: {e}", path.display());
                    ExitCode::FAILURE
                })
            })
            .collect()
    }
}

/// `[2 fds: /path/a, /path/b]` for the fds a message carried (what each
/// names, as this process sees it), closing them; empty for none.
pub(crate) fn describe(fds: Vec<OwnedFd>) -> String {
    if fds.is_empty() {
        return String::new();
    }
    let names: Vec<String> = fds
        .iter()
        .map(|fd| {
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_or_else(|_| "?".to_owned(), |p| p.display().to_string())
        })
        .collect();
    let plural = if fds.len() == 1 { "" } else { "s" };
    format!("[{} fd{plural}: {}]", fds.len(), names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fds_are_described_by_what_they_name() {
        assert_eq!(describe(Vec::new()), "");
        let null = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        assert_eq!(describe(vec![null()]), "[1 fd: /dev/null]");
        assert_eq!(
            describe(vec![null(), null()]),
            "[2 fds: /dev/null, /dev/null]"
        );
    }
}
