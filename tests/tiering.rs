//! Tiered compilation (docs/design.md §11): a component missing from the
//! cache runs at once on Winch's code while Cranelift compiles it behind,
//! for the cache and for the tasks started afterwards.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mtask_host::{CodeOrigin, Config, TaskManager, Tiering};
use support::{Run, c_guest, guest, output_within_deadline};

/// An empty cache directory of this test's own.
fn fresh_cache(name: &str) -> PathBuf {
    let dir = support::target_dir()
        .join("tiering-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `mtask-host run -v --threads 1 --cache-dir CACHE FLAGS... APP`, tiering
/// as a user gets it (the other tests turn it off).
fn run_tiered(cache: &Path, flags: &[&str], app: &Path) -> Run {
    let mut cmd = support::host();
    cmd.env_remove("MTASK_NO_TIERING")
        .args(["run", "-v", "--threads", "1", "--cache-dir"])
        .arg(cache)
        .args(flags)
        .arg(app);
    output_within_deadline(&mut cmd).into()
}

/// The cache files in `cache` with extension `ext`.
fn files(cache: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(cache)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (at most a minute) until the background compile of the one
/// component in `cache` has let go of its lock, its entry stored.
fn wait_for_the_background_compile(cache: &Path) {
    let started = Instant::now();
    loop {
        let locks = files(cache, "lock");
        assert!(locks.len() <= 1, "{locks:?}");
        if let [lock] = &locks[..]
            && std::fs::File::open(lock).unwrap().try_lock().is_ok()
            && !files(cache, "entries").is_empty()
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no cache entry after a minute: {:?}",
            std::fs::read_dir(cache).map(|d| d.count())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_first_run_starts_on_winch_code_and_leaves_cranelift_code_in_the_cache() {
    let cache = fresh_cache("printer");
    let app = guest("printer");
    // Cranelift's code, from the tests' shared cache.
    let mut plain = support::host();
    plain.args(["run", "--threads", "1"]).arg(&app);
    let reference: Run = output_within_deadline(&mut plain).into();
    assert_eq!(reference.code, 0, "{}", reference.stderr);

    let first = run_tiered(&cache, &[], &app);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains(
            "printer.wasm compiled by Winch (Cranelift compiles it for the cache in the \
             background) in"
        ),
        "{}",
        first.stderr
    );
    assert_eq!(
        first.stdout, reference.stdout,
        "Winch's code prints the same"
    );

    wait_for_the_background_compile(&cache);
    assert_eq!(files(&cache, "cwasm").len(), 1);
    let second = run_tiered(&cache, &[], &app);
    assert_eq!(second.code, 0, "{}", second.stderr);
    second.assert_stderr_has("printer.wasm loaded from the cache in");
    assert_eq!(second.stdout, reference.stdout);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn without_tiering_the_first_run_compiles_with_cranelift_and_stores_at_once() {
    let cache = fresh_cache("untiered");
    let run = run_tiered(&cache, &["--no-tiering"], &guest("printer"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stderr_has("printer.wasm compiled in");
    assert_eq!(
        files(&cache, "cwasm").len(),
        1,
        "stored before the run ends"
    );
    assert_eq!(files(&cache, "entries").len(), 1);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn a_component_winch_cannot_compile_is_compiled_by_cranelift() {
    // Tail calls (`return_call_indirect`): Winch refuses them.
    let cache = fresh_cache("tail-calls");
    let run = run_tiered(&cache, &[], &c_guest("tail_calls"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "sum 500000500000\n");
    run.assert_stderr_has("tail_calls.wasm compiled in");
    assert_eq!(files(&cache, "cwasm").len(), 1, "stored by the run itself");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn winch_code_is_preempted_and_held_to_its_cpu_budget() {
    let cache = fresh_cache("budget");
    let mut cmd = support::host();
    cmd.env_remove("MTASK_NO_TIERING")
        .args(["run", "-v", "--cpu-budget", "100ms", "--entry", "spin"])
        .arg("--cache-dir")
        .arg(&cache)
        .arg(guest("hostile"));
    let run: Run = output_within_deadline(&mut cmd).into();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("compiled by Winch"), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "mtask-host: main task (`spin`) went over a limit: it used up its CPU budget of 100 ms"
        ),
        "{}",
        run.stderr
    );
    wait_for_the_background_compile(&cache);
    let _ = std::fs::remove_dir_all(&cache);
}

/// A `u64` as the guest SDK encodes it (postcard varint; small values only).
fn small_u64(n: u8) -> Vec<u8> {
    assert!(n < 128);
    vec![n]
}

#[test]
fn an_embedder_s_later_tasks_run_cranelift_code_once_it_is_compiled() {
    let cache = fresh_cache("embedded");
    let manager = |tiering| {
        TaskManager::new(Config {
            max_tasks: 16,
            cache_dir: Some(cache.clone()),
            threads: 1,
            tiering,
            ..Config::default()
        })
        .unwrap()
    };
    let mut m = manager(Tiering::Background);
    let program = m.load(guest("conformance")).unwrap();
    assert_eq!(program.origin(), CodeOrigin::Baseline);
    let early = m.add(&program, "napper", small_u64(5)).unwrap();
    m.run().unwrap();
    assert_eq!(m.take_outcome(early), Some(Ok(small_u64(5))));

    m.wait_for_background_compiles();
    assert_eq!(m.background_compiles(), 0);
    assert!(program.optimized(), "Cranelift's code arrived");
    // A clone made before shares it.
    let renamed = program.clone().with_name("again");
    assert!(renamed.optimized());
    let late = m.add(&renamed, "napper", small_u64(7)).unwrap();
    m.run().unwrap();
    assert_eq!(m.take_outcome(late), Some(Ok(small_u64(7))));

    // What the background stored is what the next host loads.
    let next = manager(Tiering::Off).load(guest("conformance")).unwrap();
    assert_eq!(next.origin(), CodeOrigin::Cached);
    assert!(next.optimized());
    let _ = std::fs::remove_dir_all(&cache);
}
