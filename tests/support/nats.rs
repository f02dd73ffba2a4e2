//! A real NATS server with JetStream, started for a test: the official
//! `nats-server` binary that `just nats-server` installs.
//!
//! Each [`NatsServer`] listens on 127.0.0.1 on a port of its own, stores
//! JetStream data in a fresh directory under the system's temp dir, and is
//! killed, and its directory removed, when it is dropped.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::target_dir;

/// The variable that names another `nats-server` binary to run.
pub const SERVER_VAR: &str = "MTASK_NATS_SERVER";

/// How long a server may take to accept connections and report JetStream
/// ready before [`NatsServer::start`] gives up.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// How many times [`NatsServer::start`] picks new ports when the ones it
/// picked were taken before the server could bind them.
const START_ATTEMPTS: usize = 5;

/// How many lines of the server's log a failure shows.
const LOG_TAIL_LINES: usize = 40;

/// Tells the servers of one test process apart.
static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// The `nats-server` binary: `$MTASK_NATS_SERVER`, or the one `just
/// nats-server` installs in `target/natsvenv/bin/`.
pub fn server_binary() -> PathBuf {
    let path = match std::env::var_os(SERVER_VAR) {
        Some(path) => PathBuf::from(path),
        None => target_dir().join("natsvenv/bin/nats-server"),
    };
    assert!(
        path.is_file(),
        "{} is missing: run `just nats-server` (or `just test`) first",
        path.display()
    );
    path
}

/// A running `nats-server -js` on 127.0.0.1, ready for JetStream.
pub struct NatsServer {
    /// `None` once killed.
    child: Option<Child>,
    port: u16,
    monitor_port: u16,
    /// This server's own directory: its store and its log.
    dir: PathBuf,
    /// Arguments given besides the defaults (`--user`, say).
    extra: Vec<String>,
}

/// How one try to start a server ended.
enum Start {
    Ready,
    /// A port it was given was taken before it could bind it.
    PortTaken,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections and reports
    /// JetStream ready; panics, with the tail of its log, if it does not
    /// within 10 s.
    pub fn start() -> NatsServer {
        Self::start_with(&[])
    }

    /// [`NatsServer::start`], with `extra` arguments for nats-server.
    pub fn start_with(extra: &[&str]) -> NatsServer {
        let binary = server_binary();
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mtask-nats-{}-{n}", std::process::id()));
        for attempt in 1..=START_ATTEMPTS {
            // Left over from a run whose process had the same id.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("store"))
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
            let [port, monitor_port] = free_ports();
            let mut server = NatsServer {
                child: None,
                port,
                monitor_port,
                dir: dir.clone(),
                extra: extra.iter().map(|a| a.to_string()).collect(),
            };
            server.spawn(&binary);
            match server.wait_ready() {
                Start::Ready => return server,
                Start::PortTaken if attempt < START_ATTEMPTS => {
                    // Dropping it cleans up; the next try picks new ports.
                }
                Start::PortTaken => server.fail(&format!(
                    "its ports were taken on each of {START_ATTEMPTS} tries"
                )),
            }
        }
        unreachable!("the last try returns or panics")
    }

    /// The URL clients connect to: `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client address: 127.0.0.1 and [`port`](Self::port).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The HTTP monitoring port, on 127.0.0.1.
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// Where the server keeps its JetStream data.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// The server's log so far (its stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `GET /healthz?js-enabled-only=true` on the monitoring port: the
    /// status code and the body, or `None` if it did not answer.
    pub fn healthz(&self) -> Option<(u16, String)> {
        http_get(self.monitor_port, "/healthz?js-enabled-only=true")
    }

    /// Kills the server and waits for it to end. Its directory stays until
    /// the `NatsServer` is dropped; killing it again does nothing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Starts the binary on this server's ports and directory, its stdout
    /// and stderr going to its log.
    fn spawn(&mut self, binary: &Path) {
        let log = File::create(self.log_path())
            .unwrap_or_else(|e| panic!("create {}: {e}", self.log_path().display()));
        // One open file for both, so neither writes over the other.
        let log_too = log.try_clone().expect("clone the log file");
        let child = Command::new(binary)
            .arg("-js")
            .arg("-sd")
            .arg(self.store_dir())
            .args(["-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        self.child = Some(child);
    }

    /// Waits until the client port accepts a connection and the monitoring
    /// port's healthz check answers 200, or the server ends.
    fn wait_ready(&mut self) -> Start {
        let started = Instant::now();
        let mut accepting = false;
        let mut last_health = None;
        loop {
            let child = self.child.as_mut().expect("the server was started");
            if let Some(status) = child.try_wait().expect("wait for nats-server") {
                self.child = None;
                if self.log().contains("address already in use") {
                    return Start::PortTaken;
                }
                self.fail(&format!("it ended ({status})"));
            }
            if !accepting {
                accepting =
                    TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok();
            }
            if accepting {
                last_health = self.healthz();
                if matches!(last_health, Some((200, _))) {
                    return Start::Ready;
                }
            }
            if started.elapsed() > READY_DEADLINE {
                self.fail(&format!(
                    "not ready within {READY_DEADLINE:?} (accepting connections: \
                     {accepting}; last healthz answer: {last_health:?})"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server and panics with `why` and the tail of its log.
    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
        panic!(
            "nats-server on 127.0.0.1:{} did not start: {why}; the end of its log ({}):\n{tail}",
            self.port,
            self.log_path().display()
        );
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two distinct ports on 127.0.0.1 that were free a moment ago: the OS
/// picks them, and both are held until both are known.
fn free_ports() -> [u16; 2] {
    let bind = || TcpListener::bind(("127.0.0.1", 0)).expect("bind a free port");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().expect("a bound address").port();
    [port(&a), port(&b)]
}

/// A plain HTTP/1.0 GET of `path` on 127.0.0.1:`port`: the status code and
/// the body, or `None` if the server did not answer in full within 2 s.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    // HTTP/1.0: the server closes the connection after the body.
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n")?;
    // The status line: `HTTP/1.x CODE REASON`.
    let code = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((code, body.to_string()))
}

/// `mtask-host run --cluster URL --worker APP` in the background, with
/// `flags` too: a host that runs the cluster's remote spawns of APP until
/// dropped (killed).
pub struct Worker(std::process::Child);

impl Worker {
    pub fn start(server: &NatsServer, app: &Path, flags: &[&str]) -> Worker {
        let child = super::host()
            .args(["run", "--cluster", &server.url(), "--worker"])
            .args(flags)
            .arg(app)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the worker host");
        super::watchdog(child.id());
        Worker(child)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
