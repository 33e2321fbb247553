//! Building the C and C++ programs against the library cargo built, and
//! running them against a daemon.
//!
//! The library is found beside this test binary: cargo puts it at
//! `target/<profile>/deps/<test>-<hash>`, and builds the package's own
//! library (`libbusd_capi.a`, `libbusd_capi.so`) into `target/<profile>`
//! (and `deps/`) before any of its integration tests. Compilers are `$CC`
//! and `$CXX`, else the system's `cc` and `c++`.

// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// How long a program may run (a debug build under valgrind takes seconds).
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(300);

/// What Rust's standard library needs from the system when linked
/// statically (`--print native-static-libs` on linux-gnu).
const STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// `crates/busd-capi`.
pub(crate) fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's root, where `examples/` lives.
pub(crate) fn repo_root() -> PathBuf {
    crate_dir().join("../..")
}

/// `target/<profile>`: two levels above this test binary.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps")
        .to_owned()
}

/// The library file `name` (`libbusd_capi.a`, `libbusd_capi.so`) cargo built.
pub(crate) fn library(name: &str) -> PathBuf {
    let dir = profile_dir();
    [dir.join(name), dir.join("deps").join(name)]
        .into_iter()
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("{name} not found in {} (nor deps/)", dir.display()))
}

fn compiler(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Runs a compiler command; panics with its output if it fails.
fn build(mut command: Command, what: &Path) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        what.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Compiles the C program `source` into `out_dir`, linked with the static
/// library (a self-contained program, as valgrind sees best); warnings are
/// errors, so the header must compile cleanly.
pub(crate) fn compile_c(source: &Path, out_dir: &Path) -> PathBuf {
    let program = out_dir.join(source.file_stem().expect("a file name"));
    let mut command = Command::new(compiler("CC", "cc"));
    command
        .args([
            "-std=c11", "-g", "-Wall", "-Wextra", "-Werror", "-pthread", "-I",
        ])
        .arg(crate_dir().join("include"))
        .arg(source)
        .arg(library("libbusd_capi.a"))
        .args(STATIC_LIBS)
        .arg("-o")
        .arg(&program);
    build(command, source);
    program
}

/// Compiles the C++ program `source` (beside `busd.hpp`) into `out_dir`,
/// linked with the shared library, found at run time through an rpath.
pub(crate) fn compile_cpp(source: &Path, out_dir: &Path) -> PathBuf {
    let program = out_dir.join(source.file_stem().expect("a file name"));
    let lib_dir = library("libbusd_capi.so")
        .parent()
        .expect("a directory")
        .to_owned();
    let mut command = Command::new(compiler("CXX", "c++"));
    command
        .args([
            "-std=c++17",
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
            "-I",
        ])
        .arg(crate_dir().join("include"))
        .arg("-I")
        .arg(source.parent().expect("a directory"))
        .arg(source)
        .arg("-L")
        .arg(&lib_dir)
        .arg("-lbusd_capi")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-o")
        .arg(&program);
    build(command, source);
    program
}

/// Runs `program` with `args` and `env`, where no `BUSD_URL` or `BUSD_FD`
/// of the test's own environment leaks in; killed after [`RUN_LIMIT`].
pub(crate) async fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_remove("BUSD_URL")
        .env_remove("BUSD_FD")
        .envs(env.iter().copied())
        .kill_on_drop(true);
    tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{} ran over {RUN_LIMIT:?}", program.display()))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// Asserts that the program succeeded and that its stdout holds `lines`,
/// in that order (each a whole line).
pub(crate) fn assert_printed(output: &Output, lines: &[&str]) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let mut rest = stdout.lines();
    for line in lines {
        assert!(
            rest.any(|l| l == *line),
            "missing (or out of order): {line:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}
