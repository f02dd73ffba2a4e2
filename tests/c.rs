//! Tasks written in C (clang, wasi-libc, wit-bindgen's C bindings, the WASI
//! adapter) against the same WIT, run by the same host: the seed's programs
//! and the C SDK's calls, checked line by line.

mod support;

use std::path::Path;

use support::{Run, c_guest, host_run};

fn run(name: &str, entry: &str) -> Run {
    host_run([
        Path::new("run"),
        Path::new("--entry"),
        Path::new(entry),
        &c_guest(name),
    ])
}

#[test]
fn c_printers_take_turns() {
    let run = run("printer", "main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["hello", "goodbye", "hello", "goodbye", "hello", "goodbye"]
    );
}

#[test]
fn c_children_return_values_and_fail() {
    let run = run("children", "main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "(no value)",
            "1",
            "(2, 3)",
            "caught exception: task `raise_exception` failed: foo",
        ]
    );
}

#[test]
fn c_values_travel_as_bytes_and_bad_entries_are_refused() {
    let run = run("c_conformance", "values");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "sleeper: ok",
            "value: slept 5 ms",
            "echo: ok",
            "echoed 5 bytes, same: yes",
            "nameless: invalid: c_conformance.wasm has no entry `no_such_entry` (invalid)",
        ]
    );
}

#[test]
fn c_join_times_out_then_cancel_ends_the_child() {
    let run = run("c_conformance", "timeouts");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "spawn: ok",
            "join for 20 ms: timeout (timeout)",
            "waited at least 20 ms: yes",
            "still held: yes",
            "join after cancel: task `sleeper` was cancelled (task cancelled)",
            "join again: invalid: the task was joined or detached already (invalid)",
        ]
    );
}

#[test]
fn c_traps_reach_the_parent_with_their_message() {
    let run = run("c_conformance", "traps");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "panics: task `panics` trapped: bad state 7 (trapped)",
            "aborts: task `aborts` trapped: wasm trap: wasm `unreachable` instruction executed (trapped)",
            "parent still runs",
        ]
    );
}

#[test]
fn c_failures_carry_their_causes_up_to_the_exit_status() {
    let run = run("c_conformance", "chain");
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim_end(),
        "mtask-host: main task (`chain`) failed: task `outer` failed: task `inner` failed: deep"
    );
}

#[test]
fn c_tasks_share_a_bounded_named_queue() {
    let run = run("c_conformance", "queues");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "open: ok",
            "spawn: ok",
            "put after close: closed (closed)",
            "summer's last get: closed (closed)",
            "join: ok",
            "sum: 55",
            "new: ok",
            "get from empty for 10 ms: timeout (timeout)",
            "len: 0",
        ]
    );
}
