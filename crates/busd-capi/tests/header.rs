//! The checked-in header is what cbindgen generates from the source now.
//!
//! The build script writes the generated header to `OUT_DIR`; C programs
//! include `include/busd.h`. After changing the exported API, write the new
//! header with:
//!
//! ```sh
//! BUSD_CAPI_BLESS=1 cargo test -p busd-capi --test header
//! ```

use std::path::PathBuf;

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/busd.h"));

#[test]
fn the_checked_in_header_is_what_cbindgen_generates() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/busd.h");
    if std::env::var("BUSD_CAPI_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, GENERATED).expect("write include/busd.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != GENERATED {
        let first = checked_in
            .lines()
            .zip(GENERATED.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| checked_in.lines().count().min(GENERATED.lines().count()));
        panic!(
            "{} differs from what cbindgen generates from src/ (first at line {}: {:?} there, {:?} generated).\n\
             Run `BUSD_CAPI_BLESS=1 cargo test -p busd-capi --test header` and commit the header.",
            path.display(),
            first + 1,
            checked_in.lines().nth(first).unwrap_or("<end>"),
            GENERATED.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

#[test]
fn the_header_declares_the_whole_api() {
    // A renamed or dropped function would still match a regenerated header;
    // these are what the examples and the README promise.
    for name in [
        "busd_connect_default(",
        "busd_connect(",
        "busd_connect_package(",
        "busd_publish(",
        "busd_publish_with_headers(",
        "busd_subscribe(",
        "busd_subscribe_callback(",
        "busd_subscription_next(",
        "busd_request(",
        "busd_serve(",
        "busd_call_respond(",
        "busd_call_respond_failure(",
        "busd_strerror(",
        "busd_last_error(",
        "BUSD_RESULT_NO_RESPONDERS = 6",
    ] {
        assert!(GENERATED.contains(name), "busd.h lacks {name}");
    }
}
