//! Helpers shared by the end-to-end tests: where the guests and the host
//! binary are, and a way to run `mtask-host` and read what it printed.

#![allow(dead_code)] // each test file uses its own share of these

pub mod nats;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

/// The workspace's `target/` directory.
pub fn target_dir() -> PathBuf {
    // The test binary lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// A guest component built by `just guests`.
pub fn guest(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `just guests` (or `just test`) first",
        path.display()
    );
    path
}

/// A Python guest built by `just python-guests`.
pub fn python_guest(name: &str) -> PathBuf {
    foreign_guest("python", name)
}

/// A JavaScript guest built by `just js-guests`.
pub fn js_guest(name: &str) -> PathBuf {
    foreign_guest("js", name)
}

/// A C guest built by `just c-guests`.
pub fn c_guest(name: &str) -> PathBuf {
    foreign_guest("c", name)
}

/// `target/LANGUAGE/NAME.wasm`, built by `just LANGUAGE-guests`.
fn foreign_guest(language: &str, name: &str) -> PathBuf {
    let path = target_dir().join(language).join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `just {language}-guests` (or `just test`) first",
        path.display()
    );
    path
}

/// The `mtask-host` binary of the profile the tests were built with.
pub fn host_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("profile dir")
        .join("mtask-host");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p mtask-host`",
        path.display()
    );
    path
}

/// What one run of `mtask-host` did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    /// Stderr without [`Run::progress`]'s lines.
    pub stderr: String,
    /// The host's "compiling ... (this may take a while)" lines. A compile
    /// announces itself only when it is slow, which depends on whether
    /// another test filled the shared cache first, so tests that match
    /// stderr exactly see it apart.
    pub progress: Vec<String>,
}

impl Run {
    /// Stdout as lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts that stderr says `text`, showing all of it if not.
    #[track_caller]
    pub fn assert_stderr_has(&self, text: &str) {
        assert!(
            self.stderr.contains(text),
            "{text:?} not in: {}",
            self.stderr
        );
    }
}

/// How the host's progress line ends (host/src/cli/progress.rs).
const PROGRESS_END: &str = " (this may take a while)";

impl Run {
    /// A run that exited with `code` after printing `stdout` and `stderr`;
    /// the progress lines are taken out of `stderr`.
    pub fn new(code: i32, stdout: String, stderr: &str) -> Run {
        let (progress, rest): (Vec<&str>, Vec<&str>) =
            stderr.split_inclusive('\n').partition(|line| {
                line.starts_with("mtask-host: ") && line.trim_end().ends_with(PROGRESS_END)
            });
        Run {
            code,
            stdout,
            stderr: rest.concat(),
            progress: progress.iter().map(|l| l.trim_end().to_string()).collect(),
        }
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run::new(
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            &String::from_utf8_lossy(&out.stderr),
        )
    }
}

/// A command for `mtask-host` with the tests' shared code cache, and
/// without tiered compilation: every test but those of tiering itself
/// (tests/tiering.rs) runs Cranelift's code, whichever test compiled it.
pub fn host() -> Command {
    let mut cmd = Command::new(host_binary());
    // The host's log as a newcomer sees it, whatever the caller's RUST_LOG.
    cmd.env_remove("RUST_LOG");
    cmd.env("MTASK_CACHE_DIR", target_dir().join("mtask-test-cache"))
        .env("MTASK_NO_TIERING", "1");
    cmd
}

/// How long one run of `mtask-host` in a test may take before the test
/// kills it and fails, instead of hanging the suite.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `cmd` to its end, like `Command::output`, but kills it and panics
/// past [`RUN_DEADLINE`].
pub fn output_within_deadline(cmd: &mut Command) -> Output {
    output_within_deadline_from(cmd, Stdio::null())
}

/// [`output_within_deadline`], with `stdin` as the child's stdin.
pub fn output_within_deadline_from(cmd: &mut Command, stdin: Stdio) -> Output {
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mtask-host");
    // Read both pipes beside the wait, so a chatty child never blocks.
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mtask-host") {
            break status;
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mtask-host did not finish within {RUN_DEADLINE:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs `mtask-host` with `args` and waits for it (at most [`RUN_DEADLINE`]).
pub fn host_run<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    output_within_deadline(host().args(args)).into()
}

/// Runs `mtask-host run --entry <entry> [flags...] <guest> -- [args...]`.
pub fn run_guest(guest_name: &str, entry: &str, flags: &[&str], args: &[&str]) -> Run {
    let app = guest(guest_name);
    let mut cmd = host();
    cmd.args(["run", "--entry", entry])
        .args(flags)
        .arg(app)
        .arg("--")
        .args(args);
    output_within_deadline(&mut cmd).into()
}

/// Runs `mtask-host run --entry <entry> <guest>`.
pub fn run_entry(guest_name: &str, entry: &str) -> Run {
    let guest = guest(guest_name);
    host_run([
        OsStr::new("run"),
        OsStr::new("--entry"),
        OsStr::new(entry),
        guest.as_os_str(),
    ])
}

/// The flags that pin a run to one scheduler thread, where tasks step in
/// multitask's exact order (docs/design.md §4): tests of that order use them.
pub const ONE_THREAD: [&str; 2] = ["--threads", "1"];

/// Runs `mtask-host run --threads 1 --entry <entry> <guest>`: for a test
/// of multitask's exact order.
pub fn run_in_order(guest_name: &str, entry: &str) -> Run {
    run_guest(guest_name, entry, &ONE_THREAD, &[])
}

/// Starts `cmd` with stdout piped and reads up to its `listening on ADDR`
/// line; returns the child, the rest of its stdout, and ADDR.
pub fn spawn_listening(cmd: &mut Command) -> (Child, BufReader<ChildStdout>, SocketAddr) {
    let (child, stdout, lines) = spawn_until(cmd, "listening on ");
    let line = lines.last().expect("the listening line");
    let addr = unlabelled(line.trim())
        .strip_prefix("listening on ")
        .expect("read up to it");
    (child, stdout, addr.parse().expect("a socket address"))
}

/// Starts `cmd` with stdout piped and reads its lines up to the first that
/// starts with `prefix`; returns the child, the rest of its stdout, and the
/// lines read (the last is that one).
// The child goes back to the caller, who waits for it; the lint cannot see
// through the return.
#[allow(clippy::zombie_processes)]
pub fn spawn_until(
    cmd: &mut Command,
    prefix: &str,
) -> (Child, BufReader<ChildStdout>, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("start mtask-host");
    watchdog(child.id());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            let status = child.wait();
            panic!("it ended before printing `{prefix}`: {status:?}, after {lines:?}");
        }
        // `serve` labels each line with its tenant.
        let found = unlabelled(&line).starts_with(prefix);
        lines.push(line.trim_end().to_string());
        if found {
            return (child, stdout, lines);
        }
    }
}

/// Kills `mtask-host` process `pid` if it still runs after
/// [`RUN_DEADLINE`]: a test reading its output then sees the end of it and
/// fails, instead of hanging the suite.
pub fn watchdog(pid: u32) {
    std::thread::spawn(move || {
        std::thread::sleep(RUN_DEADLINE);
        // Only that process: its id is not reused while it is a zombie of
        // ours, and a reused id would not be mtask-host's.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("mtask-host") {
            eprintln!("mtask-host (pid {pid}) still ran after {RUN_DEADLINE:?}: killed");
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
}

/// The most memory process `pid` has had resident (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("a VmHWM line");
    number_after(line, "VmHWM:") >> 10
}

/// A connection to `addr` whose reads fail after 10 s instead of hanging
/// the suite if the server misbehaves.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// The next connection to `listener`, or a panic after [`RUN_DEADLINE`]
/// (a guest that never connects must not hang the suite). The connection
/// blocks, with reads that fail after 10 s.
pub fn accept(listener: &std::net::TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let started = std::time::Instant::now();
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                return conn;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    started.elapsed() < RUN_DEADLINE,
                    "no connection within {RUN_DEADLINE:?}"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// The first number in `line` after `prefix`.
pub fn number_after(line: &str, prefix: &str) -> u64 {
    let rest = line
        .split_once(prefix)
        .unwrap_or_else(|| panic!("`{prefix}` not in `{line}`"))
        .1;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after `{prefix}` in `{line}`"))
}

/// Runs a UDP echo app (`app -- ADDRESS 2`, printing `listening on ADDR`
/// and at the end `echoed 2 datagrams`), sends it two datagrams from a
/// native socket and checks that each comes back whole from that address.
pub fn assert_udp_echo_serves_two_datagrams(app: &Path) {
    assert_udp_entry_serves_two_datagrams(app, "main");
}

/// [`assert_udp_echo_serves_two_datagrams`] for the app's entry `entry`.
pub fn assert_udp_entry_serves_two_datagrams(app: &Path, entry: &str) {
    let mut cmd = host();
    cmd.args(["run", "--listen", "127.0.0.1:*", "--connect", "127.0.0.1:*"])
        .args(["--entry", entry])
        .arg(app)
        .args(["--", "127.0.0.1:0", "2"]);
    let (mut child, mut stdout, addr) = spawn_listening(&mut cmd);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for text in [&b"one datagram"[..], b"another"] {
        client.send_to(text, addr).unwrap();
        let mut back = [0u8; 64];
        let (n, from) = client.recv_from(&mut back).unwrap();
        assert_eq!((&back[..n], from), (text, addr));
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(rest, "echoed 2 datagrams\n");
}

/// Starts an echo app (`cmd`, printing `listening on ADDR`) that answers a
/// connection once the peer shuts its side, sends it a line from a native
/// client, checks the answer and the app's exit; gives the rest of its
/// stdout.
pub fn assert_echoes_until_shutdown(cmd: &mut Command) -> String {
    let (mut child, mut stdout, addr) = spawn_listening(cmd);
    let mut conn = connect(addr);
    std::io::Write::write_all(&mut conn, b"hello from a native client").unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut conn, &mut back).unwrap();
    assert_eq!(String::from_utf8_lossy(&back), "hello from a native client");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest}");
    rest
}

/// Sends process `pid` the signal `name` (`TERM`, `HUP`, ...).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Writes `text` to a fresh tenants file (in a folder named after `name`
/// and this process).
pub fn tenants_file(name: &str, text: &str) -> PathBuf {
    let dir = target_dir()
        .join("serve-scratch")
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The lines of `serve`'s stdout, by the label each starts with
/// (`[tenant] line`), each tenant's in its order. Panics on a line without
/// a label.
pub fn by_label(stdout: &str) -> std::collections::BTreeMap<&str, Vec<&str>> {
    let mut tenants = std::collections::BTreeMap::<&str, Vec<&str>>::new();
    for line in stdout.lines() {
        let (label, text) = line
            .strip_prefix('[')
            .and_then(|rest| rest.split_once("] "))
            .unwrap_or_else(|| panic!("a line without a label: {line:?} in\n{stdout}"));
        tenants.entry(label).or_default().push(text);
    }
    tenants
}

/// A line of `serve`'s stdout without its `[tenant] ` label.
pub fn unlabelled(line: &str) -> &str {
    line.strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
        .map_or(line, |(_, text)| text)
}

/// What the conformance guest's `files_main` prints given
/// [`files_fixture`]'s `data` read-only at `/data` and `out` writable at
/// `/out`: the grants work, and every way out of them fails.
pub const FILES_MAIN_LINES: [&str; 6] = [
    "read: ok hello",
    "dotdot: error PermissionDenied",
    "symlink: error PermissionDenied",
    "absolute: error NotFound",
    "write ro: error PermissionDenied",
    "write rw: ok ",
];

/// Makes, in `root`, the folders `files_main` is run with: `data` (with
/// `hello.txt`, and `link` to `../secret.txt` beside it) and an empty `out`.
pub fn files_fixture(root: &Path) {
    let _ = std::fs::remove_dir_all(root.join("data"));
    let _ = std::fs::remove_dir_all(root.join("out"));
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::fs::create_dir_all(root.join("out")).unwrap();
    std::fs::write(root.join("data/hello.txt"), "hello").unwrap();
    std::fs::write(root.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("data/link")).unwrap();
}
