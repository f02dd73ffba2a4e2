//! `mtask-host serve` reloads its tenants file (SIGHUP, `--watch`): new
//! tenants start, removed ones stop, changed ones switch to their new
//! version with no connection refused, and a bad file changes nothing.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{guest, host, signal, unlabelled, watchdog};

/// A `serve` under test, its stdout and stderr read line by line.
struct Serve {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line seen so far.
    said: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn start(file: &Path, flags: &[&str]) -> Serve {
        let mut child = host()
            .arg("serve")
            .args(flags)
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mtask-host serve");
        watchdog(child.id());
        let said = Arc::new(Mutex::new(Vec::new()));
        let lines = |pipe: Box<dyn Read + Send>, keep: Option<Arc<Mutex<Vec<String>>>>| {
            let (tx, rx) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if let Some(keep) = &keep {
                        keep.lock().unwrap().push(line.clone());
                    }
                    let _ = tx.send(line);
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()), None);
        let stderr = lines(Box::new(child.stderr.take().unwrap()), Some(said.clone()));
        Serve {
            child,
            stdout,
            stderr,
            said,
        }
    }

    /// Waits (up to 60 s) for a line of `from` that contains `text`.
    fn wait_for(from: &Receiver<String>, text: &str, said: &Mutex<Vec<String>>) -> String {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match from.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {text:?}; stderr: {:?}", said.lock().unwrap()),
            }
        }
    }

    fn stdout_line(&self, text: &str) -> String {
        Self::wait_for(&self.stdout, text, &self.said)
    }

    fn stderr_line(&self, text: &str) -> String {
        Self::wait_for(&self.stderr, text, &self.said)
    }

    /// Sends SIGHUP and waits for the reload's verdict on stderr.
    fn reload(&self) -> String {
        signal(self.child.id(), "HUP");
        self.stderr_line("reload")
    }

    /// SIGTERM; asserts exit 0; gives every stderr line.
    fn stop(mut self) -> Vec<String> {
        signal(self.child.id(), "TERM");
        let status = self.child.wait().unwrap();
        // The reader threads end with the pipes.
        while self.stderr.recv_timeout(Duration::from_secs(5)).is_ok() {}
        let said = self.said.lock().unwrap().clone();
        assert_eq!(status.code(), Some(0), "{said:?}");
        said
    }
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

/// A `[[tenant]]` running the echo server on `port`, with `extra` keys.
fn echo_tenant(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
[[tenant]]
name = "{name}"
app = "{app}"
args = ["127.0.0.1:{port}"]
listen = ["127.0.0.1:{port}"]
{extra}
"#,
        app = guest("echo_server").display()
    )
}

/// One round trip of 64 bytes on a new connection.
fn echo_once(addr: SocketAddr) -> std::io::Result<()> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = [7u8; 64];
    conn.write_all(&request)?;
    let mut reply = [0u8; 64];
    conn.read_exact(&mut reply)?;
    assert_eq!(reply, request);
    Ok(())
}

/// Round trips on a kept connection: `Ok(false)` once the host closed it.
fn echo_on(conn: &mut TcpStream) -> std::io::Result<bool> {
    conn.write_all(b"still there?")?;
    let mut reply = [0u8; 12];
    match conn.read(&mut reply)? {
        0 => Ok(false),
        _ => Ok(true),
    }
}

/// Replaces `file` with `text` at once (a watcher never sees half of it).
fn write(file: &Path, text: &str) {
    let next = file.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, file).unwrap();
}

#[test]
fn a_changed_app_takes_over_its_listener_and_refuses_no_connection() {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let version = |v: u32| {
        echo_tenant(
            "echo",
            port,
            &format!("env = {{ VERSION = \"{v}\" }}\ndrain_grace = \"2s\""),
        )
    };
    let file = support::tenants_file("reload-handover", &version(1));
    let serve = Serve::start(&file, &[]);
    serve.stdout_line("listening on");
    // A connection the first version serves, kept across the reloads.
    let mut kept = TcpStream::connect(addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(echo_on(&mut kept).unwrap());
    // Clients that connect all along, each connection a round trip.
    let done = Arc::new(AtomicBool::new(false));
    let (served, failed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (done, served, failed) = (done.clone(), served.clone(), failed.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    match echo_once(addr) {
                        Ok(()) => served.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            failed.lock().unwrap().push(e.to_string());
                            0
                        }
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for v in 2..=4 {
        let before = served.load(Ordering::SeqCst);
        write(&file, &version(v));
        let verdict = serve.reload();
        assert!(verdict.contains("replaced echo; 0 unchanged"), "{verdict}");
        serve.stdout_line("listening on");
        // The clients go on being served by the new version.
        let end = Instant::now() + Duration::from_secs(10);
        while served.load(Ordering::SeqCst) < before + 50 {
            assert!(
                Instant::now() < end,
                "no connection served after reload {v}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // The first version still serves the kept connection, within its grace.
    assert!(echo_on(&mut kept).unwrap(), "the old version dropped it");
    done.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    let total = served.load(Ordering::SeqCst);
    let first: Vec<_> = failed.iter().take(5).collect();
    assert!(
        failed.is_empty(),
        "{} of {total} failed, first {first:?}",
        failed.len()
    );
    assert!(total >= 200, "only {total} connections served");
    // Past the grace, what is left of the old versions is cancelled.
    serve.stderr_line("tasks of the old version cancelled after the 2s grace period");
    assert!(
        !echo_on(&mut kept).unwrap_or(false),
        "the kept one outlived its grace"
    );
    echo_once(addr).expect("the last version serves");
    let said = serve.stop();
    let refused = said.iter().filter(|l| l.contains("refused")).count();
    assert_eq!(refused, 0, "{said:?}");
}

#[test]
fn a_reload_starts_new_tenants_stops_removed_ones_and_refuses_a_bad_file() {
    let [p, q, r] = [free_port(), free_port(), free_port()];
    let at = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().unwrap() };
    let host_table = "[host]\nmax_tasks = 3000\n";
    let keep = echo_tenant("keep", p, "");
    let gone = echo_tenant("gone", q, "drain_grace = \"1s\"");
    let file = support::tenants_file("reload-roster", &format!("{host_table}{keep}{gone}"));
    let serve = Serve::start(&file, &["--summary", "--watch"]);
    serve.stdout_line("listening on");
    serve.stdout_line("listening on");
    echo_once(at(p)).unwrap();
    echo_once(at(q)).unwrap();

    // `gone` removed, `new` added (seen by --watch), `keep` left alone.
    let added = echo_tenant("new", r, "");
    write(&file, &format!("{host_table}{keep}{added}"));
    let verdict = serve.stderr_line("reload");
    let expected = format!(
        "mtask-host: reloaded {}: started new; removed gone; 1 unchanged",
        file.display()
    );
    assert_eq!(verdict, expected);
    let listening = serve.stdout_line("listening on");
    assert_eq!(
        unlabelled(&listening),
        format!("listening on 127.0.0.1:{r}")
    );
    assert!(listening.starts_with("[new] "), "{listening}");
    echo_once(at(r)).unwrap();
    echo_once(at(p)).unwrap();
    let refused = TcpStream::connect(at(q)).map(|_| ());
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused,
        "a removed tenant's port still takes connections"
    );

    // Bad files change nothing: each is refused whole, with its reason.
    let bad = [
        (
            format!("{host_table}{keep}{added}\nbogus = 1"),
            "unknown field `bogus`",
        ),
        (
            format!("[host]\nmax_tasks = 4000\n{keep}{added}"),
            "[host] changed",
        ),
        (
            format!(
                "{host_table}{keep}{}",
                added.replace("echo_server.wasm", "missing.wasm")
            ),
            "tenant `new`",
        ),
        (
            format!(
                "{host_table}{keep}{added}{}",
                echo_tenant("more", free_port(), "entry = \"nope\"")
            ),
            "nope",
        ),
    ];
    for (text, reason) in bad {
        // Seen by --watch, as each change of the file is.
        write(&file, &text);
        let verdict = serve.stderr_line("reload");
        assert!(
            verdict.contains("refused") && verdict.contains(reason),
            "{verdict}"
        );
        assert!(verdict.ends_with("the running tenants go on"), "{verdict}");
        echo_once(at(p)).unwrap();
        echo_once(at(r)).unwrap();
    }
    let said = serve.stop();
    for name in ["keep", "gone", "new"] {
        let summary = format!("tenant `{name}`: ");
        assert!(
            said.iter()
                .any(|l| l.contains(&summary) && l.contains("tasks started")),
            "no summary of {name}: {said:?}"
        );
    }
    // `keep` was never restarted: its main is the one task that started
    // besides the handlers of its 6 connections.
    let keep_line = said.iter().find(|l| l.contains("tenant `keep`: ")).unwrap();
    assert!(keep_line.contains(": 7 tasks started"), "{keep_line}");
}
