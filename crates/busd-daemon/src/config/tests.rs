//! The configuration loader: defaults, overrides, line-precise errors,
//! and the access rules of `[[package]]` tables.

use std::os::unix::fs::PermissionsExt;

use busd_policy::UnpackagedMode;
use busd_proto::Pfn;

use super::*;

#[test]
fn embedded_default_is_valid() {
    let c = Config::parse("default", DEFAULT_CONFIG, &[]).unwrap();
    assert_eq!(c.tcp, Some("127.0.0.1:4271".parse().unwrap()));
    assert!(c.unix.is_some());
    assert_eq!(c.policy.unpackaged, UnpackagedMode::SameUid);
}

#[test]
fn bad_values_name_line_and_key() {
    let text = DEFAULT_CONFIG.replace("max_frame = 8388608", "max_frame = \"big\"");
    let e = Config::parse("x.toml", &text, &[]).unwrap_err().to_string();
    assert!(e.starts_with("x.toml: line "), "{e}");
    assert!(e.contains("invalid type"), "{e}");
    let text = DEFAULT_CONFIG.replace("[limits]", "[limits]\nmax_frmae = 1");
    let e = Config::parse("x.toml", &text, &[]).unwrap_err().to_string();
    assert!(e.contains("unknown field `max_frmae`"), "{e}");
    let text = DEFAULT_CONFIG.replace("127.0.0.1:4271", "0.0.0.0:4271");
    let e = Config::parse("x.toml", &text, &[]).unwrap_err().to_string();
    assert!(
        e.contains("daemon.tcp: 0.0.0.0:4271 is not a loopback address"),
        "{e}"
    );
}

#[test]
fn timeouts_and_ring_sizes_are_checked() {
    let c = Config::parse("default", DEFAULT_CONFIG, &[]).unwrap();
    assert_eq!(c.limits.block_timeout, std::time::Duration::from_secs(5));
    assert_eq!(c.limits.shm_ring_bytes, 16 << 20);
    for (line, key) in [
        (
            "block_timeout = \"0s\"",
            "limits.block_timeout: must be more than zero",
        ),
        (
            "shm_ring_bytes = 5000",
            "limits.shm_ring_bytes: must be a power of two",
        ),
        (
            "shm_ring_bytes = 2048",
            "limits.shm_ring_bytes: must be a power of two",
        ),
        (
            "shm_ring_bytes = 134217728",
            "limits.shm_ring_bytes: must be a power of two",
        ),
        (
            "shm_pool_bytes = 4096",
            "limits.shm_pool_bytes: must be 0 (no pools) or a power of two",
        ),
        (
            "shm_pool_bytes = 100000",
            "limits.shm_pool_bytes: must be 0 (no pools) or a power of two",
        ),
    ] {
        let text = format!("[limits]\n{line}\n");
        let e = Config::parse("r.toml", &text, &[]).unwrap_err().to_string();
        assert!(e.contains("r.toml: line 2") && e.contains(key), "{e}");
    }
    let c = Config::parse("r.toml", "[limits]\nshm_ring_bytes = 65536\n", &[]).unwrap();
    assert_eq!(c.limits.shm_ring_bytes, 65536);
    assert_eq!(c.limits.shm_pool_bytes, 16 << 20);
    let c = Config::parse("r.toml", "[limits]\nshm_pool_bytes = 0\n", &[]).unwrap();
    assert_eq!(c.limits.shm_pool_bytes, 0);
    assert_eq!(c.limits.shm_set_pools, 8, "the default");
    let c = Config::parse("r.toml", "[limits]\nshm_set_pools = 0\n", &[]).unwrap();
    assert_eq!(c.limits.shm_set_pools, 0);
}

#[test]
fn hardening_limits_are_checked() {
    let c = Config::parse("default", DEFAULT_CONFIG, &[]).unwrap();
    assert_eq!(c.limits.max_pending_requests, 65536);
    assert_eq!(c.limits.max_preauth_frame, 4096);
    assert_eq!(c.limits.max_memory_per_identity, 512 << 20);
    assert_eq!(
        c.limits.foreign_block_timeout,
        std::time::Duration::from_millis(10)
    );
    assert_eq!(c.limits.frame_timeout, std::time::Duration::from_secs(10));
    assert_eq!(c.limits.write_timeout, std::time::Duration::from_secs(10));
    assert_eq!(c.shutdown_grace, std::time::Duration::from_secs(5));
    for (text, key) in [
        (
            "[limits]\nframe_timeout = \"0s\"\n",
            "limits.frame_timeout: must be more than zero",
        ),
        (
            "[limits]\nwrite_timeout = \"0s\"\n",
            "limits.write_timeout: must be more than zero",
        ),
        (
            "[limits]\nblock_timeout = \"1s\"\nforeign_block_timeout = \"2s\"\n",
            "limits.foreign_block_timeout: must be at most limits.block_timeout",
        ),
        (
            "[limits]\nforeign_block_timeout = \"0s\"\n",
            "limits.foreign_block_timeout: must be more than zero",
        ),
        (
            "[limits]\nmax_pending_requests = 0\n",
            "limits.max_pending_requests: must be at least 1",
        ),
        (
            "[limits]\nmax_preauth_frame = 100\n",
            "limits.max_preauth_frame: must be from 1024",
        ),
        (
            "[limits]\nmax_frame = 2048\nmax_preauth_frame = 4096\n",
            "limits.max_preauth_frame: must be from 1024",
        ),
        (
            "[limits]\nmax_pending_bytes = 1048576\nmax_frame = 1048576\nmax_memory_per_identity = 2097151\n",
            "limits.max_memory_per_identity: must hold at least",
        ),
        (
            "[daemon]\nshutdown_grace = \"1h\"\n",
            "daemon.shutdown_grace: must be at most",
        ),
    ] {
        let e = Config::parse("h.toml", text, &[]).unwrap_err().to_string();
        assert!(e.contains(key), "{text:?}: {e}");
    }
}

#[test]
fn a_partial_file_takes_the_rest_from_the_default() {
    let c = Config::parse("p.toml", "[limits]\nmax_frame = 4096\n", &[]).unwrap();
    assert_eq!(c.limits.max_frame, 4096);
    assert_eq!(c.limits.max_pending_msgs, 65536);
    assert_eq!(c.policy.unpackaged, UnpackagedMode::SameUid);
}

#[test]
fn environment_overrides_the_file() {
    let env = [
        ("BUSD_LIMITS__MAX_FRAME".to_owned(), "65536".to_owned()),
        ("BUSD_DAEMON__TCP".to_owned(), "127.0.0.1:0".to_owned()),
        ("BUSD_URL".to_owned(), "tcp://ignored".to_owned()),
    ];
    let c = Config::parse("default", DEFAULT_CONFIG, &env).unwrap();
    assert_eq!(c.limits.max_frame, 65536);
    assert_eq!(c.tcp, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(
        c.overrides,
        env[..2],
        "kept for reloads; BUSD_URL is not one"
    );
    let env = [("BUSD_LIMITS__MAX_FRAME".to_owned(), "lots".to_owned())];
    let e = Config::parse("default", DEFAULT_CONFIG, &env)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("limits.max_frame") || e.contains("max_frame"),
        "{e}"
    );
}

const WEATHER: &str = "Contoso.Weather_8wekyb3d8bbwe";
const MAPS: &str = "Fabrikam.Maps_1234567890abc";

/// `busd.toml` with `body` in a temp dir, beside `tokens/w.key` (mode 0600).
fn config_dir(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tokens")).unwrap();
    let key = dir.path().join("tokens/w.key");
    std::fs::write(&key, "the secret of a package\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.path().join("busd.toml");
    std::fs::write(&path, body).unwrap();
    (dir, path)
}

fn two_packages() -> String {
    format!(
        "[daemon]\nunpackaged = \"deny\"\n\n\
         [[package]]\npfn = \"{WEATHER}\"\nloopback = true\ntoken_file = \"tokens/w.key\"\n\
         in = [\"{MAPS}\"]\nout = [\"{MAPS}\"]\n\n\
         [[package]]\npfn = \"{MAPS}\"\nloopback = true\nuids = [1000]\n\
         in = [\"{WEATHER}\"]\nout = [\"{WEATHER}\", \"Nobody.Here_1234567890abc\"]\n"
    )
}

#[test]
fn packages_load_with_tokens_beside_the_file() {
    let (dir, path) = config_dir(&two_packages());
    let c = Config::load_with_env(Some(&path), &[]).unwrap();
    assert_eq!(c.path.as_deref(), Some(path.as_path()));
    assert_eq!(c.policy.unpackaged, UnpackagedMode::Deny);
    assert_eq!(c.policy.packages.len(), 2);
    let weather = c.policy.package(&Pfn::parse(WEATHER).unwrap()).unwrap();
    let token = weather.proofs.token.as_ref().unwrap();
    assert_eq!(token.path(), dir.path().join("tokens/w.key"));
    assert_eq!(
        c.warnings,
        [format!(
            "{}:16: out: Nobody.Here_1234567890abc is not a configured package",
            path.display()
        )]
    );
    // The embedded default has no packages, and nothing to warn about.
    let d = Config::load_with_env(None, &[]).unwrap();
    assert!(d.policy.packages.is_empty() && d.warnings.is_empty() && d.path.is_none());
}

#[test]
fn environment_overrides_unpackaged_but_never_packages() {
    let (_dir, path) = config_dir(&two_packages());
    let env = [
        ("BUSD_DAEMON__UNPACKAGED".to_owned(), "open".to_owned()),
        (
            "BUSD_PACKAGE__PFN".to_owned(),
            "Evil.Twin_1234567890abc".to_owned(),
        ),
    ];
    let c = Config::load_with_env(Some(&path), &env).unwrap();
    assert_eq!(c.policy.unpackaged, UnpackagedMode::Open);
    assert_eq!(c.policy.packages.len(), 2);
}

#[test]
fn policy_errors_name_file_line_and_reason() {
    let text = two_packages().replace("tokens/w.key", "tokens/missing.key");
    let (_dir, path) = config_dir(&text);
    let e = Config::load_with_env(Some(&path), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::Policy(_)), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{}:7: token_file: token file ", path.display())),
        "{shown}"
    );
    assert!(shown.contains("missing.key does not exist"), "{shown}");
    assert_eq!(e.errors()[0].line, Some(7));
    assert_eq!(
        e.warnings().len(),
        1,
        "the warning is kept for check-config"
    );

    let (_dir, path) = config_dir(&format!(
        "[[package]]\npfn = \"{MAPS}\"\nuids = [1]\nwat = 1\n"
    ));
    let e = Config::load_with_env(Some(&path), &[]).unwrap_err();
    assert_eq!(e.errors()[0].line, Some(4), "{e}");
    assert!(e.to_string().contains("unknown field `wat`"), "{e}");
}

#[test]
fn token_files_open_to_others_are_refused() {
    let (dir, path) = config_dir(&two_packages());
    let key = dir.path().join("tokens/w.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Config::load_with_env(Some(&path), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("accessible by group or others (mode 0644)"),
        "{e}"
    );
}

#[test]
fn daemon_errors_name_the_line_of_their_key() {
    let text = "[daemon]\nunix = \"relative.sock\"\n";
    let e = Config::parse("x.toml", text, &[]).unwrap_err();
    assert_eq!(e.errors()[0].line, Some(2), "{e}");
    assert!(
        e.to_string().starts_with("x.toml: line 2: daemon.unix: "),
        "{e}"
    );
}

#[test]
fn worker_threads_follow_the_cores_unless_set() {
    let c = Config::parse("default", DEFAULT_CONFIG, &[]).unwrap();
    assert_eq!(c.threads, 0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.worker_threads(), (cores / 2).max(1));
    let c = Config::parse("t.toml", "[daemon]\nthreads = 3\n", &[]).unwrap();
    assert_eq!(c.worker_threads(), 3);
    let env = [("BUSD_DAEMON__THREADS".to_owned(), "2".to_owned())];
    let c = Config::parse("t.toml", "[daemon]\nthreads = 3\n", &env).unwrap();
    assert_eq!(c.worker_threads(), 2, "the environment wins over the file");
    let e = Config::parse("t.toml", "[daemon]\nthreads = 5000\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("t.toml: line 2"), "{e}");
    assert!(e.contains("daemon.threads: must be at most 1024"), "{e}");
}

#[test]
fn busy_poll_is_a_short_duration_on_by_default() {
    use std::time::Duration;
    let c = Config::parse("default", DEFAULT_CONFIG, &[]).unwrap();
    assert_eq!(c.busy_poll, Duration::from_micros(100));
    let c = Config::parse("t.toml", "[daemon]\nbusy_poll = \"0s\"\n", &[]).unwrap();
    assert_eq!(c.busy_poll, Duration::ZERO);
    let env = [("BUSD_DAEMON__BUSY_POLL".to_owned(), "200us".to_owned())];
    let c = Config::parse("t.toml", "", &env).unwrap();
    assert_eq!(c.busy_poll, Duration::from_micros(200));
    let e = Config::parse("t.toml", "[daemon]\nbusy_poll = \"1s\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("t.toml: line 2"), "{e}");
    assert!(e.contains("daemon.busy_poll: must be at most 10ms"), "{e}");
    let e = Config::parse("t.toml", "[daemon]\nbusy_poll = 50\n", &[]).unwrap_err();
    assert!(e.to_string().contains("expected a duration"), "{e}");
}

#[test]
fn a_bad_value_from_an_override_names_the_override_not_a_line() {
    let env = [("BUSD_DAEMON__TCP".to_owned(), "localhost:4299".to_owned())];
    let e = Config::parse("<embedded default>", DEFAULT_CONFIG, &env)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("BUSD_DAEMON__TCP (or busd run --tcp): daemon.tcp:"),
        "{e}"
    );
    assert!(!e.contains("line"), "{e}");
}
