//! The README's Rust snippet is the quickstart example, word for word, so
//! what a newcomer copies is what `cargo run --example quickstart` runs.

#[test]
fn the_readme_snippet_is_the_quickstart_example() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{dir}/../../README.md")).unwrap();
    let example = std::fs::read_to_string(format!("{dir}/examples/quickstart.rs")).unwrap();
    let from_rust = &readme[readme.find("## From Rust").expect("the section")..];
    let start = from_rust.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let snippet = &from_rust[start..start + from_rust[start..].find("```").unwrap()];
    // The example's own doc comment and the blank line after it aside.
    let code = example
        .lines()
        .skip_while(|l| l.starts_with("//!") || l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_eq!(
        snippet, code,
        "README.md's snippet and examples/quickstart.rs differ"
    );
}
