//! Generates the C header from the crate's source with cbindgen, into
//! `OUT_DIR/busd.h`. The checked-in `include/busd.h` is what C programs
//! include; `tests/header.rs` fails when the two differ, so the header can
//! never drift from the functions the library exports.

use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env("OUT_DIR")).join("busd.h");
    println!("cargo::rerun-if-changed=src");
    println!("cargo::rerun-if-changed=cbindgen.toml");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("cbindgen.toml: {e}"));
    // The crate root: cbindgen follows its `mod` items to the other files,
    // in declaration order, which is the order of the header's sections.
    let builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"));
    let bindings = builder
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen cannot generate busd.h: {e}"));
    bindings.write_to_file(&out);
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}
