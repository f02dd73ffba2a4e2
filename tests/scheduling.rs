//! The scheduling rules of docs/design.md §4 (rows 1–5), each checked on the
//! exact order or timing a real guest observes under the real host.

mod support;

use support::{number_after, run_entry};

#[test]
fn yield_interleaves_tasks_in_fifo_order() {
    // Row 1: three printers that yield print 1,2,3,1,2,3,...
    let run = support::run_in_order("conformance", "order_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["1", "2", "3", "1", "2", "3", "1", "2", "3"]);
}

#[test]
fn a_task_that_keeps_yielding_does_not_starve_a_sleeper() {
    // Row 2: timers are collected between passes.
    let run = run_entry("conformance", "starve_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    let slept = number_after(lines[0], "slept");
    assert!(
        (20..200).contains(&slept),
        "slept {slept} ms for a 20 ms sleep"
    );
    assert_eq!(lines[1], "spinner cancelled");
}

#[test]
fn an_end_and_a_deadline_in_the_same_pass_resolve_to_the_end() {
    // Row 3: the child ends (after 30 ms of busy work, within one time
    // slice) past the join's 10 ms deadline, before the parent runs again:
    // the join succeeds.
    let run = support::run_guest("conformance", "race_main", &["--time-slice", "1s"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["joined 7"]);
}

#[test]
fn a_timed_out_join_has_no_effect_and_counts_from_the_call() {
    // Rows 4, 5 and 14: the guest busy-waits 20 ms before joining with a
    // 15 ms timeout; the timeout counts from the call, and the child, which
    // naps 60 ms, can be joined afterwards.
    let run = run_entry("conformance", "timeout_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    let waited = number_after(lines[0], "timeout after");
    assert!(
        (15..150).contains(&waited),
        "timed out after {waited} ms, not 15"
    );
    assert_eq!(lines[1], "joined 60");
}

#[test]
fn blocking_wasi_sleeps_suspend_only_their_task() {
    // 20 tasks each call std::thread::sleep(50 ms): they sleep together.
    let run = run_entry("conformance", "std_sleepers_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let took = number_after(&run.stdout, "took");
    assert!(
        (50..250).contains(&took),
        "20 parallel 50 ms sleeps took {took} ms"
    );
}

#[test]
fn sleepers_wake_in_deadline_order() {
    let run = run_entry("sleepers", "main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let naps: Vec<u64> = run
        .lines()
        .iter()
        .take(4)
        .map(|l| number_after(l, "woke after"))
        .collect();
    assert_eq!(naps, [10, 20, 30, 40]);
    let total = number_after(run.lines()[4], "slept in");
    assert!(
        (40..240).contains(&total),
        "naps of at most 40 ms took {total} ms"
    );
}

#[test]
fn a_slow_start_up_does_not_use_up_the_first_slice() {
    // Row 15's slice counts from the end of a task's start-up, which is not
    // preempted: `hello`, whose 200 ms start-up is followed by 5 ms of work
    // before its first line, still prints first. (Counted from the poll's
    // start, it was preempted at once and `goodbye` went first.)
    let app = support::c_guest("slow_start");
    let run = support::host_run([
        std::path::Path::new("run"),
        std::path::Path::new("--time-slice"),
        std::path::Path::new("100ms"),
        std::path::Path::new("--threads"),
        std::path::Path::new("1"),
        &app,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["hello", "goodbye", "hello", "goodbye", "hello", "goodbye"]
    );
}
