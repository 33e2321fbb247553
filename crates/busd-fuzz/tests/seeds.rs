//! The seed corpora (`fuzz/corpus/<target>/`) and the fuzz targets
//! (`fuzz/fuzz_targets/`) match the checks: every check has a target and
//! seeds, and every seed passes its check, on stable.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The names of the files in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn every_check_has_a_fuzz_target_and_every_target_a_check() {
    let targets: Vec<String> = names(&fuzz_dir().join("fuzz_targets"))
        .into_iter()
        .map(|name| name.trim_end_matches(".rs").to_owned())
        .collect();
    let checks: Vec<&str> = busd_fuzz::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(targets, checks);
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for target in &targets {
        let bin = format!("name = \"{target}\"\npath = \"fuzz_targets/{target}.rs\"");
        assert!(
            manifest.contains(&bin),
            "fuzz/Cargo.toml lacks the bin {target}"
        );
        let source = fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{target}.rs")));
        let call = format!("busd_fuzz::{target}::check(data)");
        assert!(
            source.unwrap().contains(&call),
            "{target}.rs does not call {call}"
        );
    }
}

#[test]
fn every_seed_passes_its_check() {
    for (target, check) in busd_fuzz::TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        let seeds = names(&dir);
        assert!(!seeds.is_empty(), "no seeds for {target}");
        for seed in seeds {
            let data = fs::read(dir.join(&seed)).unwrap();
            assert!(data.len() <= 8192, "{target}/{seed}: seeds are small");
            if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                panic!("fuzz/corpus/{target}/{seed} fails its check (above)");
            }
        }
    }
}
