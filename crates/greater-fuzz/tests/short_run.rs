//! CI: every fuzz target runs a short, fixed number of inputs (same seed each time) without a
//! panic, a hang or an allocation over the cap, and accepts at least its own seeds.

use greater_fuzz::alloc::{self, CapAlloc};
use greater_fuzz::{Options, TARGETS, run_target};

#[global_allocator]
static ALLOC: CapAlloc = CapAlloc;

/// Inputs per target in CI (the long run is `cargo xtask fuzz --inputs N`).
const INPUTS: usize = 150;

/// The counting allocator is global: a test that reads its live bytes or sets its budget must
/// not run while the other allocates.
static ALLOCATOR_STATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn every_target_survives_a_short_run() {
    let _alone = ALLOCATOR_STATE.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().unwrap();
    // Real seeds only where present (the model cache, GREATER_DATA); the synthetic ones always.
    let opts = Options { inputs: INPUTS, seed: 7, work: work.path().to_path_buf(), ..Default::default() };
    let mut failures = Vec::new();
    for t in &TARGETS {
        let s = run_target(t, &opts).unwrap();
        assert_eq!(s.inputs, INPUTS, "{}", t.name);
        eprintln!("{:<12} accepted {:>4} rejected {:>4} panics {}", t.name, s.accepted, s.rejected, s.panics.len());
        if s.accepted == 0 {
            failures.push(format!("{}: no input accepted, so the parser's deeper paths were never reached", t.name));
        }
        failures.extend(s.panics.iter().map(|p| format!("{}: panic {} ({})", t.name, p.message, p.input.display())));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_allocator_counts_live_bytes_and_refuses_over_the_cap() {
    let _alone = ALLOCATOR_STATE.lock().unwrap_or_else(|e| e.into_inner());
    // The other test's thread may still be freeing its thread-locals after it released the lock,
    // which lowers the live count under our feet: a few tries for the count, and a refused size
    // larger than everything live, so that no amount of freeing elsewhere lets it through.
    let counted = (0..20).any(|_| {
        let before = alloc::live();
        let v = vec![1u8; 8 << 20];
        let grew = alloc::live() >= before + (8 << 20);
        drop(v);
        grew || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            false
        }
    });
    assert!(counted, "an 8 MiB vector must show in the live bytes");
    let base = alloc::set_budget(1 << 20);
    let refused = Vec::<u8>::new().try_reserve_exact(base + (4 << 20)).is_err();
    alloc::clear_budget();
    assert!(refused, "a reservation past the 1 MiB budget must be refused");
    assert!(Vec::<u8>::new().try_reserve_exact(4 << 20).is_ok());
}
