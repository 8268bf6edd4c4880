//! Every corpus file (frames captured from real clients, files from a real
//! broker, every input that ever broke a target) and every generated seed
//! runs through its target without a panic. A target with no seed at all
//! is an error: its corpus folder went missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strom_fuzz::campaign::run_one;
use strom_fuzz::corpus::{corpus_files, generated};
use strom_fuzz::targets::TARGETS;

#[test]
fn every_corpus_file_and_generated_seed_passes_its_target() {
    let mut failures = Vec::new();
    let mut runs = 0;
    for target in TARGETS {
        let files = corpus_files(target.name);
        let generated = generated(target.name);
        assert!(
            !files.is_empty() || !generated.is_empty(),
            "target {} has no seeds: crates/fuzz/corpus/{} is missing or empty",
            target.name,
            target.name
        );
        for (path, input) in files {
            runs += 1;
            if let Some(message) = run_one(target, &input) {
                failures.push(format!("{}: {}: {message}", target.name, path.display()));
            }
        }
        for (i, input) in generated.iter().enumerate() {
            runs += 1;
            if let Some(message) = run_one(target, input) {
                failures.push(format!("{}: generated seed {i}: {message}", target.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(runs > 300, "only {runs} seeds ran");
}

#[test]
fn the_request_seeds_cover_every_served_api_and_version() {
    let registry = strom_fuzz::targets::registry();
    let served: usize = registry
        .ranges()
        .iter()
        .map(|(_, _, min, max)| (max - min + 1) as usize)
        .sum();
    assert_eq!(
        strom_fuzz::corpus::request_frames().len(),
        served,
        "a default request of every served version"
    );
}
