//! Running iproute2's `ip`.

use std::process::Command;

/// Runs `ip ARGS`, `args` split at whitespace (a lab's names have none);
/// its stdout, or what went wrong.
pub(super) fn try_ip(args: &str) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {args}`: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `ip ARGS` for a setup step.
///
/// # Panics
/// If it fails, with its stderr.
pub(super) fn ip(args: &str) {
    ip_output(args);
}

/// Runs `ip ARGS`; its stdout.
///
/// # Panics
/// If it fails, with its stderr.
pub(super) fn ip_output(args: &str) -> String {
    try_ip(args).unwrap_or_else(|e| panic!("netlab: {e}"))
}

/// Runs `ip ARGS` for a teardown step: its stdout, `None` if it failed.
pub(super) fn ip_quiet(args: &str) -> Option<String> {
    try_ip(args).ok()
}
