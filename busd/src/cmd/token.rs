//! `busd token new FILE`: a package's token, made as it should be: 32
//! random bytes from the kernel, written as 64 hex digits (text, so that
//! no byte of it is white space a reader would trim) to a file only its
//! owner may read, never over an existing one.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Random bytes in a token: as many as the HMAC-SHA256 key it is.
const TOKEN_BYTES: usize = 32;

/// Options of `busd token`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a new token to FILE (mode 0600; an existing file is never overwritten).
    New {
        /// Where to write it, e.g. the `token_file` of a `[[package]]` table.
        file: PathBuf,
    },
}

/// Runs `busd token`: exit code 0, or 2 when the file exists or cannot
/// be written.
pub(crate) fn run(args: &Args) -> ExitCode {
    let Command::New { file } = &args.command;
    match write_new(file) {
        Ok(()) => {
            eprintln!(
                "busd token: wrote a new token to {} (mode 0600); name it in the package's token_file",
                file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            eprintln!(
                "busd token: {} exists; a token is never overwritten (remove it first if it is to be replaced)",
                file.display()
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("busd token: cannot write {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

/// Creates `path` (mode 0600, failing if it exists) holding a new token.
fn write_new(path: &Path) -> io::Result<()> {
    let mut secret = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut secret).map_err(|e| io::Error::other(e.to_string()))?;
    let mut text = String::with_capacity(2 * TOKEN_BYTES + 1);
    for byte in secret {
        let _ = write!(text, "{byte:02x}"); // a String takes every write
    }
    text.push('\n');
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_new_token_is_64_hex_digits_for_its_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weather.key");
        write_new(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let hex = text.strip_suffix('\n').unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = write_new(&path).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "untouched");
        let other = dir.path().join("maps.key");
        write_new(&other).unwrap();
        assert_ne!(std::fs::read_to_string(&other).unwrap(), text);
    }
}
