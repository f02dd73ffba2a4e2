//! TCP echo throughput (`just bench`): the echo-server example under
//! `mtask-host --threads T` against a native Rust async echo server (Tokio
//! with T worker threads; one: a current-thread runtime), both driven by
//! the same load client in the same run: N connections, each sending
//! 64-byte requests and waiting for each echo, for a fixed time.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUEST: usize = 64;
const WARMUP: Duration = Duration::from_millis(300);
const MEASURE: Duration = Duration::from_secs(3);

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The host binary: `$MTASK_HOST` (relative to the workspace), or
/// target/release/mtask-host. `just bench` names target/dist/mtask-host,
/// the binary `just install` builds.
fn host_binary() -> std::path::PathBuf {
    let name = std::env::var("MTASK_HOST").unwrap_or_else(|_| "target/release/mtask-host".into());
    root().join(name)
}

/// The echo-server example under `mtask-host run`, on a free port.
fn start_mtask(flags: &[&str]) -> (Child, Server, SocketAddr) {
    let host = host_binary();
    let app = root().join("target/wasm32-wasip2/release/echo_server.wasm");
    assert!(host.exists() && app.exists(), "run `just build` first");
    let mut child = Command::new(host)
        .args(["run", "--listen", "127.0.0.1:*"])
        .args(flags)
        .arg(app)
        .args(["--", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start mtask-host");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening line")
        .parse()
        .unwrap();
    let server = Server::Process(child.id());
    (child, server, addr)
}

/// A native echo server on a Tokio runtime of `workers` threads (one: a
/// current-thread runtime) in its own thread. Its threads are named
/// `echo-native-{workers}`, so that their CPU time can be told apart.
fn start_native(workers: usize) -> (Server, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = format!("echo-native-{workers}");
    let threads = name.clone();
    let main = std::thread::Builder::new().name(name.clone());
    main.spawn(move || {
        let rt = if workers == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name(threads)
                .enable_all()
                .build()
                .unwrap()
        };
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
    })
    .unwrap();
    (Server::Threads(name), rx.recv().unwrap())
}

/// Whose CPU time a run measures.
enum Server {
    /// A child process.
    Process(u32),
    /// The threads of this process with this name.
    Threads(String),
}

impl Server {
    /// User plus system CPU time used so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat_ticks = |path: std::path::PathBuf| {
            let stat = std::fs::read_to_string(path).unwrap_or_default();
            // Fields after the command (which may hold spaces): utime and
            // stime are the 12th and 13th.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            field(11).unwrap_or(0) + field(12).unwrap_or(0)
        };
        match self {
            Server::Process(pid) => stat_ticks(format!("/proc/{pid}/stat").into()),
            Server::Threads(name) => std::fs::read_dir("/proc/self/task")
                .unwrap()
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == name.as_str())
                })
                .map(|t| stat_ticks(t.path().join("stat")))
                .sum(),
        }
    }
}

/// Clock ticks per second, as `/proc` counts CPU time.
const TICKS: f64 = 100.0;

/// Requests per second that `connections` clients get from `addr`, and
/// the server's CPU time per request (µs) meanwhile.
fn load((server, addr): (&Server, SocketAddr), connections: usize) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let measure_from = start + WARMUP;
        let stop = measure_from + MEASURE;
        let mut clients = Vec::new();
        for _ in 0..connections {
            let mut conn = TcpStream::connect(addr).await.unwrap();
            conn.set_nodelay(true).unwrap();
            clients.push(tokio::spawn(async move {
                let request = [7u8; REQUEST];
                let mut reply = [0u8; REQUEST];
                let mut done = 0u64;
                loop {
                    let now = Instant::now();
                    if now >= stop {
                        return done;
                    }
                    conn.write_all(&request).await.unwrap();
                    conn.read_exact(&mut reply).await.unwrap();
                    if now >= measure_from {
                        done += 1;
                    }
                }
            }));
        }
        tokio::time::sleep_until(measure_from.into()).await;
        let cpu_from = server.cpu_ticks();
        tokio::time::sleep_until(stop.into()).await;
        let cpu = (server.cpu_ticks() - cpu_from) as f64 / TICKS;
        let mut total = 0;
        for c in clients {
            total += c.await.unwrap();
        }
        let per_second = total as f64 / MEASURE.as_secs_f64();
        (per_second, cpu * 1e6 / total.max(1) as f64)
    })
}

fn main() {
    let native = [start_native(1), start_native(2)];
    let (mut one, one_cpu, one_addr) = start_mtask(&["--threads", "1"]);
    let (mut two, two_cpu, two_addr) = start_mtask(&["--threads", "2"]);
    let (mut unpreempted, u_cpu, u_addr) = start_mtask(&["--threads", "1", "--no-preempt"]);
    let servers = [
        (&native[0].0, native[0].1),
        (&one_cpu, one_addr),
        (&native[1].0, native[1].1),
        (&two_cpu, two_addr),
        (&u_cpu, u_addr),
    ];
    println!("mtask-host: {}", host_binary().display());
    println!(
        "Each cell: requests per second (the server's CPU time per request).\n\n\
         | connections | Tokio, 1 thread | mtask --threads 1 | ratio | \
         Tokio, 2 workers | mtask --threads 2 | ratio | \
         mtask --threads 1, preemption off |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for connections in [50, 1000] {
        let [n1, m1, n2, m2, u] = servers.map(|server| load(server, connections));
        let cell = |(rate, cpu): (f64, f64)| format!("{rate:.0} ({cpu:.1} µs)");
        println!(
            "| {connections} | {} | {} | {:.2} | {} | {} | {:.2} | {} |",
            cell(n1),
            cell(m1),
            m1.0 / n1.0,
            cell(n2),
            cell(m2),
            m2.0 / n2.0,
            cell(u),
        );
    }
    for child in [&mut one, &mut two, &mut unpreempted] {
        child.kill().ok();
    }
}
