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
    // One thread: the printers' order is compared between runs.
    host_run([
        Path::new("run"),
        Path::new("--threads"),
        Path::new("1"),
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
fn a_device_or_a_directory_is_refused_without_reading_it() {
    // /dev/zero never ends: it was once read until memory ran out.
    assert_unusable(
        Path::new("/dev/zero"),
        "/dev/zero is not a regular file (a component is a .wasm file)",
    );
    assert_unusable(&scratch("dir"), "is not a regular file");
    // A named pipe would wait for a writer forever if it were opened.
    let fifo = scratch("fifo").join("app.wasm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    assert_unusable(&fifo, "app.wasm is not a regular file");
}

#[test]
fn a_file_larger_than_any_component_is_refused_without_reading_it() {
    let path = scratch("huge").join("huge.wasm");
    // Sparse: 600 MiB on paper, nothing on disk.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(600 << 20)
        .unwrap();
    assert_unusable(
        &path,
        "huge.wasm is 600 MiB; a component may be at most 512 MiB",
    );
}

#[test]
fn absurd_sizes_name_the_flag() {
    let refused = |flags: &[&str], expected: &str| {
        let mut args = vec!["run"];
        args.extend(flags);
        let printer = guest("printer");
        args.push(printer.to_str().unwrap());
        let run = host_run(&args);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert_eq!(run.stderr, format!("mtask-host: {expected}\n"));
    };
    refused(
        &["--max-memory", "1000000GiB"],
        "--max-memory 976 TiB is more than a wasm32 task can address (4 GiB)",
    );
    refused(
        &["--max-memory", "1000"],
        "--max-memory 1000 bytes is less than one wasm page (64 KiB)",
    );
    refused(
        &["--max-tasks", "4294967295"],
        "--max-tasks 4294967295 tasks with --max-memory 64 MiB each need 516 PiB of address \
         space; the pool may reserve at most 64 TiB: lower one of them",
    );
    refused(
        &["--max-sockets", "100000000"],
        &format!(
            "--max-sockets 100000000 is more than the open-file limit allows ({}, less 64 for \
             the host): lower it, or raise the limit (ulimit -Hn)",
            hard_open_files()
        ),
    );
    // Queue bytes are bytes: a small figure is a small limit, not an error.
    let run = host_run([
        Path::new("run"),
        Path::new("--max-queue-bytes"),
        Path::new("1000"),
        &guest("printer"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// The hard limit on open files, which the host raises its own to.
fn hard_open_files() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
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
fn a_plain_wasi_command_runs_as_one_task_with_its_args_env_and_status() {
    let run = run_guest("plain", "main", &["--env", "GREETING=hi"], &["a", "b c"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "hello from a plain command",
            r#"args: ["a", "b c"]"#,
            r#"GREETING: Some("hi")"#
        ]
    );
    assert_eq!(run.stderr, "");
    // Its exit status is mtask-host's, with nothing added. (WASI 0.2's
    // `exit` says success or failure: Rust's `exit(3)` is a failure, 1.)
    let exited = run_guest("plain", "main", &[], &["exit", "3"]);
    assert_eq!(exited.code, 1, "{}", exited.stderr);
    assert_eq!(exited.stdout, "exiting with 3\n");
    assert_eq!(exited.stderr, "");
    let zero = run_guest("plain", "main", &[], &["exit", "0"]);
    assert_eq!(zero.code, 0, "{}", zero.stderr);
    // A command has one entry.
    let other = run_guest("plain", "other", &[], &[]);
    assert_eq!(other.code, 2);
    other.assert_stderr_has("no entry `other`");
}

#[test]
fn a_plain_wasi_command_is_sandboxed_like_any_task() {
    let dir = support::target_dir().join("plain-sandbox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("note.txt"), "hello").unwrap();
    let note = dir.join("note.txt");
    let path = note.to_str().unwrap();
    // No directory granted: the file does not exist for it.
    let denied = run_guest("plain", "main", &[], &["read", path]);
    assert_eq!(denied.code, 0, "{}", denied.stderr);
    assert_eq!(denied.stdout, format!("cannot read {path}: NotFound\n"));
    let granted = run_guest(
        "plain",
        "main",
        &["--dir", dir.to_str().unwrap()],
        &["read", path],
    );
    assert_eq!(granted.stdout, "read 5 bytes\n", "{}", granted.stderr);
    // Its memory is held to --max-memory like a task's.
    let small = run_guest("plain", "main", &["--max-memory", "64KiB"], &[]);
    assert_eq!(small.code, 1, "{}", small.stderr);
    assert!(small.stderr.contains("limit"), "{}", small.stderr);
}

#[test]
fn a_component_that_exports_nothing_is_told_to_list_its_entries() {
    assert_unusable(
        &guest("noentries"),
        "noentries.wasm cannot run: it exports nothing: a task built with the mtask SDK \
         lists its entry functions with `mtask::entries!(...)`",
    );
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
        "mtask-host: printer.wasm has no entry `nope` (its entries: main(), printer((String, u32)))"
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
    run.assert_stderr_has("is not a size like 64MiB");
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
        "--max-app-memory",
        "--max-sockets",
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
fn a_damaged_entry_list_is_not_used_and_is_written_again() {
    let cache = scratch("entry-list");
    let first = run_cached(&cache);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let list = only_entry(&cache).with_extension("entries");
    let kept = std::fs::read_to_string(&list).unwrap();
    assert!(kept.lines().skip(1).any(|l| l == "main\t()\t()"), "{kept}");
    // A name changed: the list's digest no longer matches it.
    std::fs::write(&list, kept.replace("main", "mian")).unwrap();
    let second = run_cached(&cache);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(std::fs::read_to_string(&list).unwrap(), kept);
    // A list of names alone, as hosts before WIT 0.1.2 kept it, whole:
    // listed again too, for the types.
    let names = "main\nprinter";
    let old = format!("{}\n{names}", blake3::hash(names.as_bytes()).to_hex());
    std::fs::write(&list, old).unwrap();
    let second = run_cached(&cache);
    assert_eq!(second.code, 0, "{}", second.stderr);
    second.assert_stderr_has("printer.wasm loaded from the cache in");
    assert_eq!(first.stdout, second.stdout);
    assert_eq!(std::fs::read_to_string(&list).unwrap(), kept);
}

#[test]
fn a_second_run_takes_compiled_code_from_the_cache() {
    let cache = scratch("cache");
    let first = run_cached(&cache);
    assert_eq!(first.code, 0, "{}", first.stderr);
    first.assert_stderr_has("printer.wasm compiled in");
    only_entry(&cache);
    let second = run_cached(&cache);
    assert_eq!(second.code, 0, "{}", second.stderr);
    second.assert_stderr_has("printer.wasm loaded from the cache in");
    assert_eq!(first.stdout, second.stdout);
    let fresh = host_run([
        Path::new("run"),
        Path::new("-v"),
        Path::new("--no-cache"),
        &guest("printer"),
    ]);
    fresh.assert_stderr_has("printer.wasm compiled in");
}

/// The one entry in `cache` (NAME.cwasm, with its digest in NAME.blake3,
/// its entry list in NAME.entries, its compile lock NAME.lock, and nothing
/// else beside it).
fn only_entry(cache: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let entry = files[0].with_extension("cwasm");
    let expected: Vec<PathBuf> = ["blake3", "cwasm", "entries", "lock"]
        .iter()
        .map(|ext| entry.with_extension(ext))
        .collect();
    assert_eq!(files, expected, "one entry and its files expected");
    entry
}

/// Damages the cache entry in `cache` with `damage`, then checks that the
/// next run compiles again, says why under -v, runs correctly, and leaves
/// a good entry that the run after loads.
fn assert_damage_is_repaired(name: &str, damage: impl Fn(&mut Vec<u8>), why: &str) {
    let cache = scratch(name);
    let good = run_cached(&cache);
    assert_eq!(good.code, 0, "{}", good.stderr);
    let entry = only_entry(&cache);
    let mut bytes = std::fs::read(&entry).unwrap();
    damage(&mut bytes);
    std::fs::write(&entry, &bytes).unwrap();
    let run = run_cached(&cache);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, good.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "mtask-host: cache entry {} was not used ({why}); compiled again",
            entry.display()
        )
    );
    assert!(
        lines[1].contains("printer.wasm compiled in"),
        "{}",
        run.stderr
    );
    let again = run_cached(&cache);
    assert!(
        again
            .stderr
            .contains("printer.wasm loaded from the cache in"),
        "the entry was replaced: {}",
        again.stderr
    );
    assert_eq!(only_entry(&cache), entry);
}

#[test]
fn a_cache_entry_with_flipped_code_bits_is_compiled_again() {
    // The header stays intact; bits flip in the middle of the compiled
    // code, which would run (or crash the host) if it were loaded.
    assert_damage_is_repaired(
        "flipped",
        |bytes| {
            let middle = bytes.len() / 2;
            for b in &mut bytes[middle..middle + 64] {
                *b ^= 0xff;
            }
        },
        "its checksum does not match: it is corrupt",
    );
}

#[test]
fn a_truncated_or_foreign_cache_entry_is_compiled_again() {
    assert_damage_is_repaired(
        "truncated",
        |bytes| bytes.truncate(bytes.len() - 100),
        "its checksum does not match: it is corrupt",
    );
    assert_damage_is_repaired(
        "foreign",
        |bytes| *bytes = b"not compiled code".to_vec(),
        "its checksum does not match: it is corrupt",
    );
}

#[test]
fn a_cache_entry_without_its_checksum_is_compiled_again() {
    let cache = scratch("unchecked");
    assert_eq!(run_cached(&cache).code, 0);
    let entry = only_entry(&cache);
    std::fs::remove_file(entry.with_extension("blake3")).unwrap();
    let run = run_cached(&cache);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!(
            "mtask-host: cache entry {} was not used (it has no checksum beside it); compiled \
             again",
            entry.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(only_entry(&cache), entry, "the checksum is back");
}

#[test]
fn the_cache_directory_is_made_private_and_refused_when_others_can_write_it() {
    use std::os::unix::fs::PermissionsExt;
    let root = scratch("private");
    let cache = root.join("new").join("cache");
    assert_eq!(run_cached(&cache).code, 0);
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "made private");

    let shared = root.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Said on every run, not only under -v: the operator must fix it.
    let run = host_run([
        Path::new("run"),
        Path::new("--cache-dir"),
        &shared,
        &guest("printer"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr,
        format!(
            "mtask-host: not using the cache directory {}: others may write {} (mode 777); \
             make it private with chmod go-w\n",
            shared.display(),
            shared.display()
        )
    );
    assert_eq!(run.lines().len(), 6, "it ran all the same");
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count(),
        0,
        "nothing stored"
    );
}

#[test]
fn no_cache_compiles_and_writes_nothing() {
    let dir = scratch("nocache").join("cache");
    let mut cmd = support::host();
    cmd.env("MTASK_CACHE_DIR", &dir)
        .args(["run", "-v", "--no-cache"])
        .arg(guest("printer"));
    let run: Run = support::output_within_deadline(&mut cmd).into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stderr_has("printer.wasm compiled in");
    assert!(!dir.exists(), "--no-cache created {}", dir.display());
}

#[test]
fn serve_help_says_what_tenants_get() {
    let run = host_run(["serve", "--help"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for text in [
        "tenants.toml",
        "reserved",
        "SIGTERM",
        "SIGUSR1",
        "--summary",
    ] {
        assert!(
            run.stdout.contains(text),
            "`{text}` missing:\n{}",
            run.stdout
        );
    }
}

#[test]
fn env_gives_tasks_the_variables_named_and_no_others() {
    let app = guest("conformance");
    let mut cmd = support::host();
    cmd.args(["run", "--entry", "print_env"])
        .args(["--env", "GREETING=hello=world", "--env", "EMPTY="])
        .args(["--env", "FROM_HOST", "--env-inherit", "ALSO_FROM_HOST"])
        .args(["--env", "GREETING=hi"])
        .arg(&app)
        .env("FROM_HOST", "one")
        .env("ALSO_FROM_HOST", "two")
        .env("NOT_PASSED", "secret");
    let run: Run = support::output_within_deadline(&mut cmd).into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "ALSO_FROM_HOST=two",
            "EMPTY=",
            "FROM_HOST=one",
            "GREETING=hi"
        ]
    );

    // Without flags, a task sees no variable at all.
    let bare = run_guest("conformance", "print_env", &[], &[]);
    assert_eq!(bare.code, 0, "{}", bare.stderr);
    assert_eq!(bare.stdout, "");
}

#[test]
fn env_names_that_cannot_be_given_are_refused_at_start() {
    let refused = |flags: &[&str], expected: &str| {
        let run = run_guest("conformance", "print_env", flags, &[]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains(expected), "{}", run.stderr);
    };
    refused(&["--env", "=x"], "a variable's name cannot be empty");
    refused(
        &["--env-inherit", "A=B"],
        "a variable's name cannot contain `=`",
    );
    refused(
        &["--env", "MTASK_TEST_SURELY_UNSET"],
        "mtask-host: --env MTASK_TEST_SURELY_UNSET: mtask-host's environment has no \
         `MTASK_TEST_SURELY_UNSET` to pass on",
    );
}

#[test]
fn compile_fills_the_cache_that_run_then_starts_from() {
    let cache = support::target_dir()
        .join("compile-cache")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&cache);
    let printer = guest("printer");
    let compile = || {
        host_run([
            Path::new("compile"),
            Path::new("--cache-dir"),
            &cache,
            &printer,
        ])
    };
    let first = compile();
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first
            .stdout
            .contains("printer.wasm: compiled into the cache"),
        "{}",
        first.stdout
    );
    let again = compile();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("printer.wasm: already in the cache"),
        "{}",
        again.stdout
    );
    let run = host_run([
        Path::new("run"),
        Path::new("-v"),
        Path::new("--cache-dir"),
        &cache,
        &printer,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stderr_has("printer.wasm loaded from the cache");
    // Code compiled for other settings is another entry: a run with
    // preemption off compiles again.
    let other = host_run([
        Path::new("run"),
        Path::new("-v"),
        Path::new("--no-preempt"),
        Path::new("--cache-dir"),
        &cache,
        &printer,
    ]);
    other.assert_stderr_has("printer.wasm compiled in");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn compile_refuses_what_is_not_a_component() {
    let cache = support::target_dir().join("compile-cache-refused");
    let not_wasm = support::target_dir().join("not-a-component.wasm");
    std::fs::write(&not_wasm, "hello").unwrap();
    let run = host_run([
        Path::new("compile"),
        Path::new("--cache-dir"),
        &cache,
        &not_wasm,
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("mtask-host: not-a-component.wasm is not"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_main_task_reads_stdin_to_its_end_while_the_others_run() {
    use std::io::{BufRead, Read, Write};
    let app = guest("conformance");
    let mut child = support::host()
        .args(["run", "--entry", "read_stdin"])
        .arg(&app)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A watchdog: the test fails rather than hangs (told when the host
    // has ended, so that it never signals a reused pid).
    let pid = child.id();
    let (ended, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_err()
        {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    });
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    // A child has no stdin: it reads nothing, and leaves it all to main,
    // which then starts reading.
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "child read 0 bytes\n");
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"first\n").unwrap();
    input.flush().unwrap();
    // While the main task waits for more, its ticker keeps ticking.
    std::thread::sleep(std::time::Duration::from_millis(300));
    input.write_all(b"second\n").unwrap();
    drop(input);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let _ = ended.send(());
    watchdog.join().unwrap();
    assert!(status.success(), "{status:?}: {rest}");
    let lines: Vec<&str> = rest.lines().collect();
    let at = |text: &str| lines.iter().position(|l| *l == text).expect(text);
    let (first, second, eof) = (at("got first"), at("got second"), at("eof"));
    assert!(first < second && second < eof, "{rest}");
    let ticks = lines[first..second]
        .iter()
        .filter(|l| **l == "tick")
        .count();
    assert!(ticks >= 3, "{ticks} ticks while main waited:\n{rest}");
}

#[test]
fn the_main_task_reads_a_file_given_as_stdin() {
    let input = support::target_dir().join("stdin-input.txt");
    std::fs::write(&input, "one\ntwo\nthree").unwrap();
    let app = guest("conformance");
    let mut cmd = support::host();
    cmd.args(["run", "--entry", "read_stdin"]).arg(&app);
    let file = std::fs::File::open(&input).unwrap();
    let run: Run = support::output_within_deadline_from(&mut cmd, file.into()).into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got: Vec<_> = run.lines().into_iter().filter(|l| *l != "tick").collect();
    assert_eq!(
        got,
        [
            "child read 0 bytes",
            "got one",
            "got two",
            "got three",
            "eof"
        ]
    );
}

#[test]
fn a_component_built_for_wit_0_1_0_still_runs() {
    let app = guest("legacy");
    // It imports the interfaces at 0.1.0, and the host defines 0.1.1.
    let bytes = std::fs::read(&app).unwrap();
    let imports = |version: &str| {
        let name = format!("mtask:task/tasks@{version}");
        bytes.windows(name.len()).any(|w| w == name.as_bytes())
    };
    assert!(imports("0.1.0") && !imports("0.1.1"));
    let r = run(&app);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "child said: from 0.1.0\n");
}

#[test]
fn without_preemption_a_busy_task_holds_its_neighbour_up() {
    // In this file, not sandbox.rs: its compile without epoch checks would
    // load the machine under that file's timing tests. One thread, so
    // that the two tasks share it. A task busy for 300 ms is cut
    // into slices; with --no-preempt it runs them all at once.
    let preempted = run_guest("hostile", "busy_main", &support::ONE_THREAD, &[]);
    assert_eq!(preempted.code, 0, "{}", preempted.stderr);
    let on_time = support::number_after(preempted.lines()[0], "worst lateness");
    assert!(on_time < 50, "preempted, it was {on_time} ms late");
    assert_eq!(preempted.lines()[1], "busy: done");
    let mut flags = support::ONE_THREAD.to_vec();
    flags.push("--no-preempt");
    let held = run_guest("hostile", "busy_main", &flags, &[]);
    assert_eq!(held.code, 0, "{}", held.stderr);
    assert_eq!(held.lines()[1], "busy: done");
    let worst = support::number_after(held.lines()[0], "worst lateness");
    assert!(
        (250..1000).contains(&worst),
        "without preemption the steady task was {worst} ms late: {}",
        held.stdout
    );
}
