//! `mtask-host run`: exit codes, one-line errors for unusable files, flags.

mod support;

use std::path::{Path, PathBuf};

use support::{Run, guest, host_run, run_entry, run_guest};

/// A fresh directory under target/ for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = support::target_dir()
        .join("cli-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mtask-host run <app>`.
fn run(app: &Path) -> Run {
    host_run([Path::new("run"), app])
}

/// `mtask-host run -v --cache-dir <cache> printer.wasm`.
fn run_cached(cache: &Path) -> Run {
    host_run([
        Path::new("run"),
        Path::new("-v"),
        Path::new("--cache-dir"),
        cache,
        &guest("printer"),
    ])
}

/// Asserts exit 2 and a one-line message containing `expected`.
fn assert_unusable(app: &Path, expected: &str) -> Run {
    let run = run(app);
    assert_eq!(run.code, 2, "stderr: {}", run.stderr);
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "not one line: {}",
        run.stderr
    );
    assert!(run.stderr.starts_with("mtask-host: "), "{}", run.stderr);
    assert!(
        run.stderr.contains(expected),
        "expected `{expected}` in: {}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
    run
}

#[test]
fn a_missing_file_is_named() {
    assert_unusable(&scratch("missing").join("nope.wasm"), "cannot read");
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let path = scratch("notwasm").join("app.wasm");
    std::fs::write(&path, "#!/bin/sh\necho not wasm\n").unwrap();
    assert_unusable(&path, "app.wasm is not a WebAssembly file");
}

#[test]
fn a_core_module_is_refused_with_advice() {
    let path = scratch("core").join("core.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    assert_unusable(
        &path,
        "core.wasm is a core WebAssembly module, not a component",
    );
}

#[test]
fn a_broken_component_is_refused() {
    let path = scratch("broken").join("broken.wasm");
    std::fs::write(&path, b"\0asm\x0d\0\x01\0\x07\xff\xff\xffgarbage").unwrap();
    assert_unusable(&path, "broken.wasm is not a valid component");
}

#[test]
fn a_component_with_imports_the_host_lacks_is_refused() {
    let run = assert_unusable(
        &guest("foreign"),
        "foreign.wasm needs an import that mtask-host does not provide",
    );
    assert!(
        run.stderr.contains("mtask:foreign/missing"),
        "the import is not named: {}",
        run.stderr
    );
}

#[test]
fn a_plain_wasi_command_is_not_a_task() {
    assert_unusable(&guest("plain"), "plain.wasm is not an mtask task");
}

#[test]
fn a_component_that_uses_the_scheduler_while_starting_is_refused() {
    let run = assert_unusable(&guest("early"), "early.wasm failed to start");
    assert!(
        run.stderr
            .contains("mtask calls are not available while a component starts"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unknown_entry_is_refused_with_the_list() {
    let run = run_entry("printer", "nope");
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr.trim(),
        "mtask-host: printer.wasm has no entry `nope` (its entries: main, printer)"
    );
}

#[test]
fn usage_errors_exit_2() {
    let run = host_run(["run"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("Usage"), "{}", run.stderr);
    let run = host_run([
        Path::new("run"),
        Path::new("--max-memory"),
        Path::new("lots"),
        &guest("printer"),
    ]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("is not a size like 64MiB"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_documents_every_flag() {
    let run = host_run(["run", "--help"]);
    assert_eq!(run.code, 0);
    for flag in [
        "--entry",
        "--max-tasks",
        "--max-memory",
        "--cache-dir",
        "--no-cache",
        "--max-queue-bytes",
        "--time-slice",
        "--cpu-budget",
        "--listen",
        "--connect",
        "--verbose",
        "[ARGS]",
        "Exits 0",
    ] {
        assert!(
            run.stdout.contains(flag),
            "`{flag}` missing from help:\n{}",
            run.stdout
        );
    }
}

#[test]
fn guest_args_follow_the_double_dash() {
    let run = run_guest("conformance", "echo_args", &[], &["a", "-b"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), [r#"args: ["conformance.wasm", "a", "-b"]"#]);
}

#[test]
fn a_second_run_takes_compiled_code_from_the_cache() {
    let cache = scratch("cache");
    let first = run_cached(&cache);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stderr.contains("printer.wasm compiled in"),
        "{}",
        first.stderr
    );
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        1,
        "one cache entry expected"
    );
    let second = run_cached(&cache);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("printer.wasm loaded from the cache in"),
        "{}",
        second.stderr
    );
    assert_eq!(first.stdout, second.stdout);
    let fresh = host_run([
        Path::new("run"),
        Path::new("-v"),
        Path::new("--no-cache"),
        &guest("printer"),
    ]);
    assert!(
        fresh.stderr.contains("printer.wasm compiled in"),
        "{}",
        fresh.stderr
    );
}

#[test]
fn a_corrupt_cache_entry_is_recompiled() {
    let cache = scratch("corrupt");
    assert_eq!(run_cached(&cache).code, 0);
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&entry, b"not compiled code").unwrap();
    let run = run_cached(&cache);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("printer.wasm compiled in"),
        "{}",
        run.stderr
    );
    assert_eq!(run.lines().len(), 6);
}
