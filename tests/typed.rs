//! Typed entries (WIT 0.1.2): in every SDK, a spawn or join that means
//! other types than its entry's is an `invalid` error naming both, never a
//! wrong value; `--entry NAME --arg JSON` runs one entry and prints its
//! result; the embedding API sees each entry's types.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use mtask_host::{Config, Error, TaskManager};
use support::{Run, c_guest, guest, host_run, js_guest, python_guest};

/// `mtask-host run APP ARGS...`.
fn run(app: &Path, args: &[&str]) -> Run {
    let mut all: Vec<&OsStr> = vec![OsStr::new("run"), app.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    host_run(all)
}

/// The typed guest in each language.
fn typed_guests() -> [(&'static str, PathBuf); 4] {
    [
        ("rust", guest("typed")),
        ("python", python_guest("typed")),
        ("c", c_guest("typed")),
        ("js", js_guest("typed")),
    ]
}

#[test]
fn rust_spawns_and_joins_of_other_types_are_refused_naming_both() {
    let r = run(&guest("typed"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.lines(),
        [
            "text to square: invalid: entry `square` takes u64, not String",
            "square as text: invalid: entry `square` returns u64, not String",
            "u32 to square: invalid: entry `square` takes u64, not u32",
            "no such entry: invalid: no entry named `cube`: the entries are main, square, \
             greet, join_as_text (a function becomes one when it is listed in \
             `mtask::entries!`)",
            "not listed: invalid: no entry named `not_listed`: the entries are main, square, \
             greet, join_as_text (a function becomes one when it is listed in \
             `mtask::entries!`)",
            "handed over: invalid: entry `square` returns u64, not String",
            "square 7: 49",
            "square 8 (spawn_fn!): 64",
            "square 9 (call_fn!): 81",
            "greet: hello, typed",
        ]
    );
}

#[test]
fn python_spawns_of_other_types_and_wrong_results_are_refused() {
    let r = run(&python_guest("typed"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.lines(),
        [
            "text to square: invalid: entry `square` takes int, not str ('hello')",
            "square as text: invalid: entry `square` returns int, not str",
            "bool to square: invalid: entry `square` takes int, not bool (True)",
            "no such entry: invalid: no entry named `cube`: the entries are main, square, \
             total, maybe, liar, untyped (a function becomes one with `@mtask.entry`)",
            "list of text to total: invalid: entry `total` takes list[int], not list ([1, '2'])",
            "wrong result: task `liar` failed: entry `liar` returned str ('1'), not int as \
             it declares",
            "square 7: 49",
            "total: 6",
            "maybe: nothing",
            "untyped: ['any']",
        ]
    );
}

#[test]
fn c_typed_calls_of_other_types_are_refused() {
    let r = run(&c_guest("typed"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.lines(),
        [
            "text to square: invalid: entry `square` takes int, not text",
            "square as text: invalid: entry `square` returns int, not text",
            "no such entry: invalid: no entry named `cube` in MTASK_ENTRIES",
            "square 7: 49",
            "untyped 8: 64",
        ]
    );
}

#[test]
fn js_spawns_of_other_types_and_wrong_results_are_refused() {
    let r = run(&js_guest("typed"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.lines(),
        [
            "text to square: invalid: entry `square` takes number, not string (hello)",
            "square as text: invalid: entry `square` returns number, not string",
            "no such entry: invalid: no entry named `cube`: the entries are main, square, \
             maybe, liar, untyped (a function becomes one with `entry`)",
            "wrong result: task `liar` failed: entry `liar` returned string (1), not number \
             as it declares",
            "square 7: 49",
            "maybe: \"nothing\"",
            "untyped: [\"any\"]",
        ]
    );
}

#[test]
fn an_entry_runs_with_a_json_argument_and_prints_its_result() {
    for (language, app) in typed_guests() {
        let r = run(&app, &["--entry", "square", "--arg", "7"]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "49\n"),
            "{language}: {}",
            r.stderr
        );
    }
    let r = run(&guest("typed"), &["--entry", "greet", "--arg", "\"you\""]);
    assert_eq!(r.stdout, "\"hello, you\"\n", "{}", r.stderr);
    // A main task that returns nothing prints nothing more.
    let r = run(&guest("children"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.lines().last(), Some(&"caught exception: foo"));
}

#[test]
fn a_json_argument_of_another_type_is_the_entrys_error_naming_its_type() {
    let typed = guest("typed");
    let r = run(&typed, &["--entry", "square", "--arg", "\"hello\""]);
    assert_eq!(r.code, 1);
    r.assert_stderr_has(
        "main task (`square`) failed: entry `square` takes u64, and \"hello\" is not one: \
         invalid type: string \"hello\", expected u64",
    );
    let r = run(&typed, &["--entry", "square"]);
    assert_eq!(r.code, 1);
    r.assert_stderr_has("entry `square` takes u64: give it one (`--arg JSON`)");
    let r = run(&typed, &["--arg", "5"]);
    assert_eq!(r.code, 1);
    r.assert_stderr_has("entry `main` takes no argument, but was given 5");
    let r = run(
        &python_guest("typed"),
        &["--entry", "square", "--arg", "\"x\""],
    );
    assert_eq!(r.code, 1);
    r.assert_stderr_has("entry `square` takes int, not str ('x')");
    // Not JSON at all: the command line's error.
    let r = run(&typed, &["--entry", "square", "--arg", "{x"]);
    assert_eq!(r.code, 2);
    r.assert_stderr_has("invalid value '{x' for '--arg <JSON>': not JSON");
}

#[test]
fn components_that_take_no_json_say_why() {
    let r = run(&guest("legacy"), &["--arg", "1"]);
    assert_eq!(r.code, 2);
    r.assert_stderr_has(
        "legacy.wasm takes no JSON argument: it was built by an mtask SDK older than WIT 0.1.2",
    );
    let r = run(&guest("plain"), &["--arg", "1"]);
    assert_eq!(r.code, 2);
    r.assert_stderr_has("plain.wasm is a `wasi:cli` command, which takes no JSON argument");
}

#[test]
fn an_unknown_entry_is_refused_with_the_entries_and_their_types() {
    let r = run(&guest("typed"), &["--entry", "cube"]);
    assert_eq!(r.code, 2);
    r.assert_stderr_has(
        "typed.wasm has no entry `cube` (its entries: main(), square(u64) -> u64, \
         greet(String) -> String, join_as_text())",
    );
    let r = run(&python_guest("typed"), &["--entry", "cube"]);
    r.assert_stderr_has("square(int) -> int, total(list[int]) -> int,");
    let r = run(&c_guest("typed"), &["--entry", "cube"]);
    r.assert_stderr_has("(its entries: main, square(int) -> int)");
}

#[test]
fn the_embedding_api_lists_types_and_runs_an_entry_on_json() {
    let mut manager = TaskManager::new(Config {
        cache_dir: Some(support::target_dir().join("mtask-test-cache")),
        threads: 1,
        max_tasks: 16,
        ..Config::default()
    })
    .expect("manager");
    let program = manager.load(guest("typed")).expect("load");
    let square = program
        .entries()
        .iter()
        .find(|e| e.name == "square")
        .expect("square");
    assert_eq!(
        (square.arg.as_str(), square.result.as_str()),
        ("u64", "u64")
    );
    assert!(program.takes_json());
    let id = manager.add_json(&program, "square", "12").expect("add");
    manager.run().expect("run");
    assert_eq!(manager.take_outcome(id), Some(Ok(b"144".to_vec())));
    // An older component has no types, and takes no JSON.
    let legacy = manager.load(guest("legacy")).expect("load");
    assert!(legacy.entries().iter().all(|e| e.arg.is_empty()));
    match manager.add_json(&legacy, "main", "null") {
        Err(Error::NoJson { command: false, .. }) => {}
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// `cargo check` of tests/compile-fail/unlisted, with `features`.
fn check_unlisted(features: &[&str]) -> Run {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["check", "--offline", "--locked", "--quiet"])
        .args(["--target", "wasm32-wasip2", "--manifest-path"])
        .arg(root.join("compile-fail/unlisted/Cargo.toml"))
        .arg("--target-dir")
        .arg(support::target_dir().join("compile-fail"))
        .args(features);
    support::output_within_deadline(&mut cmd).into()
}

#[test]
fn spawn_fn_macro_refuses_a_function_not_listed_at_compile_time() {
    let listed = check_unlisted(&[]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let unlisted = check_unlisted(&["--features", "unlisted"]);
    assert_ne!(unlisted.code, 0);
    unlisted.assert_stderr_has("cannot find value `helper` in module `crate::__mtask_entries`");
}
