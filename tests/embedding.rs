//! The embedding API (docs/design.md §4 row 16): a Rust program drives the
//! scheduler itself, as with multitask's TaskManager.

mod support;

use std::time::{Duration, Instant};

use mtask_host::{Config, Error, TaskError, TaskManager};

/// A manager with room for `max_tasks` live tasks and the tests' cache.
/// A manager with one shard: these tests drive passes with `run_next` and
/// check what each pass did, which is one shard's order.
fn manager_for(max_tasks: u32) -> TaskManager {
    let cache_dir = Some(support::target_dir().join("mtask-test-cache"));
    TaskManager::new(Config {
        max_tasks,
        cache_dir,
        threads: 1,
        ..Config::default()
    })
    .expect("manager")
}

fn manager() -> TaskManager {
    manager_for(64)
}

/// A `u64` as the guest SDK encodes it (postcard varint; small values only).
fn small_u64(n: u8) -> Vec<u8> {
    assert!(n < 128);
    vec![n]
}

#[test]
fn run_drives_tasks_to_the_end_and_keeps_the_outcome() {
    let mut m = manager();
    let program = m.load(support::guest("conformance")).unwrap();
    let task = m.add(&program, "napper", small_u64(5)).unwrap();
    assert!(m.has_runnable());
    assert_eq!(m.live_tasks(), 1);
    m.run().unwrap();
    assert_eq!(m.live_tasks(), 0);
    assert_eq!(m.take_outcome(task), Some(Ok(small_u64(5))));
    assert_eq!(m.take_outcome(task), None, "an outcome is taken once");
}

#[test]
fn run_next_reports_what_tasks_wait_for() {
    let mut m = manager();
    let program = m.load(support::guest("conformance")).unwrap();
    let sleeper = m.add(&program, "napper", small_u64(40)).unwrap();
    m.run_next(Some(Duration::ZERO)).unwrap();
    assert!(!m.has_runnable());
    assert!(m.has_timeouts(), "a sleeping task waits on a timer");
    assert!(!m.has_io_waits());

    // With nothing runnable, run_next waits at most its timeout.
    let start = Instant::now();
    m.run_next(Some(Duration::from_millis(10))).unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(9) && waited < Duration::from_millis(100),
        "waited {waited:?}"
    );
    assert_eq!(m.live_tasks(), 1);

    let blocked = m.add(&program, "std_sleeper", small_u64(30)).unwrap();
    m.run_next(Some(Duration::ZERO)).unwrap();
    assert!(
        m.has_io_waits(),
        "a task in a blocking WASI call waits on the host"
    );
    m.run().unwrap();
    assert_eq!(m.take_outcome(sleeper), Some(Ok(small_u64(40))));
    assert_eq!(m.take_outcome(blocked), Some(Ok(Vec::new())));
}

#[test]
fn cancel_ends_a_running_task() {
    let mut m = manager();
    let program = m.load(support::guest("conformance")).unwrap();
    let spinner = m.add(&program, "spinner", Vec::new()).unwrap();
    for _ in 0..3 {
        m.run_next(Some(Duration::ZERO)).unwrap();
    }
    assert!(m.has_runnable(), "the spinner keeps yielding");
    m.cancel(spinner);
    assert_eq!(m.live_tasks(), 0);
    assert_eq!(m.take_outcome(spinner), Some(Err(TaskError::Cancelled)));
}

#[test]
fn a_failing_task_does_not_stop_the_others() {
    let mut m = manager();
    let program = m.load(support::guest("conformance")).unwrap();
    let failing = m.add(&program, "level3", Vec::new()).unwrap();
    let trapping = m.add(&program, "trapper", Vec::new()).unwrap();
    let fine = m.add(&program, "napper", small_u64(3)).unwrap();
    m.run().unwrap();
    assert_eq!(
        m.take_outcome(failing),
        Some(Err(TaskError::Failed("foo".into())))
    );
    assert!(matches!(
        m.take_outcome(trapping),
        Some(Err(TaskError::Trapped(_)))
    ));
    assert_eq!(m.take_outcome(fine), Some(Ok(small_u64(3))));
}

#[test]
fn adding_an_unknown_entry_or_too_many_tasks_is_an_error() {
    let mut m = manager_for(2);
    let program = m.load(support::guest("printer")).unwrap();
    let names: Vec<&str> = program.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["main", "printer"]);
    let err = m.add(&program, "missing", Vec::new()).unwrap_err();
    assert!(matches!(err, Error::UnknownEntry { .. }));
    assert_eq!(
        err.to_string(),
        "printer.wasm has no entry `missing` (its entries: main(), printer((String, u32)))"
    );
    m.add(&program, "main", Vec::new()).unwrap();
    m.add(&program, "main", Vec::new()).unwrap();
    let err = m.add(&program, "main", Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "limit reached: the app may have at most 2 tasks (running, or ended and not yet joined)"
    );
}

#[test]
fn a_spawn_past_the_task_limit_is_a_limit_error_for_the_guest() {
    // printer's main spawns two children; with room for two tasks in all,
    // the second spawn fails and main returns that error.
    let mut m = manager_for(2);
    let program = m.load(support::guest("printer")).unwrap();
    let main = m.add(&program, "main", Vec::new()).unwrap();
    m.run().unwrap();
    assert_eq!(
        m.take_outcome(main),
        Some(Err(TaskError::Failed(
            "limit reached: the app may have at most 2 tasks (running, or ended and not yet \
             joined)"
                .into()
        )))
    );
}

#[test]
fn a_pass_gives_start_ups_a_slice_and_the_rest_wait_their_turn() {
    let mut m = manager();
    let program = m.load(support::guest("conformance")).unwrap();
    // Each start-up runs 3 ms before it ends: more than a pass's 2 ms for
    // start-ups, so each pass starts one.
    let tasks: Vec<_> = (0..4)
        .map(|_| m.add(&program, "busy", small_u64(3)).unwrap())
        .collect();
    let spare = m.add(&program, "busy", small_u64(3)).unwrap();
    assert_eq!(m.unstarted_tasks(), 5);
    m.run_next(Some(Duration::ZERO)).unwrap();
    assert_eq!(m.unstarted_tasks(), 4);
    assert_eq!(m.live_tasks(), 4, "the first ran to its end");
    // One cancelled before it ever ran is no longer waiting to start.
    m.cancel(spare);
    assert_eq!(m.unstarted_tasks(), 3);
    m.run_next(Some(Duration::ZERO)).unwrap();
    assert_eq!(m.unstarted_tasks(), 2);
    m.run().unwrap();
    assert_eq!(m.unstarted_tasks(), 0);
    for task in tasks {
        assert_eq!(m.take_outcome(task), Some(Ok(small_u64(7))));
    }
    assert_eq!(m.take_outcome(spare), Some(Err(TaskError::Cancelled)));
}

#[test]
fn a_supervised_task_is_started_again_until_its_policy_gives_up() {
    use mtask_host::{Finish, Restart, RestartPolicy};
    let mut m = manager();
    let program = m.load(support::guest("conformance")).unwrap();
    let policy = RestartPolicy {
        restart: Restart::OnFailure,
        max_restarts: 2,
        backoff: Duration::from_millis(5),
        ..RestartPolicy::default()
    };
    let supervised = m
        .add_supervised(&program, "main_traps", Vec::new(), "trapper", policy)
        .unwrap();
    let started = Instant::now();
    // `run` goes on through each back-off, until the supervisor gives up.
    m.run().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(15));
    assert_eq!(supervised.restarts(), 2);
    assert!(matches!(
        supervised.finish(),
        Some(Finish {
            outcome: Err(TaskError::Trapped(_)),
            gave_up: true
        })
    ));
    let stats = m.stats(&program);
    assert_eq!((stats.started, stats.trapped, stats.restarts), (3, 3, 2));
    // A task that succeeds is not started again on failure only.
    let ok = m
        .add_supervised(&program, "napper", small_u64(1), "napper", policy)
        .unwrap();
    m.run().unwrap();
    assert_eq!(ok.restarts(), 0);
    assert_eq!(ok.finish().map(|f| f.gave_up), Some(false));
    // An unknown entry is refused at once.
    assert!(matches!(
        m.add_supervised(&program, "nope", Vec::new(), "x", policy),
        Err(Error::UnknownEntry { .. })
    ));
}
