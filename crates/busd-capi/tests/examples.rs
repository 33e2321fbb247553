//! The C and C++ examples (`examples/c`, `examples/cpp`) and the error
//! checks of `tests/c/errors.c`, compiled with the system compilers against
//! the library cargo built and run against a real daemon (in this process,
//! on a temp socket and port 0).

mod common;

use busd_e2e::{Package, TestDaemon, Transport};

use common::{assert_printed, compile_c, compile_cpp, repo_root, run};

const PFN: &str = "Contoso.Weather_8wekyb3d8bbwe";

/// What the C example prints when every step works, the greeting's sender
/// aside.
fn c_example_lines(sender: &str) -> Vec<String> {
    [
        format!("busd {}", env!("CARGO_PKG_VERSION")),
        "connected".to_owned(),
        format!("callback: demo.greetings.c \"hello from C\" lang=c from {sender}"),
        "next: demo.pull \"pulled\"".to_owned(),
        "next again: TIMEOUT: timed out".to_owned(),
        "response: \"ROUND TRIP\" success".to_owned(),
        "nobody: NO_RESPONDERS: nobody serves the service".to_owned(),
        "done".to_owned(),
    ]
    .into()
}

fn as_strs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_runs_over_every_transport() {
    let build = tempfile::tempdir().unwrap();
    let example = compile_c(&repo_root().join("examples/c/example.c"), build.path());
    let daemon = TestDaemon::start().await;
    let expected = c_example_lines("an unpackaged client");
    for transport in Transport::ALL {
        let url = daemon.url(transport);
        let output = run(&example, &[&url], &[]).await;
        assert_printed(&output, &as_strs(&expected));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_finds_the_daemon_through_busd_url() {
    let build = tempfile::tempdir().unwrap();
    let example = compile_c(&repo_root().join("examples/c/example.c"), build.path());
    let daemon = TestDaemon::start().await;
    let url = daemon.url(Transport::Unix);
    let output = run(&example, &[], &[("BUSD_URL", &url)]).await;
    assert_printed(&output, &as_strs(&c_example_lines("an unpackaged client")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_connects_as_a_package_proven_by_its_token() {
    let build = tempfile::tempdir().unwrap();
    let example = compile_c(&repo_root().join("examples/c/example.c"), build.path());
    let package = Package::new(PFN);
    let daemon = TestDaemon::start_with_packages("same-uid", std::slice::from_ref(&package)).await;
    let token = daemon.token_path(&package.token_rel());
    let url = daemon.url(Transport::Tcp);
    let output = run(&example, &[&url, PFN, token.to_str().unwrap()], &[]).await;
    // The daemon proved the package, and receivers see it as the sender.
    assert_printed(&output, &as_strs(&c_example_lines(PFN)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_fails_with_auth_failed() {
    let build = tempfile::tempdir().unwrap();
    let example = compile_c(&repo_root().join("examples/c/example.c"), build.path());
    let package = Package::new(PFN);
    let daemon = TestDaemon::start_with_packages("same-uid", std::slice::from_ref(&package)).await;
    let wrong = build.path().join("wrong.key");
    std::fs::write(&wrong, "not the secret").unwrap();
    let url = daemon.url(Transport::Unix);
    let output = run(&example, &[&url, PFN, wrong.to_str().unwrap()], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("connect failed: AUTH_FAILED"),
        "the program reports the code:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpp_example_runs_through_the_raii_wrapper() {
    let build = tempfile::tempdir().unwrap();
    let example = compile_cpp(&repo_root().join("examples/cpp/example.cpp"), build.path());
    let daemon = TestDaemon::start().await;
    for transport in [Transport::Unix, Transport::Shm] {
        let url = daemon.url(transport);
        let output = run(&example, &[&url], &[]).await;
        assert_printed(
            &output,
            &[
                "connected",
                "callback: demo.greetings.cpp \"hello from C++\" lang=c++",
                "next: demo.pull \"pulled\"",
                "response: \"ROUND TRIP\" success",
                "empty: \"nothing to shout\" failure",
                "nobody: NO_RESPONDERS: nobody serves the service",
                "done",
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_reach_c_callers_as_codes_and_messages() {
    let build = tempfile::tempdir().unwrap();
    let checks = compile_c(&common::crate_dir().join("tests/c/errors.c"), build.path());
    let daemon = TestDaemon::start().await;
    let output = run(&checks, &[&daemon.url(Transport::Unix)], &[]).await;
    assert_printed(
        &output,
        &[
            "ok: an unknown scheme fails with CONNECT",
            "ok: a NULL url fails with NULL_ARGUMENT",
            "ok: publishing to a wildcard fails with INVALID_SUBJECT",
            "ok: next() on a callback subscription is MISUSE",
            "ok: answering twice is MISUSE",
            "ok: a handler that does not answer is answered FAILURE at once",
            "ok: a callback may free its own subscription",
            "ok: a callback may call back into the library",
            "0 failed",
        ],
    );
}
