//! `mtask-host serve`: tenants side by side, isolated, stopped by a signal.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{
    c_guest, connect, guest, host, host_run, python_guest, signal, spawn_listening, tenants_file,
};

/// Sends `child` (a `serve`) signal `name`, waits for it to end, and
/// asserts that it exited 0, in under 10 s; gives its stderr.
fn stop(child: std::process::Child, name: &str) -> String {
    let pid = child.id();
    let stopping = Instant::now();
    signal(pid, name);
    // The watchdog of spawn_until, or the caller's, bounds this wait.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let took = stopping.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "SIG{name}: stopped after {took:?}"
    );
    stderr
}

#[test]
fn tenants_run_side_by_side_and_stop_on_sigterm() {
    let file = tenants_file(
        "three",
        &format!(
            r#"
[host]
time_slice = "5ms"

[[tenant]]
name = "echo"
app = "{echo}"
args = ["127.0.0.1:0"]
listen = ["127.0.0.1:*"]

[[tenant]]
name = "busy"
app = "{hostile}"
entry = "spin"

[[tenant]]
name = "printer"
app = "{printer}"
"#,
            echo = guest("echo_server").display(),
            hostile = guest("hostile").display(),
            printer = guest("printer").display(),
        ),
    );
    let mut cmd = host();
    cmd.args(["serve", "--summary"])
        .arg(&file)
        .stderr(Stdio::piped());
    let (child, _stdout, addr) = spawn_listening(&mut cmd);
    // The echo tenant answers while the busy tenant spins beside it.
    let mut conn = connect(addr);
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    conn.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "echo took {:?}",
        start.elapsed()
    );

    signal(child.id(), "USR1");
    std::thread::sleep(Duration::from_millis(200));
    let stderr = stop(child, "TERM");
    // The connection ended in an orderly close: end of stream, not a
    // reset, an error or the read timing out. (From outside, a close by
    // the stop and one by the process's exit look alike.)
    match conn.read(&mut back) {
        Ok(0) => {}
        other => panic!("the connection did not end cleanly: {other:?}"),
    }
    assert!(
        stderr.contains("live tasks"),
        "SIGUSR1 lists tasks: {stderr}"
    );
    assert!(stderr.contains("`spin` of busy"), "{stderr}");
    assert!(
        stderr.contains("tenant `printer`: 3 tasks started, 3 succeeded, 0 failed, 0 trapped, 0 over a limit, 0 cancelled"),
        "{stderr}"
    );
    let printer = stderr
        .lines()
        .find(|l| l.contains("tenant `printer`"))
        .unwrap();
    let peak = support::number_after(printer, "peak memory");
    assert!(
        (1024..65536).contains(&peak),
        "three tasks of a Rust guest hold {peak} KiB: {printer}"
    );
    assert!(
        stderr.contains("tenant `busy`: 1 tasks started, 0 succeeded, 0 failed, 0 trapped, 0 over a limit, 1 cancelled"),
        "{stderr}"
    );
}

#[test]
fn one_tenants_trap_leaves_the_others_alone() {
    let file = tenants_file(
        "trap",
        &format!(
            "[[tenant]]\nname = \"bad\"\napp = \"{c}\"\nentry = \"main_traps\"\n\n\
             [[tenant]]\nname = \"good\"\napp = \"{p}\"\n",
            c = guest("conformance").display(),
            p = guest("printer").display()
        ),
    );
    // One thread, for the printers' exact order.
    let args = ["serve".into(), "--threads".into(), "1".into(), file];
    let run = host_run::<PathBuf>(args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Each line whole, after its tenant's name.
    assert_eq!(
        run.lines(),
        [
            "[good] hello",
            "[good] goodbye",
            "[good] hello",
            "[good] goodbye",
            "[good] hello",
            "[good] goodbye"
        ]
    );
    assert!(
        run.stderr
            .contains("mtask-host: tenant `bad`: main task trapped: panicked at"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_bad_tenants_file_names_the_file_the_tenant_and_the_key() {
    let file = tenants_file(
        "bad",
        "[[tenant]]\nname = \"web\"\napp = \"web.wasm\"\ncolour = \"red\"\n",
    );
    let run = host_run([PathBuf::from("serve"), file.clone()]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let expected = format!(
        "mtask-host: {}: tenant `web`: unknown field `colour`",
        file.display()
    );
    assert!(run.stderr.starts_with(&expected), "{}", run.stderr);

    let file = tenants_file(
        "missing",
        "[[tenant]]\nname = \"web\"\napp = \"nowhere.wasm\"\n",
    );
    let run = host_run([PathBuf::from("serve"), file.clone()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("tenant `web`: cannot read"),
        "{}",
        run.stderr
    );

    let run = host_run(["serve", "/no/such/tenants.toml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("mtask-host: cannot read /no/such/tenants.toml"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_example_tenants_file_is_valid() {
    // Run it with its paths pointed at the built guests, and port 7878
    // (which may be busy here) swapped for a free one.
    let text =
        std::fs::read_to_string(support::target_dir().join("../examples/tenants.toml")).unwrap();
    assert!(text.contains("[[tenant]]"));
    let file = tenants_file(
        "example",
        &text
            .replace(
                "../target/wasm32-wasip2/release/",
                &format!("{}/", guest("printer").parent().unwrap().display()),
            )
            .replace("7878", "0")
            .replace("127.0.0.1:0\"]\nmax", "127.0.0.1:*\"]\nmax"),
    );
    let mut child = host()
        .arg("serve")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    support::watchdog(child.id());
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    stop(child, "TERM");
    assert!(!first.is_empty());
}

#[test]
fn each_tenant_has_limits_of_its_own() {
    let hostile = guest("hostile");
    let file = tenants_file(
        "limits",
        &format!(
            r#"
[host]
max_sockets = 20
cpu_budget = "150ms"

[[tenant]]
name = "small"
app = "{h}"
entry = "socket_bomb_main"
listen = ["127.0.0.1:*"]
max_sockets = 5

[[tenant]]
name = "large"
app = "{h}"
entry = "socket_bomb_main"
listen = ["127.0.0.1:*"]

[[tenant]]
name = "capped"
app = "{h}"
entry = "spin"
cpu_budget = "100ms"

[[tenant]]
name = "host-capped"
app = "{h}"
entry = "spin"
"#,
            h = hostile.display()
        ),
    );
    let run = host_run([PathBuf::from("serve"), file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = support::by_label(&run.stdout);
    assert_eq!(
        lines["small"],
        [
            "opened 5 then: limit reached: the app may have at most 5 sockets open",
            "after closing: Ok(())"
        ]
    );
    assert_eq!(
        lines["large"],
        [
            "opened 20 then: limit reached: the app may have at most 20 sockets open",
            "after closing: Ok(())"
        ]
    );
    assert!(
        run.stderr.contains(
            "tenant `capped`: main task went over a limit: it used up its CPU budget of 100 ms"
        ),
        "{}",
        run.stderr
    );
    // Without a budget of its own, a tenant has [host]'s.
    assert!(
        run.stderr.contains(
            "tenant `host-capped`: main task went over a limit: it used up its CPU budget of 150 ms"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_tenant_gets_its_env_and_dirs_relative_to_the_file() {
    let file = tenants_file(
        "grants",
        &format!(
            r#"
[[tenant]]
name = "files"
app = "{c}"
entry = "files_main"
dirs = ["data::/data"]
dirs_rw = ["out::/out"]

[[tenant]]
name = "env"
app = "{c}"
entry = "print_env"
env = {{ GREETING = "hi", EMPTY = "" }}

[[tenant]]
name = "bare"
app = "{c}"
entry = "print_env"
"#,
            c = guest("conformance").display()
        ),
    );
    // The folders sit beside the file; serve runs elsewhere (in tests/).
    let root = file.parent().unwrap();
    support::files_fixture(root);
    let run = host_run([PathBuf::from("serve"), file.clone()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = support::by_label(&run.stdout);
    assert_eq!(lines["files"], support::FILES_MAIN_LINES);
    // Its variables and no others; `bare` has none, so prints nothing.
    assert_eq!(lines["env"], ["EMPTY=", "GREETING=hi"]);
    assert!(!lines.contains_key("bare"), "{}", run.stdout);
    assert_eq!(
        std::fs::read_to_string(root.join("out/new.txt")).unwrap(),
        "written"
    );
    assert!(!root.join("data/new.txt").exists());

    // A folder that is not there is named as the file means it.
    std::fs::write(
        &file,
        format!(
            "[[tenant]]\nname = \"files\"\napp = \"{}\"\ndirs = [\"nowhere::/data\"]\n",
            guest("conformance").display()
        ),
    )
    .unwrap();
    let run = host_run([PathBuf::from("serve"), file.clone()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim(),
        format!(
            "mtask-host: {}: tenant `files`: cannot read {}: No such file or directory (os \
             error 2)",
            file.display(),
            root.join("nowhere").display()
        )
    );
}

#[test]
fn sigint_stops_serve_as_sigterm_does() {
    let file = tenants_file(
        "sigint",
        &format!(
            "[[tenant]]\nname = \"echo\"\napp = \"{}\"\nargs = [\"127.0.0.1:0\"]\n\
             listen = [\"127.0.0.1:*\"]\n",
            guest("echo_server").display()
        ),
    );
    let mut cmd = host();
    cmd.arg("serve").arg(&file).stderr(Stdio::piped());
    let (child, _stdout, addr) = spawn_listening(&mut cmd);
    let mut conn = connect(addr);
    conn.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    conn.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    stop(child, "INT");
    match conn.read(&mut back) {
        Ok(0) => {}
        other => panic!("the connection did not end cleanly: {other:?}"),
    }
}

#[test]
fn tenants_in_three_languages_share_one_host() {
    let file = tenants_file(
        "languages",
        &format!(
            r#"
[[tenant]]
name = "c"
app = "{c}"

[[tenant]]
name = "python"
app = "{python}"

[[tenant]]
name = "rust"
app = "{rust}"
"#,
            c = c_guest("children").display(),
            python = python_guest("children").display(),
            rust = guest("children").display(),
        ),
    );
    let run = host_run([
        std::path::Path::new("serve"),
        &file,
        std::path::Path::new("--summary"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Every tenant printed all its lines, in its own order, each after
    // its name (the tenants' lines interleave).
    let c = ["(no value)", "1", "(2, 3)", "caught exception: foo"];
    let others = ["None", "1", "(2, 3)", "caught exception: foo"];
    let lines = support::by_label(&run.stdout);
    assert_eq!(lines["c"], c);
    assert_eq!(lines["python"], others);
    assert_eq!(lines["rust"], others);
    for tenant in ["c", "python", "rust"] {
        assert!(
            run.stderr.contains(&format!(
                "tenant `{tenant}`: 5 tasks started, 4 succeeded, 1 failed, 0 trapped"
            )),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_tenant_cannot_take_a_neighbours_task_slots_or_sockets() {
    // Each bomb spawns (or opens sockets) until refused. The pool holds the
    // sum of the tenants' shares, so each is refused at its own limit.
    let hostile = guest("hostile");
    let file = tenants_file(
        "starve",
        &format!(
            r#"
[host]
max_tasks = 2030

[[tenant]]
name = "greedy"
app = "{h}"
entry = "spawn_bomb_main"

[[tenant]]
name = "modest"
app = "{h}"
entry = "spawn_bomb_main"
max_tasks = 10

[[tenant]]
name = "greedy-sockets"
app = "{h}"
entry = "socket_bomb_main"
listen = ["127.0.0.1:*"]

[[tenant]]
name = "modest-sockets"
app = "{h}"
entry = "socket_bomb_main"
listen = ["127.0.0.1:*"]
max_sockets = 5
"#,
            h = hostile.display()
        ),
    );
    let run = host_run([PathBuf::from("serve"), file]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = support::by_label(&run.stdout);
    let tasks = |n: usize, max: usize| {
        format!(
            "spawned {n} then: limit reached: the app may have at most {max} tasks (running, \
             or ended and not yet joined)"
        )
    };
    // The greedy tenant's sockets: its share of the open files, at most 10000.
    let greedy_sockets = support::number_after(lines["greedy-sockets"][0], "opened");
    let greedy_opened = format!(
        "opened {greedy_sockets} then: limit reached: the app may have at most \
         {greedy_sockets} sockets open"
    );
    // [host] `max_tasks` is the pool: what `modest` reserves comes off it,
    // and the three others share the rest, (2030 - 10) / 3 = 673 each.
    assert_eq!(lines["greedy"], [tasks(671, 673)]);
    assert_eq!(lines["modest"], [tasks(8, 10)]);
    assert_eq!(
        lines["greedy-sockets"],
        [&greedy_opened, "after closing: Ok(())"]
    );
    assert_eq!(
        lines["modest-sockets"],
        [
            "opened 5 then: limit reached: the app may have at most 5 sockets open",
            "after closing: Ok(())",
        ]
    );
    assert!(greedy_sockets > 100, "{greedy_sockets}");
}

#[test]
fn sockets_that_cannot_fit_the_open_file_limit_are_refused_at_start() {
    let file = tenants_file(
        "files",
        &format!(
            "[[tenant]]\nname = \"huge\"\napp = \"{}\"\nmax_sockets = 100000000\n",
            guest("printer").display()
        ),
    );
    let run = host_run([PathBuf::from("serve"), file.clone()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!(
            "mtask-host: {}: the tenants may hold 100000000 open files (sockets, and a handle \
             per granted directory per task: `huge` 100000000), more than the open-file limit \
             allows (",
            file.display()
        )),
        "{}",
        run.stderr
    );
}

/// Whether process `pid` handles signal number `signal` (its SigCgt mask).
fn catches(pid: u32, signal: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

#[test]
fn signals_while_tenants_load_are_handled_not_fatal() {
    // The C tenant's start-up takes 200 ms, in its load: the signals
    // arrive while it loads.
    let slow = c_guest("slow_start");
    let file = tenants_file(
        "loading",
        &format!(
            "[[tenant]]\nname = \"slow\"\napp = \"{s}\"\nentry = \"printer\"\n\n\
             [[tenant]]\nname = \"slower\"\napp = \"{s}\"\nentry = \"printer\"\n",
            s = slow.display()
        ),
    );
    let child = host()
        .arg("serve")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    support::watchdog(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !catches(child.id(), 10) {
        assert!(Instant::now() < deadline, "SIGUSR1 is never handled");
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(child.id(), "USR1");
    let stderr = stop(child, "TERM");
    assert!(stderr.contains("live tasks"), "{stderr}");
}

#[test]
fn a_supervised_main_task_is_started_again_with_back_off_until_it_gives_up() {
    let conformance = guest("conformance");
    let file = tenants_file(
        "restart",
        &format!(
            r#"
[[tenant]]
name = "flaky"
app = "{c}"
entry = "flaky_main"
dirs_rw = ["state::/state"]
restart = "on-failure"
restart_delay = "50ms"

[[tenant]]
name = "crash"
app = "{c}"
entry = "main_traps"
restart = "on-failure"
max_restarts = 2
restart_window = "10s"
restart_delay = "20ms"

[[tenant]]
name = "again"
app = "{p}"
restart = "always"
max_restarts = 1
restart_window = "10s"
restart_delay = "10ms"

[[tenant]]
name = "once"
app = "{c}"
entry = "main_traps"
"#,
            c = conformance.display(),
            p = guest("printer").display(),
        ),
    );
    let state = file.parent().unwrap().join("state");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let started = Instant::now();
    // One thread: the printers' exact order, in each run.
    let flags = ["serve", "--summary", "--threads", "1"].map(PathBuf::from);
    let run = host_run(flags.into_iter().chain([file]));
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = support::by_label(&run.stdout);
    // Failed twice, started again after 50 ms, then 100 ms; then succeeded.
    assert_eq!(lines["flaky"], ["run 1", "run 2", "run 3"]);
    assert!(took >= Duration::from_millis(150), "{took:?}");
    let printed = ["hello", "goodbye"].repeat(3);
    assert_eq!(lines["again"], [&printed[..], &printed[..]].concat());
    let said = |text: &str| {
        assert!(
            run.stderr.contains(text),
            "`{text}` not in:\n{}",
            run.stderr
        );
    };
    said("tenant `flaky`: main task failed: invalid: run 1 fails; starting it again in 50ms");
    said("tenant `flaky`: main task failed: invalid: run 2 fails; starting it again in 100ms");
    said(
        "tenant `flaky`: 3 tasks started, 1 succeeded, 2 failed, 0 trapped, 0 over a limit, 0 cancelled, 2 restarts",
    );
    // Three runs, two restarts, then the intensity is reached.
    said("tenant `crash`: 3 tasks started, 0 succeeded, 0 failed, 3 trapped");
    said("2 restarts within 10s already: given up, it stays down");
    said("tenant `again`: main task ended; starting it again in 10ms");
    said("tenant `again`: main task ended; 1 restarts within 10s already: given up");
    // Without `restart`, a tenant runs once and its failure is said once.
    said(
        "tenant `once`: 1 tasks started, 0 succeeded, 0 failed, 1 trapped, 0 over a limit, 0 cancelled, 0 restarts",
    );
    let once: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("tenant `once`: main task"))
        .collect();
    assert!(
        matches!(&once[..], [line] if line.starts_with("mtask-host: tenant `once`: main task trapped: panicked at")),
        "{once:?}"
    );
    assert_eq!(std::fs::read_to_string(state.join("runs")).unwrap(), "3");
}

#[test]
fn a_stop_during_a_restarts_back_off_ends_serve_at_once() {
    let file = tenants_file(
        "backoff-stop",
        &format!(
            "[[tenant]]\nname = \"slow\"\napp = \"{}\"\nrestart = \"always\"\n\
             restart_delay = \"30s\"\nmax_restart_delay = \"30s\"\n",
            guest("printer").display()
        ),
    );
    let mut cmd = host();
    cmd.arg("serve").arg(&file).stderr(Stdio::piped());
    // A line of the first run; once it ends, the supervisor waits 30 s.
    let (child, _stdout, _) = support::spawn_until(&mut cmd, "goodbye");
    // The run ends within milliseconds: the supervisor is waiting by then.
    std::thread::sleep(Duration::from_millis(300));
    // Well before the 30 s are up.
    let stderr = stop(child, "TERM");
    assert!(
        stderr.contains("tenant `slow`: main task ended; starting it again in 30s"),
        "{stderr}"
    );
}

#[test]
fn a_tenants_own_time_slice_is_how_long_its_tasks_run_unpreempted() {
    // One thread shared by a spinning tenant and a ticking one: the
    // spinner's tasks run 100 ms slices, so the ticker (every 10 ms) waits
    // most of one at some wake. With the host's 10 ms slice it waits about
    // 10 ms (tests/shards.rs).
    let file = tenants_file(
        "slices",
        &format!(
            r#"
[[tenant]]
name = "busy"
app = "{h}"
entry = "spin"
time_slice = "100ms"
cpu_budget = "700ms"

[[tenant]]
name = "ticker"
app = "{b}"
entry = "ticker_main"
args = ["10", "40"]
"#,
            h = guest("hostile").display(),
            b = guest("bench").display(),
        ),
    );
    let flags = ["serve", "--threads", "1"].map(PathBuf::from);
    let run = host_run(flags.into_iter().chain([file]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = support::by_label(&run.stdout);
    let late = support::number_after(lines["ticker"][0], "wakes, latest");
    assert!(
        late >= 50_000,
        "with a 100 ms slice beside it, the ticker was at worst {late} us late"
    );
    assert!(
        run.stderr
            .contains("tenant `busy`: main task went over a limit"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_tenant_can_watch_and_link_to_its_own_tasks_only() {
    // Two tenants of the same component, each probing the first 100 ids.
    let tenant = |name: &str| {
        format!(
            "[[tenant]]\nname = \"{name}\"\napp = \"{}\"\nentry = \"probe_main\"\n",
            guest("conformance").display()
        )
    };
    let file = tenants_file("probe", &format!("{}{}", tenant("a"), tenant("b")));
    let run = host_run([std::ffi::OsString::from("serve"), file.into_os_string()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut lines = run.lines();
    lines.sort();
    assert_eq!(
        lines,
        [
            "[a] only its own child: true",
            "[b] only its own child: true"
        ]
    );
}
