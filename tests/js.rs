//! Tasks written in JavaScript (componentize-qjs, QuickJS) against the same
//! WIT, run by the same host: the seed's programs, its echo server, errors
//! and the compiled-code cache; the SDK's queues, timeouts and UDP
//! (tests/js-guests/conformance).

mod support;

use std::io::{Read, Write};
use std::path::Path;

use support::{Run, connect, host, host_run, js_guest, spawn_listening};

/// Runs a JavaScript example with `flags`.
fn run(name: &str, flags: &[&str]) -> Run {
    let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
    args.extend(flags.iter().map(|f| f.into()));
    args.push(js_guest(name).into());
    host_run(args)
}

#[test]
fn js_printers_take_turns_line_by_line() {
    let run = run("printer", &support::ONE_THREAD);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["hello", "goodbye", "hello", "goodbye", "hello", "goodbye"]
    );
}

#[test]
fn js_children_return_values_and_throw_as_the_seeds_did() {
    let run = run("children", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["None", "1", "(2, 3)", "caught exception: foo"]
    );
}

#[test]
fn js_echo_server_serves_native_clients() {
    let mut cmd = host();
    cmd.args(["run", "--listen", "127.0.0.1:*"])
        .arg(js_guest("echo_server"))
        .args(["--", "127.0.0.1:0", "2"]);
    let (mut child, mut stdout, addr) = spawn_listening(&mut cmd);
    // Two at once: each has a task of its own.
    let mut first = connect(addr);
    let mut second = connect(addr);
    for (conn, text) in [(&mut second, "second ✓"), (&mut first, "first")] {
        conn.write_all(text.as_bytes()).unwrap();
        let mut back = vec![0u8; text.len()];
        conn.read_exact(&mut back).unwrap();
        assert_eq!(String::from_utf8(back).unwrap(), text);
    }
    drop((first, second));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(rest, "served 2 connections\n");
}

#[test]
fn a_js_host_error_is_an_exception_and_an_uncaught_one_fails_the_task() {
    // Without a --listen rule the bind throws MtaskError (`denied`), which
    // main does not catch: the task fails with that message.
    let run = run("echo_server", &[]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("denied: binding 127.0.0.1:7878 is not allowed (no --listen rule grants it)"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn a_js_component_is_compiled_once_then_starts_from_the_cache() {
    let cache = support::target_dir()
        .join("js-cache")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&cache);
    let app = js_guest("printer");
    let compile = host_run([Path::new("compile"), Path::new("--cache-dir"), &cache, &app]);
    assert_eq!(compile.code, 0, "{}", compile.stderr);
    let cached = host_run([
        Path::new("run"),
        Path::new("-v"),
        Path::new("--cache-dir"),
        &cache,
        &app,
    ]);
    assert_eq!(cached.code, 0, "{}", cached.stderr);
    cached.assert_stderr_has("printer.wasm loaded from the cache in");
    assert_eq!(cached.lines().len(), 6);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn js_monitors_links_and_cancel_tree() {
    let mut cmd = host();
    cmd.args(["run", "--entry", "watch"])
        .arg(js_guest("conformance"));
    let run: support::Run = support::output_within_deadline(&mut cmd).into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "early: Timeout timeout",
            "monitor: failed: on purpose",
            "join still sees it: TaskFailed failed",
            "a success: null",
            "itself: MtaskError invalid",
            "linked: TaskFailed cancelled",
            "cancelTree: its child cancelled",
        ]
    );
}

#[test]
fn js_queues_timeouts_udp_and_typed_errors_behave_as_in_the_other_sdks() {
    let run = run(
        "conformance",
        &["--listen", "127.0.0.1:*", "--connect", "127.0.0.1:*"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            r#"fifo [1,"two",{"three":3}] left 0"#,
            "empty get: Timeout timeout, waited long enough",
            "full put: Timeout timeout",
            r#"tagged [7,"urgent item"] then plain"#,
            "from child 42",
            "closed get: Closed closed",
            "join: Timeout timeout",
            "after cancel: TaskFailed cancelled",
            "failed child: TaskFailed failed",
            "unknown entry: MtaskError invalid",
            "udp ping from a: true, reply ping back",
            "udp recv: Timeout timeout",
        ]
    );
}

#[test]
fn a_js_socket_without_a_rule_is_denied() {
    let run = run("conformance", &["--entry", "denied"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["bind: MtaskError denied"]);
}
