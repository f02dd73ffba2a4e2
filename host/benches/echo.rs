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

/// The echo-server example under `mtask-host run`, on a free port.
fn start_mtask(flags: &[&str]) -> (Child, SocketAddr) {
    let host = root().join("target/release/mtask-host");
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
    (child, addr)
}

/// A native echo server on a Tokio runtime of `workers` threads (one: a
/// current-thread runtime) in its own thread.
fn start_native(workers: usize) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = if workers == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
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
    });
    rx.recv().unwrap()
}

/// Requests per second that `connections` clients get from `addr`.
fn load(addr: SocketAddr, connections: usize) -> f64 {
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
        let mut total = 0;
        for c in clients {
            total += c.await.unwrap();
        }
        total as f64 / MEASURE.as_secs_f64()
    })
}

fn main() {
    let native = [start_native(1), start_native(2)];
    let (mut one, mtask_one) = start_mtask(&["--threads", "1"]);
    let (mut two, mtask_two) = start_mtask(&["--threads", "2"]);
    let (mut unpreempted, mtask_no_preempt) = start_mtask(&["--threads", "1", "--no-preempt"]);
    println!(
        "| connections | Tokio, 1 thread (req/s) | mtask --threads 1 (req/s) | ratio | \
         Tokio, 2 workers (req/s) | mtask --threads 2 (req/s) | ratio | \
         mtask --threads 1, preemption off (req/s) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for connections in [50, 1000] {
        let n1 = load(native[0], connections);
        let m1 = load(mtask_one, connections);
        let n2 = load(native[1], connections);
        let m2 = load(mtask_two, connections);
        let u = load(mtask_no_preempt, connections);
        println!(
            "| {connections} | {n1:.0} | {m1:.0} | {:.2} | {n2:.0} | {m2:.0} | {:.2} | {u:.0} |",
            m1 / n1,
            m2 / n2
        );
    }
    for child in [&mut one, &mut two, &mut unpreempted] {
        child.kill().ok();
    }
}
