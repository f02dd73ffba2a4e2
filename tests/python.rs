//! Tasks written in Python (componentize-py) against the same WIT, run by
//! the same host: the seed's programs and its echo server.

mod support;

use std::io::{Read, Write};
use std::path::Path;

use support::{Run, connect, host, host_run, python_guest, spawn_listening};

/// Runs a Python example. A long time slice keeps a slow step (this
/// machine may be busy) from being preempted, which would reorder output.
fn run(name: &str) -> Run {
    host_run([
        Path::new("run"),
        Path::new("--time-slice"),
        Path::new("1s"),
        &python_guest(name),
    ])
}

/// [`run`] on one scheduler thread, for multitask's exact order.
fn run_in_order(name: &str) -> Run {
    host_run([
        Path::new("run"),
        Path::new("--time-slice"),
        Path::new("1s"),
        Path::new("--threads"),
        Path::new("1"),
        &python_guest(name),
    ])
}

#[test]
fn python_printers_take_turns_line_by_line() {
    // The SDK buffers stdout by line, so a print reaches the host whole.
    let run = run_in_order("printer");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["hello", "goodbye", "hello", "goodbye", "hello", "goodbye"]
    );
}

#[test]
fn python_children_return_values_and_raise() {
    let run = run("children");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["None", "1", "(2, 3)", "caught exception: foo"]
    );
}

#[test]
fn python_echo_server_serves_a_native_client() {
    let mut cmd = host();
    cmd.args(["run", "--listen", "127.0.0.1:*"])
        .arg(python_guest("echo_server"))
        .args(["--", "127.0.0.1:0", "1"]);
    let (mut child, mut stdout, addr) = spawn_listening(&mut cmd);
    let mut conn = connect(addr);
    conn.write_all(b"hello from rust").unwrap();
    let mut back = [0u8; 15];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello from rust");
    drop(conn);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(rest, "served 1 connections\n");
}

#[test]
fn pythons_own_socket_module_echoes_beside_a_sleeping_ticker() {
    let mut cmd = host();
    cmd.args(["run", "--threads", "1", "--listen", "127.0.0.1:*"])
        .arg(python_guest("std_socket"))
        .args(["--", "127.0.0.1:0", "1"]);
    // The native client connects at once; the ticker (25 sleeps of 20 ms
    // in `time.sleep`) runs on while the server task blocks in accept and
    // recv on the same thread.
    let rest = support::assert_echoes_until_shutdown(&mut cmd);
    let lines: Vec<_> = rest.lines().collect();
    assert_eq!(lines[0], "echoed 1 connections", "{rest}");
    assert!(lines[1].starts_with("ticker: 25 ticks, at most "), "{rest}");
    assert!(support::number_after(lines[1], "at most") < 150, "{rest}");

    // Without a rule, Python's bind is refused with PermissionError.
    let run = run("std_socket");
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("PermissionError"), "{}", run.stderr);
}

#[test]
fn a_python_component_is_compiled_once() {
    // The shared test cache may hold it already; a cache of its own shows
    // both the first (compiling) and the second (cached) start.
    let cache = support::target_dir()
        .join("python-cache")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&cache);
    let app = python_guest("printer");
    let once = || -> Run {
        host_run([
            Path::new("run"),
            Path::new("-v"),
            Path::new("--cache-dir"),
            &cache,
            &app,
        ])
    };
    let first = once();
    first.assert_stderr_has("printer.wasm compiled in");
    let second = once();
    second.assert_stderr_has("printer.wasm loaded from the cache in");
    // A compile that takes seconds is announced (stderr is a pipe here:
    // one line).
    assert!(
        matches!(&first.progress[..], [line] if line.starts_with("mtask-host: compiling ")
            && line.ends_with("printer.wasm (this may take a while)")),
        "{:?}",
        first.progress
    );
    assert!(second.progress.is_empty(), "{:?}", second.progress);
    let ms = |run: &Run| {
        let line = run.stderr.lines().find(|l| l.contains(" in ")).unwrap();
        support::number_after(line, " in ")
    };
    // `-v`'s "ran in" is the run's own time, not the compile's too.
    let ran = |run: &Run| {
        let line = run.stderr.lines().find(|l| l.contains("ran in ")).unwrap();
        support::number_after(line, "ran in ")
    };
    assert!(
        ran(&first) * 2 < ms(&first),
        "ran in {} ms, compiled in {} ms: {}",
        ran(&first),
        ms(&first),
        first.stderr
    );
    assert!(
        ms(&second) * 5 < ms(&first),
        "cached start {} ms vs first {} ms",
        ms(&second),
        ms(&first)
    );
    // Both ran to the end (their order under the default slice is not
    // this test's concern).
    for run in [first, second] {
        let mut lines = run.lines();
        lines.sort();
        assert_eq!(
            lines,
            ["goodbye"; 3]
                .iter()
                .chain(&["hello"; 3])
                .copied()
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn python_udp_echo_answers_a_native_client() {
    support::assert_udp_echo_serves_two_datagrams(&python_guest("udp_echo"));
}

#[test]
fn python_children_placed_anywhere_run_on_another_host() {
    let nats = support::nats::NatsServer::start();
    let app = python_guest("spread");
    let url = nats.url();
    let worker = support::nats::Worker::start(&nats, &app, &[]);
    // The parent's host runs none of them: each child crosses to the worker.
    let parent = host_run([
        Path::new("run"),
        Path::new("--cluster"),
        Path::new(&url),
        Path::new("--cluster-jobs"),
        Path::new("0"),
        &app,
    ]);
    drop(worker);
    assert_eq!(parent.code, 0, "{}", parent.stderr);
    assert_eq!(
        parent.lines(),
        [
            "squares: [1, 4, 9, 16]",
            "keys: every child has one",
            "my key: None"
        ]
    );
}

/// Runs `entry` of the Python SDK's conformance guest.
fn conformance(entry: &str) -> Run {
    host_run([
        Path::new("run"),
        Path::new("--entry"),
        Path::new(entry),
        &python_guest("conformance"),
    ])
}

#[test]
fn python_queues_keep_order_time_out_naming_the_call_and_close() {
    let run = conformance("queues");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "full: Queue.put timed out after 0.01 s (call Queue.put)",
            "got 1 2 left 0",
            "empty: Queue.get timed out after 0.01 s",
            "tagged (1, 'a') (2, 'b')",
            "child took {'from': 'parent'}",
            "put after close: closed",
            "get after close: last",
            "drained: closed",
        ]
    );
}

#[test]
fn python_monitors_links_and_cancel_tree() {
    let run = conformance("watch");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "early: TaskMonitor.wait timed out after 0.001 s",
            "monitor: failed: on purpose",
            "join still sees it: failed",
            "a success: None slept 0.01 s",
            "itself: invalid",
            "linked: cancelled",
            "its failure still joined: failed",
            "cancel_tree: its child cancelled",
        ]
    );
}

#[test]
fn python_cancel_ends_a_child_and_join_waits_with_a_timeout() {
    let run = conformance("cancel");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["cancelled: cancelled (task `sleeper` cancelled)"]
    );
    let run = conformance("join_timeout");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "not yet: Task.join timed out after 0.01 s",
            "then: slept 0.1 s"
        ]
    );
}
