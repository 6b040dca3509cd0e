//! Replays every input of `fuzz/corpus/TARGET/` (what AFL++ runs found and
//! kept, minimised) and `fuzz/findings/TARGET/` (inputs that once failed,
//! fixed since) through its target: each must be answered without a panic.

use std::path::Path;

#[test]
fn every_corpus_input_is_answered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for target in cnm_fuzz::TARGETS {
        let mut count = 0;
        for dir in ["corpus", "findings"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target.name)) else { continue };
            for entry in entries {
                let path = entry.expect("a corpus entry").path();
                let input = std::fs::read(&path).expect("a corpus file");
                let outcome = std::panic::catch_unwind(|| (target.run)(&input));
                assert!(outcome.is_ok(), "{}: {} fails", target.name, path.display());
                count += 1;
            }
        }
        assert!(count > 0, "no corpus for {}", target.name);
        total += count;
    }
    eprintln!("{total} corpus inputs replayed");
}
