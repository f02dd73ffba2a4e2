//! Cluster mode (`cargo bench -p mtask-host --bench cluster`), against a
//! real `nats-server -js` started for the run (`just nats-server`), each
//! mtask figure beside a native async-nats baseline that does the same
//! protocol steps on the same server, in the same run.
//!
//! - queue ping-pong between two tasks through two named queues of one
//!   item (`clustered.wasm` `qping`); native: two work-queue streams, a
//!   publish (awaiting its ack), a pull of one and a double ack each way.
//!   µs per round trip.
//! - queue flood: 4 producers put 10,000 items in all on one named queue
//!   while 4 consumers take them (`qflood`); native: the same with 4 + 4
//!   Tokio tasks. Items per second.
//! - remote spawn + join, one after another, each child on a second host
//!   (`rspawn`, the parent with `--cluster-jobs 0`, a `--worker` beside
//!   it); native: a request published on a work-queue stream, pulled by a
//!   worker task that answers with a core request to the reply subject in
//!   its header, then acks. µs per spawn + join.
//! - CPU spread: 8 children of ~250 ms of work each (`spread`),
//!   `--threads 1`: one host without `--cluster`, against that host with
//!   `--cluster` and a worker host with `--threads 1`. Wall time and the
//!   speed-up.
//! - what cluster mode costs local-only work, in process: spawn + join,
//!   yield and local queue ping-pong on the bench guest with
//!   `Config::cluster` `None` and `Some`, `threads: 1`, interleaved, best
//!   of 3.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy};
use async_nats::jetstream::{self, Context, Message};
use futures_util::StreamExt;
use tokio::runtime::Runtime;

mod common;

use common::{bench_guest, varint};
use mtask_host::{ClusterConfig, Config, Program, TaskManager};

/// Units of `spread`'s work per child: ~2 s for 8 children on one thread here.
const SPREAD_WORK: u32 = 4_500;

/// The header of a native spawn request that names where to answer.
const REPLY: &str = "Reply";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the workspace's `target/`, which `hint` makes.
fn built(path: &str, hint: &str) -> PathBuf {
    let path = workspace().join("target").join(path);
    assert!(path.exists(), "{} is missing: {hint}", path.display());
    path
}

/// A Tokio runtime like the host's own: one worker thread.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A process killed when dropped (a panic included), and the directory
/// it kept, removed.
struct Killed(Child, Option<PathBuf>);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(dir) = &self.1 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `nats-server -js` on a free port of 127.0.0.1, once it accepts
/// connections and JetStream answers; and its URL.
fn start_nats(rt: &Runtime) -> (Killed, String) {
    let binary = built("natsvenv/bin/nats-server", "run `just nats-server`");
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    let dir = std::env::temp_dir().join(format!("mtask-bench-nats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the server's store");
    let child = Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    let (server, url) = (Killed(child, Some(dir)), format!("nats://127.0.0.1:{port}"));
    let ready = || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
            && rt.block_on(async {
                match async_nats::connect(&url).await {
                    Ok(client) => jetstream::new(client).query_account().await.is_ok(),
                    Err(_) => false,
                }
            })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "nats-server not ready in 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, url)
}

/// `mtask-host run` of clustered.wasm, as separate processes.
struct Hosts {
    binary: PathBuf,
    guest: PathBuf,
    cache: PathBuf,
    url: String,
}

impl Hosts {
    /// `mtask-host run FLAGS clustered.wasm`, in the cluster as `tenant`
    /// unless `None`.
    fn command(&self, tenant: Option<&str>, flags: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.env("MTASK_CACHE_DIR", &self.cache).arg("run");
        if let Some(tenant) = tenant {
            command.args(["--cluster", &self.url, "--tenant", tenant]);
        }
        command.args(flags).arg(&self.guest);
        command
    }

    /// Runs `run` (an entry and its arguments): the last number on the
    /// line it prints that starts with `line`.
    fn figure(&self, tenant: Option<&str>, flags: &[&str], run: &[&str], line: &str) -> f64 {
        let (entry, args) = run.split_first().expect("an entry");
        let out = self
            .command(tenant, flags)
            .args(["--entry", entry, "--"])
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .expect("run mtask-host");
        assert!(out.status.success(), "mtask-host {entry}: {}", out.status);
        let out = String::from_utf8(out.stdout).expect("utf-8 output");
        let found = out.lines().find(|l| l.starts_with(line));
        let found = found.unwrap_or_else(|| panic!("no `{line}` line in {out:?}"));
        let mut words = found.split_whitespace().rev();
        let figure = words.find_map(|word| word.parse().ok());
        figure.unwrap_or_else(|| panic!("no figure in {found:?}"))
    }

    /// A `--worker` host of `tenant`, given a second to join.
    fn worker(&self, tenant: &str, flags: &[&str]) -> Killed {
        let child = self
            .command(Some(tenant), &[flags, &["--worker"]].concat())
            .stdout(Stdio::null())
            .spawn()
            .expect("start a worker host");
        std::thread::sleep(Duration::from_secs(1));
        Killed(child, None)
    }
}

/// A work-queue stream `name` on subject `name` of at most `max` messages
/// (-1: no bound), refusing more, with one durable pull consumer: a named
/// queue as mtask makes it.
async fn work_queue(js: &Context, name: &str, max: i64) -> PullConsumer {
    let stream = js
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec![name.into()],
            retention: RetentionPolicy::WorkQueue,
            discard: DiscardPolicy::New,
            max_messages: max,
            ..Default::default()
        })
        .await
        .expect("create a stream");
    let config = pull::Config {
        durable_name: Some("getters".into()),
        ack_policy: AckPolicy::Explicit,
        max_ack_pending: -1,
        ..Default::default()
    };
    let consumer = stream.create_consumer(config).await;
    consumer.expect("create a consumer")
}

/// Publishes `payload` on `subject` and waits for JetStream's ack.
async fn put(js: &Context, subject: &str, payload: Vec<u8>) {
    let ack = js.publish(subject.to_string(), payload.into()).await;
    ack.expect("publish").await.expect("publish ack");
}

/// The next message, pulling one at a time, each pull waiting at most `wait`.
async fn pull_one(consumer: &PullConsumer, wait: Duration) -> Message {
    loop {
        let batch = consumer.batch().max_messages(1).expires(wait);
        let mut batch = batch.messages().await.expect("pull");
        if let Some(message) = batch.next().await {
            return message.expect("a message");
        }
    }
}

/// The next message, acked: a get from a queue, each pull waiting as
/// long as mtask's.
async fn get(consumer: &PullConsumer) -> Message {
    let message = pull_one(consumer, Duration::from_millis(200)).await;
    message.double_ack().await.expect("ack");
    message
}

/// µs per queue round trip, after 50 warm-up rounds.
async fn native_ping_pong(js: Context, rounds: u32) -> f64 {
    const WARM: u32 = 50;
    let ping = work_queue(&js, "native_ping", 1).await;
    let pong = work_queue(&js, "native_pong", 1).await;
    let ponger = tokio::spawn({
        let js = js.clone();
        async move {
            for _ in 0..WARM + rounds {
                let message = get(&ping).await;
                put(&js, "native_pong", message.payload.to_vec()).await;
            }
        }
    });
    let mut began = Instant::now();
    for i in 0..WARM + rounds {
        if i == WARM {
            began = Instant::now();
        }
        put(&js, "native_ping", i.to_le_bytes().to_vec()).await;
        get(&pong).await;
    }
    let took = began.elapsed();
    ponger.await.expect("ponger");
    took.as_secs_f64() * 1e6 / f64::from(rounds)
}

/// Items per second through one queue, `p` producers and `p` consumers.
async fn native_flood(js: Context, n: u64, p: u64) -> f64 {
    let consumer = work_queue(&js, "native_flood", -1).await;
    let began = Instant::now();
    let producers: Vec<_> = (0..p)
        .map(|i| {
            let js = js.clone();
            tokio::spawn(async move {
                for item in (i..n / p * p).step_by(p as usize) {
                    put(&js, "native_flood", item.to_le_bytes().to_vec()).await;
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..p)
        .map(|_| {
            let consumer = consumer.clone();
            tokio::spawn(async move {
                for _ in 0..n / p {
                    get(&consumer).await;
                }
            })
        })
        .collect();
    for task in producers.into_iter().chain(consumers) {
        task.await.expect("flood task");
    }
    (n / p * p) as f64 / began.elapsed().as_secs_f64()
}

/// µs per spawn + join of a remote spawn's protocol steps, `n` in sequence.
async fn native_spawn(client: async_nats::Client, js: Context, n: u32) -> f64 {
    let jobs = work_queue(&js, "native_jobs", -1).await;
    let worker = tokio::spawn({
        let client = client.clone();
        async move {
            for _ in 0..n {
                // The pull wait of mtask's worker loop.
                let request = pull_one(&jobs, Duration::from_millis(500)).await;
                let headers = request.headers.as_ref().expect("headers");
                let reply = headers.get(REPLY).expect("a reply subject").to_string();
                let answer = client.request(reply, request.payload.clone()).await;
                answer.expect("the parent's answer");
                request.double_ack().await.expect("ack");
            }
        }
    });
    let results = client.new_inbox();
    let mut answers = client.subscribe(results.clone()).await.expect("subscribe");
    let began = Instant::now();
    for i in 0..n {
        let mut headers = HeaderMap::new();
        headers.insert(REPLY, results.as_str());
        let payload = i.to_le_bytes().to_vec().into();
        let ack = js.publish_with_headers("native_jobs", headers, payload);
        ack.await.expect("publish").await.expect("publish ack");
        let answer = answers.next().await.expect("an answer");
        let reply = answer.reply.expect("an answer to answer");
        let done = client.publish(reply, Vec::new().into()).await;
        done.expect("reply");
    }
    let took = began.elapsed();
    worker.await.expect("worker");
    took.as_secs_f64() * 1e6 / f64::from(n)
}

/// A manager of the bench guest, one thread, in the cluster at `url` if any.
fn manager(url: Option<&str>) -> (TaskManager, Program) {
    let manager = TaskManager::new(Config {
        max_tasks: 256,
        threads: 1,
        cluster: url.map(ClusterConfig::new),
        ..Config::default()
    })
    .expect("manager");
    let program = manager.load(bench_guest()).expect("bench.wasm");
    (manager, program)
}

/// ns per unit of `entry` run with `n`, after a warm-up run with 100.
fn per_unit((m, program): &mut (TaskManager, Program), entry: &str, n: u32) -> f64 {
    m.add(program, entry, varint(100)).unwrap();
    m.run().unwrap();
    m.add(program, entry, varint(n)).unwrap();
    let began = Instant::now();
    m.run().unwrap();
    began.elapsed().as_nanos() as f64 / f64::from(n)
}

/// A row of the table: both figures in `unit`, and `ratio`.
fn row(what: &str, mtask: f64, baseline: f64, unit: &str, ratio: f64) {
    println!("| {what} | {mtask:.0} {unit} | {baseline:.0} {unit} | {ratio:.2} |");
}

fn main() {
    let binary = built("release/mtask-host", "run `just build`");
    let guest = built("wasm32-wasip2/release/clustered.wasm", "run `just build`");
    let rt = runtime();
    let (_server, url) = start_nats(&rt);
    let cache = workspace().join("target/mtask-bench-cache");
    let hosts = Hosts {
        binary,
        guest,
        cache,
        url: url.clone(),
    };
    let tenant = |figure: &str| format!("bench-{}-{figure}", std::process::id());
    // Compiles clustered.wasm into the cache, so no worker starts slow.
    hosts.figure(Some(&tenant("warm")), &[], &["qping", "10"], "qping ");
    let (client, js) = rt.block_on(async {
        let client = async_nats::connect(&url).await.expect("connect");
        (client.clone(), jetstream::new(client))
    });
    println!("| benchmark | mtask | baseline | mtask / baseline (time) |");
    println!("|---|---|---|---|");

    let mtask = hosts.figure(Some(&tenant("qping")), &[], &["qping", "1000"], "qping ");
    let native = rt.block_on(native_ping_pong(js.clone(), 1000));
    let what = "queue ping-pong, named queues of 1 item (per round trip)";
    row(what, mtask, native, "µs", mtask / native);

    let flood = ["qflood", "10000", "4"];
    let mtask = hosts.figure(Some(&tenant("qflood")), &[], &flood, "qflood ");
    let native = rt.block_on(native_flood(js.clone(), 10_000, 4));
    let what = "queue flood, 4 producers + 4 consumers, 10,000 items";
    row(what, mtask, native, "items/s", native / mtask);

    let spawns = tenant("rspawn");
    let worker = hosts.worker(&spawns, &[]);
    let no_jobs = ["--cluster-jobs", "0"];
    let mtask = hosts.figure(Some(&spawns), &no_jobs, &["rspawn", "200"], "rspawn ");
    drop(worker);
    let native = rt.block_on(native_spawn(client.clone(), js.clone(), 200));
    let what = "remote spawn + join on a 2nd host, one after another";
    row(what, mtask, native, "µs", mtask / native);

    let (work, one) = (SPREAD_WORK.to_string(), ["--threads", "1"]);
    let spread = ["spread", "8", work.as_str()];
    let alone = hosts.figure(None, &one, &spread, "sum ");
    let spreads = tenant("spread");
    let worker = hosts.worker(&spreads, &one);
    let two = hosts.figure(Some(&spreads), &one, &spread, "sum ");
    drop(worker);
    println!(
        "| CPU spread, 8 children × {:.2} s, --threads 1: 2 hosts vs 1 host without \
         --cluster (wall) | {:.2} s | {:.2} s | {:.2} (speed-up {:.2}) |",
        alone / 8e3,
        two / 1e3,
        alone / 1e3,
        two / alone,
        alone / two
    );

    let (mut off, mut on) = (manager(None), manager(Some(&url)));
    for (what, entry, n) in [
        ("spawn + join", "spawner", 50_000),
        ("yield round trip", "yielder", 2_000_000),
        ("local queue ping-pong", "pinger", 200_000),
    ] {
        let (mut without, mut with) = (f64::MAX, f64::MAX);
        for _ in 0..3 {
            without = without.min(per_unit(&mut off, entry, n));
            with = with.min(per_unit(&mut on, entry, n));
        }
        let what = format!("{what}, in process: Config::cluster Some vs None (best of 3)");
        row(&what, with, without, "ns", with / without);
    }
}
