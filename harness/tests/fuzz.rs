//! The fuzz targets (`charter::fuzzing`, run under cargo-fuzz by `fuzz/`) on stable: every
//! target over its committed corpus (`fuzz/corpus/<name>/`), then over a fixed number of
//! seeded mutations of it (bytes flipped, inserted, deleted, duplicated, cut, spliced with
//! another entry, and tokens parsers meet at their edges). A panic anywhere fails the test with
//! the input that caused it, written to the test's temporary directory for `cargo fuzz run`.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};

/// Mutated inputs per target: 400 (about a second in all on a loaded 2-core machine), or
/// `CHARTER_FUZZ_MUTATIONS` for a longer search by hand.
fn mutations() -> usize {
    std::env::var("CHARTER_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

/// Tokens at parsers' edges: delimiters, numbers that do not fit, non-numbers, broken UTF-8.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"'",
    b"\\",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"=",
    b"#",
    b"data: ",
    b"event: ",
    b"[DONE]",
    b"-1",
    b"0",
    b"1e308",
    b"-1e309",
    b"NaN",
    b"inf",
    b"18446744073709551616",
    b"99999999999999999999999",
    b"0.0000000001",
    b"\xff\xfe",
    b"\xc3",
    b"\0",
    b"le=\"+Inf\"",
    b"{}",
    b"[]",
    b"null",
    b"true",
    b"\"\"",
];

fn corpus(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

fn mutate(rng: &mut impl Rng, seeds: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    let mut d = seeds[rng.random_range(0..seeds.len())].1.clone();
    for _ in 0..rng.random_range(1..=8) {
        let at = rng.random_range(0..=d.len());
        match rng.random_range(0..7) {
            0 if !d.is_empty() => {
                let i = at.min(d.len() - 1);
                d[i] = rng.random();
            }
            1 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                d.splice(at..at, t.iter().copied());
            }
            2 => {
                let end = (at + rng.random_range(1..64)).min(d.len());
                d.drain(at..end);
            }
            3 => {
                let end = (at + rng.random_range(1..256)).min(d.len());
                let piece = d[at..end].to_vec();
                d.splice(at..at, piece);
            }
            4 => d.truncate(at),
            5 => {
                let other = &seeds[rng.random_range(0..seeds.len())].1;
                let from = rng.random_range(0..=other.len());
                d.truncate(at);
                d.extend_from_slice(&other[from..]);
            }
            _ => d.insert(at, rng.random_range(0..=255)),
        }
    }
    d
}

/// Run `target` on `data`; on a panic, keep the input and fail naming it.
fn run(name: &str, target: fn(&[u8]), data: &[u8], what: &str) {
    if std::panic::catch_unwind(|| target(data)).is_err() {
        let keep = std::env::temp_dir().join(format!("charter-fuzz-crash-{name}"));
        std::fs::write(&keep, data).unwrap();
        panic!(
            "fuzz target {name} panicked on {what}; input kept in {} (cargo +nightly fuzz run {name} {})",
            keep.display(),
            keep.display()
        );
    }
}

#[test]
fn fuzz_targets_survive_their_corpus_and_seeded_mutations() {
    for &(name, target) in charter::fuzzing::TARGETS {
        let seeds = corpus(name);
        for (path, data) in &seeds {
            run(name, target, data, &path.display().to_string());
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x19);
        for i in 0..mutations() {
            let data = mutate(&mut rng, &seeds);
            run(name, target, &data, &format!("mutation {i}"));
        }
    }
}

/// Every target has a cargo-fuzz binary and a corpus, and nothing else is in `fuzz/`.
#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    let mut bins: Vec<String> = std::fs::read_dir(fuzz.join("fuzz_targets"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    bins.sort();
    let mut names: Vec<String> = charter::fuzzing::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    names.sort();
    assert_eq!(bins, names);
    for n in &names {
        let src = std::fs::read_to_string(fuzz.join(format!("fuzz_targets/{n}.rs"))).unwrap();
        assert!(src.contains(&format!("charter::fuzzing::{n}(data)")), "{n}");
        assert!(manifest.contains(&format!("name = \"{n}\"")), "{n}");
        assert!(fuzz.join("corpus").join(n).is_dir(), "{n}");
    }
}
