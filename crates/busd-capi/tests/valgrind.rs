//! The C programs under valgrind: no invalid access, no definite leak.
//!
//! Slow (a debug build of the library runs tens of times slower there), so
//! it runs only with `BUSD_CAPI_VALGRIND=1`:
//!
//! ```sh
//! BUSD_CAPI_VALGRIND=1 cargo test -p busd-capi --test valgrind -- --nocapture
//! ```
//!
//! Leaks count only when definite: the runtime's and the standard library's
//! process-wide state (thread-locals of threads valgrind sees exit last, a
//! few statics) is still reachable at exit, by design.

mod common;

use busd_e2e::{TestDaemon, Transport};

use common::{assert_printed, compile_c, crate_dir, repo_root, run};

/// Whether this run asked for valgrind.
fn wanted() -> bool {
    if std::env::var("BUSD_CAPI_VALGRIND").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipped: set BUSD_CAPI_VALGRIND=1 to run the C programs under valgrind");
    false
}

/// The valgrind command line for `program` and its `args`.
fn under_valgrind<'a>(program: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut command = vec![
        "--error-exitcode=1",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        program,
    ];
    command.extend_from_slice(args);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_programs_are_clean_under_valgrind() {
    if !wanted() {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let example = compile_c(&repo_root().join("examples/c/example.c"), build.path());
    let errors = compile_c(&crate_dir().join("tests/c/errors.c"), build.path());
    let daemon = TestDaemon::start().await;
    let valgrind = std::path::Path::new("valgrind");
    for transport in [Transport::Unix, Transport::Shm] {
        let url = daemon.url(transport);
        let output = run(
            valgrind,
            &under_valgrind(example.to_str().unwrap(), &[&url]),
            &[],
        )
        .await;
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        assert_printed(
            &output,
            &["connected", "response: \"ROUND TRIP\" success", "done"],
        );
    }
    let url = daemon.url(Transport::Unix);
    let output = run(
        valgrind,
        &under_valgrind(errors.to_str().unwrap(), &[&url]),
        &[],
    )
    .await;
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert_printed(&output, &["0 failed"]);
}
