//! `busd_fuzz::config::check`: the default file with lines rewritten,
//! dropped or cut short; files assembled from keys and values near their
//! bounds, with packages valid and not; and any text.

use busd_daemon::DEFAULT_CONFIG;
use busd_fuzz::config::{assert_explained, check, parse};
use proptest::prelude::*;
use proptest::sample::select;

const KEYS: [&str; 21] = [
    "tcp",
    "unix",
    "unpackaged",
    "admin_uids",
    "threads",
    "busy_poll",
    "shutdown_grace",
    "max_frame",
    "max_pending_msgs",
    "max_pending_bytes",
    "max_connections",
    "max_subscriptions",
    "auth_timeout",
    "block_timeout",
    "shm_ring_bytes",
    "max_pending_requests",
    "max_preauth_frame",
    "frame_timeout",
    "write_timeout",
    "foreign_block_timeout",
    "max_memory_per_identity",
];

/// Values near every key's bounds, of every type the keys take, and wrong.
fn value() -> impl Strategy<Value = &'static str> {
    select(vec![
        "0",
        "1",
        "1023",
        "1024",
        "4096",
        "65536",
        "8388608",
        "67108864",
        "134217728",
        "4294967296",
        "18446744073709551615",
        "-1",
        "1.5",
        "true",
        "[0, 1000]",
        "[]",
        "\"0s\"",
        "\"100us\"",
        "\"10ms\"",
        "\"11ms\"",
        "\"5m\"",
        "\"5m 1s\"",
        "\"1h\"",
        "\"soon\"",
        "\"\"",
        "\"auto\"",
        "\"/run/busd/x.sock\"",
        "\"relative.sock\"",
        "\"127.0.0.1:4271\"",
        "\"[::1]:0\"",
        "\"0.0.0.0:4271\"",
        "\"open\"",
        "\"same-uid\"",
        "\"everyone\"",
    ])
}

fn line() -> impl Strategy<Value = String> {
    (select(KEYS.to_vec()), value()).prop_map(|(k, v)| format!("{k} = {v}"))
}

/// A `[[package]]` table of valid and invalid parts.
fn package() -> impl Strategy<Value = String> {
    let pfn = select(vec![
        "Contoso.Weather_8wekyb3d8bbwe",
        "Fabrikam.Maps_1234567890abc",
        "no-publisher",
        "ab_8wekyb3d8bbwe",
    ]);
    let proof = select(vec![
        "uids = [1000]",
        "uids = [1000]\nexe = [\"/usr/bin/maps\"]",
        "exe = [\"relative\"]",
        "token_file = \"missing.key\"",
        "",
    ]);
    let rules = select(vec![
        "in = [\"Fabrikam.Maps_1234567890abc\"]\nout = [\"Contoso.Weather_8wekyb3d8bbwe\"]",
        "in = [\"x\"]",
        "exempt_in = true\nexempt_out = 1",
        "capabilities = [\"contoso.hsa\"]\nmystery = 2",
        "accept_block = true\nexempt_out = true",
        "",
    ]);
    (pfn, any::<bool>(), proof, rules).prop_map(|(pfn, loopback, proof, rules)| {
        format!("[[package]]\npfn = \"{pfn}\"\nloopback = {loopback}\n{proof}\n{rules}\n")
    })
}

/// The default file, edited: a line replaced, dropped or cut; or cut short
/// anywhere.
fn edited_default() -> impl Strategy<Value = String> {
    let lines: Vec<&str> = DEFAULT_CONFIG.lines().collect();
    let n = lines.len();
    let edit = prop_oneof![
        (0..n, line()).prop_map(|(i, l)| (i, Some(l))),
        (0..n).prop_map(|i| (i, None)),
    ];
    prop_oneof![
        prop::collection::vec(edit, 1..4).prop_map(move |edits| {
            let mut lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            for (i, with) in edits {
                match with {
                    Some(l) => lines[i] = l,
                    None => lines[i].clear(),
                }
            }
            lines.join("\n")
        }),
        any::<prop::sample::Index>().prop_map(|at| {
            let mut cut = at.index(DEFAULT_CONFIG.len());
            while !DEFAULT_CONFIG.is_char_boundary(cut) {
                cut -= 1;
            }
            DEFAULT_CONFIG[..cut].to_owned()
        }),
    ]
}

/// `[daemon]` and `[limits]` sections of keys and values, perhaps a
/// package or two.
fn assembled() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(line(), 0..5),
        prop::collection::vec(line(), 0..5),
        prop::collection::vec(package(), 0..3),
    )
        .prop_map(|(daemon, limits, packages)| {
            format!(
                "[daemon]\n{}\n[limits]\n{}\n{}",
                daemon.join("\n"),
                limits.join("\n"),
                packages.concat()
            )
        })
}

proptest! {
    #[test]
    fn any_text(text in any::<String>()) {
        check(text.as_bytes());
    }

    #[test]
    fn the_default_edited(text in edited_default()) {
        check(text.as_bytes());
    }

    #[test]
    fn keys_and_values_near_their_bounds(text in assembled()) {
        check(text.as_bytes());
    }
}

/// The `config` fuzz target's first find: `toml` refuses a control
/// character in a comment with an empty message, and the error said
/// nothing after its line and column.
#[test]
fn a_control_character_in_a_comment_is_named() {
    let text = "[daemon]\n# NUL \0 in a comment\nthreads = 1\n";
    let e = parse(text).expect_err("control characters are not TOML");
    assert_explained(&e, text);
    assert_eq!(
        e.to_string(),
        "fuzz.toml: line 2, column 7: unexpected character '\\0'"
    );
}
