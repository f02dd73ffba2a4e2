//! Child tasks: results, error chains, traps, cancel, detach, handoff
//! (docs/design.md §4 rows 6–8, 12 and 14).

mod support;

use support::{run_entry, run_in_order};

#[test]
fn children_return_values_and_raise_errors_to_the_parent() {
    // Row 6 and 7 with the seed's own parent/child program.
    let run = run_entry("children", "main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["None", "1", "(2, 3)", "caught exception: foo"]
    );
}

#[test]
fn printer_example_alternates_hello_and_goodbye() {
    let run = run_in_order("printer", "main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["hello", "goodbye", "hello", "goodbye", "hello", "goodbye"]
    );
}

#[test]
fn errors_keep_their_causes_through_three_levels() {
    let run = run_entry("conformance", "chain_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["task `level1` failed: task `level2` failed: task `level3` failed: foo"]
    );
}

#[test]
fn a_trap_or_panic_in_a_child_reaches_the_parent_with_a_backtrace() {
    let run = run_entry("conformance", "trap_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = &run.stdout;
    let panic = out
        .find("panicker trapped: panicked at")
        .expect("panic reported with its message");
    let trap = out
        .find("trapper trapped: wasm trap: wasm `unreachable` instruction executed")
        .expect("trap reported");
    assert!(panic < trap);
    assert!(
        out[panic..trap].contains("boom at depth 3"),
        "panic message missing:\n{out}"
    );
    assert!(
        out[panic..trap].contains("wasm backtrace:"),
        "no backtrace:\n{out}"
    );
    assert!(
        out[panic..trap].contains("conformance::panicker"),
        "backtrace lacks the function:\n{out}"
    );
    assert!(
        out[trap..].contains("std::process::abort") || out[trap..].contains("process::abort"),
        "{out}"
    );
    assert!(
        out.ends_with("parent still running\n"),
        "the parent did not go on:\n{out}"
    );
}

#[test]
fn cancel_ends_sleeping_and_spinning_children_but_not_ended_ones() {
    let run = run_entry("conformance", "cancel_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            r#"sleeper: Err(Task { entry: "napper", error: Cancelled })"#,
            r#"spinner: Err(Task { entry: "spinner", error: Cancelled })"#,
            "ended: Ok(0)",
        ]
    );
}

#[test]
fn a_detached_childs_failure_is_reported_and_the_others_go_on() {
    // Rows 8 and 12: nobody joins `fail_later`, so its error goes to
    // stderr; `late_printer` still runs after main ended; exit 0.
    let run = run_entry("conformance", "detached_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["main done", "still running"]);
    // One line, with the host's prefix like every other line it writes.
    let line = run.stderr.trim_end();
    assert!(
        line.starts_with("mtask-host: task ")
            && line.ends_with(" (`fail_later`) failed: detached failure"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_failed_main_task_exits_1_after_the_others_finish() {
    let run = run_entry("conformance", "main_fails");
    assert_eq!(run.code, 1);
    assert_eq!(run.lines(), ["still running"]);
    assert_eq!(
        run.stderr.trim(),
        "mtask-host: main task (`main_fails`) failed: main broke"
    );
}

#[test]
fn a_trapping_main_task_exits_1_with_message_and_backtrace() {
    let run = run_entry("conformance", "main_traps");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .starts_with("mtask-host: main task (`main_traps`) trapped: panicked at"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("main panicked"), "{}", run.stderr);
    assert!(run.stderr.contains("wasm backtrace:"), "{}", run.stderr);
}

#[test]
fn a_task_handle_moves_to_a_child_at_spawn() {
    let run = run_entry("conformance", "handoff_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["relay returned 11"]);
}

#[test]
fn entries_spawned_by_function_get_their_own_types() {
    let run = run_entry("conformance", "typed_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "square: 49",
            "greet: hello from a typed child",
            "typed",
            "typed",
            "not_an_entry: invalid: no entry named `not_an_entry`: the entries are read_stdin, \
             count_stdin, stdin_ticker, print_env, order_main, printer, starve_main, spinner, \
             … (a function becomes one when it is listed in `mtask::entries!`)",
        ]
    );
}

#[test]
fn misuse_gets_error_values() {
    let run = run_entry("conformance", "misuse_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "spawn: invalid: no entry named `no_such_entry`: the entries are read_stdin, \
             count_stdin, stdin_ticker, print_env, order_main, printer, starve_main, spinner, \
             … (a function becomes one when it is listed in `mtask::entries!`)",
            "first join: Ok(0)",
            r#"second join: Err(Invalid("this task was joined already"))"#,
            "ids distinct: true",
        ]
    );
}

#[test]
fn a_monitor_says_how_a_task_ended_and_takes_nothing() {
    // WIT 0.1.3. Ids: main 1, `fail_later` 2, the watcher 3, ...
    let run = run_entry("conformance", "monitor_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            r#"watcher: Ok("Err(Failed(\"detached failure\"))")"#,
            r#"joined: Err(Task { entry: "fail_later", error: Failed("detached failure") })"#,
            r#"early: Err("TaskMonitor::wait_timeout timed out after 5ms")"#,
            "later: Ok(()), again: Ok(())",
            "joined: Ok(50)",
            "ended: Ok(())",
            "taken: invalid: this app has no task 5 now (never started, or ended and its result taken)",
            "self: invalid: a task cannot watch itself",
        ]
    );
    // The watched failure was joined: nothing for stderr.
    assert_eq!(run.stderr, "");
}

#[test]
fn a_task_linked_to_one_that_fails_is_cancelled() {
    let run = run_entry("conformance", "link_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            r#"linked to a failure: Err(Task { entry: "linked_sleeper", error: Cancelled })"#,
            r#"linked to a success: Ok("slept")"#,
            r#"linked to a failed one: Err(Task { entry: "linked_sleeper", error: Cancelled })"#,
            "unknown: invalid: this app has no task 18446744073709551615 now (never started, or ended and its result taken)",
        ]
    );
}

#[test]
fn cancel_leaves_a_childs_children_running_and_cancel_tree_ends_them() {
    for threads in ["1", "2"] {
        let run = support::run_guest("conformance", "tree_main", &["--threads", threads], &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            run.lines(),
            [
                r#"cancel: Err(Task { entry: "tree_parent", error: Cancelled })"#,
                r#"its child, 50 ms on: Err("TaskMonitor::wait_timeout timed out after 50ms")"#,
                "its child, at its end: Ok(())",
                r#"cancel_tree: Err(Task { entry: "tree_parent", error: Cancelled })"#,
                "its child: Ok(Err(Cancelled))",
            ],
            "with {threads} threads"
        );
    }
}

#[test]
fn a_chain_of_20000_links_is_cancelled_whole_and_the_host_lives() {
    // One thread: the chain is on one shard, where a recursive cancel
    // would overflow the thread's stack (it did, before `tell` looped).
    let run = support::run_guest(
        "conformance",
        "link_chain_main",
        &["--threads", "1", "--arg", "20000"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            r#"head: Err("task `fail_on_go` failed: the head fails")"#,
            "cancelled: 20000 of 20000",
        ]
    );
}
