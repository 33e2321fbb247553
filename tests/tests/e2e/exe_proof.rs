//! The `exe` of a peer-credential proof names a file, not a path: a
//! process in another mount namespace (a container, `unshare`) that puts
//! another file at the trusted path is not that executable.

use std::path::Path;
use std::process::{Command, Output};

use busd_e2e::access::current_uid;
use busd_e2e::{Package, TestDaemon, Transport, busd_bin};

const MAPS: &str = "ExeProof.Maps_8wekyb3d8bbwe";

/// `program pub --pfn MAPS`, proven by peer credentials, through `wrap`
/// (a command prefix, maybe empty).
fn publish_as_maps(d: &TestDaemon, wrap: &[&str], program: &Path) -> Output {
    let url = d.url(Transport::Unix);
    let mut args: Vec<&str> = wrap.to_vec();
    let program = program.to_str().expect("utf-8 path");
    args.extend([
        program,
        "pub",
        "--server",
        &url,
        "--pfn",
        MAPS,
        "exe.proof",
        "hi",
    ]);
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run the client")
}

#[tokio::test(flavor = "multi_thread")]
async fn another_file_bind_mounted_at_the_trusted_path_is_not_the_executable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let trusted = dir.path().join("maps-client");
    let impostor = dir.path().join("impostor");
    std::fs::copy(busd_bin(), &trusted).expect("copy");
    std::fs::copy(busd_bin(), &impostor).expect("copy");
    let maps = Package::new(MAPS)
        .no_token()
        .peer(&[current_uid()], std::slice::from_ref(&trusted));
    let d = TestDaemon::start_with_packages("same-uid", &[maps]).await;

    let ok = publish_as_maps(&d, &[], &trusted);
    assert!(ok.status.success(), "the trusted file proves MAPS: {ok:?}");

    // The same path, in a mount namespace of the client's own, names the
    // impostor: the kernel reports the path, the daemon checks the file.
    let script = r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#;
    let (impostor, trusted) = (impostor.to_str().unwrap(), trusted.to_str().unwrap());
    let wrap = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
        impostor,
        trusted,
    ];
    let refused = publish_as_maps(&d, &wrap, Path::new(trusted));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !stderr.contains("unshare:") && !stderr.contains("mount:"),
        "this test needs root to make a mount namespace (CI runs as root): {stderr}"
    );
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot prove package"), "{stderr}");
}
