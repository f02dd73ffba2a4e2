//! Tasks written in C (clang, wasi-libc, wit-bindgen's C bindings, the WASI
//! adapter) against the same WIT, run by the same host: the seed's programs
//! and the C SDK's calls, checked line by line.

mod support;

use std::io::{Read, Write};
use std::path::Path;

use support::{Run, c_guest, connect, host, host_run, spawn_listening};

/// `mtask-host run --entry ENTRY target/c/NAME.wasm`.
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
    let run = host_run([
        Path::new("run"),
        Path::new("--threads"),
        Path::new("1"),
        &c_guest("printer"),
    ]);
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
        ["(no value)", "1", "(2, 3)", "caught exception: foo",]
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
            "join for 20 ms: timeout: mtask_join timed out after 20 ms (timeout)",
            "waited at least 20 ms: yes",
            "still held: yes",
            "join after cancel: task `sleeper` was cancelled (task cancelled)",
            "join again: invalid: the task was joined or detached already (invalid)",
        ]
    );
}

#[test]
fn c_monitors_links_and_cancel_tree() {
    let run = run("c_conformance", "watch");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "monitor: ok",
            "wait: task `#2` failed: deep (failed)",
            "wait again: task `#2` failed: deep (failed)",
            "closed: invalid: the monitor was closed (invalid)",
            "join: task `inner` failed: deep (failed)",
            "taken: invalid: this app has no task 2 now (never started, or ended and its result taken) (invalid)",
            "linked: task `linked` was cancelled (task cancelled)",
            "link to itself: invalid: a task cannot watch itself (invalid)",
            "cancel_tree: task `tree` was cancelled (task cancelled)",
            "its child: task `#6` was cancelled (task cancelled)",
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
            "get from empty for 10 ms: timeout: mtask_queue_get timed out after 10 ms (timeout)",
            "len: 0",
        ]
    );
}

#[test]
fn c_handles_move_to_a_child_at_spawn() {
    let run = run("c_conformance", "handover");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "new: ok",
            "put: ok",
            "parent's handle after giving: 0",
            "spawn with the queue: ok",
            "give it twice: invalid: handle 0 was given already or never open (invalid)",
            "take a stream at 0: invalid: no handle of that kind at 0 (invalid)",
            "take the queue at 0: ok",
            "take it again: invalid: no handle of that kind at 0 (invalid)",
            "join: ok",
            "child got: ping",
        ]
    );
}

#[test]
fn c_sockets_are_denied_unless_granted_and_args_arrive() {
    let run = host_run([
        Path::new("run"),
        Path::new("--entry"),
        Path::new("sockets"),
        &c_guest("c_conformance"),
        Path::new("--"),
        Path::new("one"),
        Path::new("two words"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(
        lines[0].starts_with("listen: denied: ") && lines[0].contains("127.0.0.1:0"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("connect: denied: ") && lines[1].contains("127.0.0.1:9"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2..], ["arg 1: one", "arg 2: two words"]);
}

#[test]
fn c_echo_server_serves_a_native_client() {
    let mut cmd = host();
    cmd.args(["run", "--listen", "127.0.0.1:*"])
        .arg(c_guest("echo_server"))
        .args(["--", "127.0.0.1:0", "2"]);
    let (mut child, mut stdout, addr) = spawn_listening(&mut cmd);
    // Two clients at once: each is served by a task of its own.
    let mut first = connect(addr);
    let mut second = connect(addr);
    for (conn, text) in [(&mut second, &b"second"[..]), (&mut first, &b"first!"[..])] {
        conn.write_all(text).unwrap();
        let mut back = [0u8; 6];
        conn.read_exact(&mut back).unwrap();
        assert_eq!(&back, text);
    }
    drop(first);
    drop(second);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(rest, "served 2 connections\n");
}

#[test]
fn c_libc_sleep_suspends_only_its_task() {
    let run = run("c_conformance", "libc_sleep");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert_eq!(lines[..10], ["napper: ok"; 10]);
    assert_eq!(lines[10..], ["all slept at once: yes"], "{}", run.stdout);
}

#[test]
fn c_udp_echo_answers_a_native_client() {
    support::assert_udp_echo_serves_two_datagrams(&c_guest("udp_echo"));
}

#[test]
fn c_children_placed_anywhere_run_on_another_host_of_the_cluster() {
    let nats = support::nats::NatsServer::start();
    let app = c_guest("c_conformance");
    let url = nats.url();
    let worker = support::nats::Worker::start(&nats, &app, &["--env", "HOST=B"]);
    // The parent's host runs none of them: each child crosses to the worker.
    let flags = ["--cluster", &url, "--cluster-jobs", "0", "--env", "HOST=A"];
    let cluster = host_run(
        ["run", "--entry", "anywhere"]
            .iter()
            .chain(&flags)
            .map(Path::new)
            .chain([app.as_path()]),
    );
    drop(worker);
    assert_eq!(cluster.code, 0, "{}", cluster.stderr);
    assert_eq!(
        cluster.lines(),
        [
            "child ran on B keyed",
            "child ran on B keyed",
            "my key: none"
        ]
    );
    // Outside a cluster, the same code runs its children here.
    let alone = run("c_conformance", "anywhere");
    assert_eq!(alone.code, 0, "{}", alone.stderr);
    assert_eq!(
        alone.lines(),
        [
            "child ran on ? unkeyed",
            "child ran on ? unkeyed",
            "my key: none"
        ]
    );
}

#[test]
fn c_detached_children_run_on_and_their_failures_are_reported() {
    let run = run("c_conformance", "detached");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "child spawned",
            "after detach: id 0",
            "detached child ran",
            "main done"
        ]
    );
    // Nobody joins the failing child, so the host says how it ended.
    let reported: Vec<&str> = run.stderr.lines().collect();
    assert!(
        matches!(&reported[..], [line] if line.starts_with("mtask-host: task ")
            && line.ends_with(" (`inner`) failed: deep")),
        "{}",
        run.stderr
    );
}

#[test]
fn c_shutdown_send_ends_the_peers_reads_and_keeps_the_answer_coming() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let mut conn = support::accept(&listener);
        // The end of the stream comes only from the guest's shutdown.
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        conn.write_all(format!("you sent {got:?}").as_bytes())
            .unwrap();
        got
    });
    let run = host_run([
        Path::new("run"),
        Path::new("--entry"),
        Path::new("half_close"),
        Path::new("--connect"),
        Path::new(&addr),
        &c_guest("c_conformance"),
        Path::new("--"),
        Path::new(&addr),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(peer.join().unwrap(), "hello from C");
    let lines = run.lines();
    assert_eq!(lines[..2], ["send: ok", "shutdown: ok"], "{}", run.stdout);
    assert!(
        lines[2].starts_with("send after shutdown: ") && lines[2] != "send after shutdown: ok",
        "{}",
        run.stdout
    );
    assert_eq!(lines[3..], ["answer: you sent \"hello from C\""]);
}
