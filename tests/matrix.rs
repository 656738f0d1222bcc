//! The fast representative subset of the hang-regression matrix (the full
//! matrix is `cargo run -- matrix`): the same library code, one repetition of
//! a handful of diverse cells. Zero hangs and zero failures; cells whose
//! trigger this kernel lacks are skipped with a reason.

use panicbench::matrix::{self, Options, Verdict};
use panicbench::report;

#[test]
fn representative_matrix_subset() {
    let mut opts = Options::new();
    opts.out = opts.out.join("test-subset");
    let cells = matrix::representative();
    let results = matrix::run(&cells, &opts);
    let summary = report::table(&results);
    println!("{summary}");
    report::write(&results, &opts.out).expect("writing matrix results");
    assert_eq!(results.len(), cells.len());
    let bad: Vec<_> = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Hang | Verdict::Fail))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} matrix runs hung or failed:\n{summary}",
        bad.len(),
        results.len()
    );
    assert!(
        results.iter().any(|r| r.verdict == Verdict::Pass),
        "nothing ran:\n{summary}"
    );
}

#[test]
fn matrix_covers_every_dimension_and_filters_by_component() {
    let all = matrix::all_scenarios();
    assert_eq!(all.len(), matrix::TRIGGERS.len() * 2 * 2 * 2 * 4 * 2);
    assert_eq!(matrix::TRIGGERS.len(), 18);
    let lock: Vec<_> = all.iter().filter(|s| s.matches("lock")).collect();
    assert!(
        lock.iter().all(|s| s.trigger == "lock"),
        "`lock` must not select usb-lock"
    );
    assert_eq!(
        all.iter()
            .filter(|s| s.matches("plain,smp4,hub,dump"))
            .count(),
        4
    );
    let kernel = matrix::kernel_triggers();
    assert!(
        kernel.iter().any(|t| t == "plain"),
        "TRIGGERS parsed: {kernel:?}"
    );
    for t in &kernel {
        assert!(
            matrix::TRIGGERS.contains(&t.as_str()),
            "kernel trigger {t} is missing from the matrix"
        );
    }
}
