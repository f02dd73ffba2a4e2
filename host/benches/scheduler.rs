//! Scheduler benchmarks (`just bench`): yield round trip, spawn + join,
//! memory per idle task, and how many tasks can be alive at once.
//!
//! Each figure is measured on the bench guest (tests/guests/bench), whose
//! tasks do nothing but the operation measured. Options:
//! `--max-live N` sizes the pool of the live-task probe (default 100000).

use std::time::{Duration, Instant};

mod common;
#[path = "common/tokio_baseline.rs"]
mod tokio_baseline;

use common::{bench_guest, varint};
use mtask_host::{Config, Program, TaskManager};

/// One shard, so that figures compare with earlier runs; `--bench shards`
/// compares thread counts.
fn manager(max_tasks: u32) -> (TaskManager, Program) {
    manager_with(Config {
        max_tasks,
        threads: 1,
        ..Config::default()
    })
}

fn manager_with(config: Config) -> (TaskManager, Program) {
    let manager = TaskManager::new(config).expect("manager");
    let program = manager.load(bench_guest()).expect("bench.wasm");
    (manager, program)
}

/// Runs passes until no task is runnable (all ended or all waiting).
fn settle(m: &mut TaskManager) {
    while m.has_runnable() {
        m.run_next(Some(Duration::ZERO)).unwrap();
    }
}

/// Nanoseconds per yield with `tasks` tasks yielding `total` times in all.
///
/// A pass stops after a time slice, so passes cannot be counted as one
/// yield of every task: each task yields a fixed number of times and ends,
/// and the time of the same tasks yielding not at all (start-up and end)
/// is taken off.
fn yield_round_trip(tasks: u32, total: u64) -> f64 {
    let each = (total / u64::from(tasks)) as u32;
    let run = |yields: u32| {
        let (mut m, program) = manager(tasks + 16);
        for _ in 0..tasks {
            m.add(&program, "yielder", varint(yields)).unwrap();
        }
        let start = Instant::now();
        m.run().unwrap();
        start.elapsed()
    };
    let without = run(0);
    let with = run(each);
    with.saturating_sub(without).as_nanos() as f64 / (f64::from(each) * f64::from(tasks))
}

/// Nanoseconds per yield of one task, with preemption on or off.
fn yield_preempt(preempt: bool) -> f64 {
    let (mut m, program) = manager_with(Config {
        max_tasks: 16,
        preempt,
        threads: 1,
        ..Config::default()
    });
    m.add(&program, "yielder", varint(2_000_001)).unwrap();
    m.run_next(Some(Duration::ZERO)).unwrap();
    let start = Instant::now();
    m.run().unwrap();
    start.elapsed().as_nanos() as f64 / 2_000_000.0
}

/// Lateness percentiles (p50, p99, max; µs) of a task that wakes every
/// 5 ms, 400 times, beside a task that never waits, with `slice`.
fn latency_beside_spinner(slice: Duration) -> (u64, u64, u64) {
    let (mut m, program) = manager_with(Config {
        max_tasks: 16,
        time_slice: slice,
        threads: 1,
        ..Config::default()
    });
    let spinner = m.add(&program, "spin", Vec::new()).unwrap();
    let ticker = m
        .add(&program, "ticker", [varint(5), varint(400)].concat())
        .unwrap();
    // Pass by pass until the ticker is done; the spinner never is.
    while m.live_tasks() > 1 {
        m.run_next(None).unwrap();
    }
    m.cancel(spinner);
    let mut late = decode_u64s(
        &m.take_outcome(ticker)
            .expect("ticker ended")
            .expect("ticker"),
    );
    late.sort_unstable();
    let pick = |q: f64| late[((late.len() - 1) as f64 * q) as usize];
    (pick(0.5), pick(0.99), *late.last().unwrap())
}

/// A `Vec<u64>` as postcard encodes it: a varint length, then varints.
fn decode_u64s(bytes: &[u8]) -> Vec<u64> {
    let mut values = Vec::new();
    let mut it = bytes.iter();
    let mut next = || {
        let (mut value, mut shift) = (0u64, 0);
        for &b in it.by_ref() {
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
            shift += 7;
        }
        None
    };
    let len = next().unwrap_or(0);
    for _ in 0..len {
        values.push(next().expect("a varint"));
    }
    values
}

/// Nanoseconds per spawn + run + join of a trivial child.
fn spawn_join(children: u32) -> f64 {
    let (mut m, program) = manager(64);
    m.add(&program, "spawner", varint(100)).unwrap();
    m.run().unwrap(); // warm the pool's slots
    m.add(&program, "spawner", varint(children)).unwrap();
    let start = Instant::now();
    m.run().unwrap();
    start.elapsed().as_nanos() as f64 / f64::from(children)
}

/// Nanoseconds per ping-pong round trip between two tasks, two queues.
fn queue_ping_pong(rounds: u32) -> f64 {
    let (mut m, program) = manager(16);
    m.add(&program, "pinger", varint(100)).unwrap();
    m.run().unwrap();
    m.add(&program, "pinger", varint(rounds)).unwrap();
    let start = Instant::now();
    m.run().unwrap();
    start.elapsed().as_nanos() as f64 / f64::from(rounds)
}

/// Items per second from one producer to `consumers` consumers.
fn queue_fan_out(items: u32, consumers: u32) -> f64 {
    let (mut m, program) = manager(16);
    let arg = [varint(items), varint(consumers)].concat();
    let start = Instant::now();
    m.add(&program, "producer", arg).unwrap();
    m.run().unwrap();
    f64::from(items) / start.elapsed().as_secs_f64()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn map_count() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// Bytes of RSS and memory mappings per idle (sleeping) task, with `tasks` alive.
fn idle_cost(tasks: u32) -> (f64, f64) {
    let (mut m, program) = manager(tasks + 16);
    m.add(&program, "idle", Vec::new()).unwrap();
    settle(&mut m);
    let (rss0, maps0) = (rss_bytes(), map_count());
    for _ in 1..tasks {
        m.add(&program, "idle", Vec::new()).unwrap();
    }
    settle(&mut m);
    assert_eq!(m.live_tasks(), tasks as usize, "every idle task is alive");
    if let Some(path) = std::env::var_os("MTASK_BENCH_SMAPS") {
        std::fs::copy("/proc/self/smaps", path).unwrap();
    }
    if std::env::var_os("DUMP_MAPS").is_some() {
        std::fs::write(
            "/tmp/maps.txt",
            std::fs::read_to_string("/proc/self/maps").unwrap(),
        )
        .unwrap();
    }
    let n = f64::from(tasks - 1);
    (
        (rss_bytes() - rss0) as f64 / n,
        (map_count() as f64 - maps0 as f64) / n,
    )
}

/// Adds idle tasks in batches until one cannot start; returns how many
/// were alive at once, and why the next one failed.
fn most_live(limit: u32) -> (usize, String) {
    let manager = TaskManager::new(Config {
        max_tasks: limit,
        // The app cap counts whole linear memories (1 MiB each, mostly
        // unused shadow stack): lifted, so that what stops the probe is
        // the task pool or the kernel.
        max_app_memory: u64::MAX,
        ..Config::default()
    });
    let mut m = match manager {
        Ok(m) => m,
        Err(e) => return (0, format!("a pool for {limit} tasks cannot be made: {e}")),
    };
    let program = m.load(bench_guest()).expect("bench.wasm");
    let mut ids = Vec::new();
    loop {
        for _ in 0..1000 {
            match m.add(&program, "idle", Vec::new()) {
                Ok(id) => ids.push(id),
                Err(e) => return (m.live_tasks(), e.to_string()),
            }
        }
        settle(&mut m);
        if m.live_tasks() < ids.len() {
            let failed = ids
                .iter()
                .find_map(|&id| m.take_outcome(id))
                .map(|o| format!("{o:?}"));
            return (
                m.live_tasks(),
                failed.unwrap_or_default().chars().take(160).collect(),
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let max_live: u32 = args
        .iter()
        .position(|a| a == "--max-live")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let map_limit: u32 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(65_530);
    // Names given on the command line pick benchmarks; none runs them all.
    let picked: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| ["yield", "spawn", "queue", "idle", "live", "preempt"].contains(a))
        .collect();
    let wants = |name: &str| picked.is_empty() || picked.contains(&name);
    println!("vm.max_map_count = {map_limit}");
    println!();
    println!("| benchmark | mtask | Tokio, current thread | mtask / Tokio |");
    println!("|---|---|---|---|");
    let row = |what: &str, ours: f64, theirs: f64, unit: &str| {
        println!(
            "| {what} | {ours:.0} {unit} | {theirs:.0} {unit} | {:.1} |",
            ours / theirs
        );
    };
    if wants("yield") {
        for tasks in [1, 2, 1_000, 10_000] {
            row(
                &format!("yield round trip, {tasks} tasks"),
                yield_round_trip(tasks, 2_000_000),
                tokio_baseline::yield_round_trip(tasks, 2_000_000),
                "ns",
            );
        }
    }
    if wants("spawn") {
        row(
            "spawn + run + join of a trivial child",
            spawn_join(20_000),
            tokio_baseline::spawn_join(20_000),
            "ns",
        );
    }
    if wants("queue") {
        row(
            "queue ping-pong round trip (2 tasks, 2 queues of 1)",
            queue_ping_pong(500_000),
            tokio_baseline::ping_pong(500_000),
            "ns",
        );
        println!(
            "| queue, 1 producer → 4 consumers | {:.2} M items/s | | |",
            queue_fan_out(1_000_000, 4) / 1e6
        );
    }
    if wants("preempt") {
        println!(
            "| yield round trip, 1 task, preemption on | {:.0} ns | | |",
            yield_preempt(true)
        );
        println!(
            "| yield round trip, 1 task, preemption off | {:.0} ns | | |",
            yield_preempt(false)
        );
        for ms in [1, 10] {
            let (p50, p99, max) = latency_beside_spinner(Duration::from_millis(ms));
            println!(
                "| lateness of a 5 ms ticker beside a busy loop, {ms} ms slice (p50 / p99 / max) | {:.1} / {:.1} / {:.1} ms | | |",
                p50 as f64 / 1e3,
                p99 as f64 / 1e3,
                max as f64 / 1e3
            );
        }
    }
    if wants("idle") {
        let (rss, maps) = idle_cost(10_000);
        let theirs = tokio_baseline::idle_heap(10_000);
        println!(
            "| RSS per idle task, 10,000 alive | {:.1} KiB | {:.2} KiB | {:.0} |",
            rss / 1024.0,
            theirs / 1024.0,
            rss / theirs
        );
        println!("| memory mappings per idle task | {maps:.2} | | |");
    }
    if wants("live") {
        // Tasks are added until one cannot start: the pool's own limit
        // stops the probe, or, below it, memory or the kernel.
        let (most, why) = most_live(max_live);
        println!(
            "| tasks alive at once, a pool of {max_live} (the default: {}) | {most} | | |",
            Config::default().max_tasks
        );
        println!();
        println!("the probe stopped because: {why}");
    }
}
