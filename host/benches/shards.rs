//! Thread counts side by side (`cargo bench -p mtask-host --bench shards`):
//! each figure with `--threads 1` and `--threads 2` in the same run, on the
//! bench guest (tests/guests/bench), through `TaskManager::run`.
//!
//! - CPU-bound: 8 tasks of ~1 s of arithmetic each, yielding every ~0.5 ms;
//!   wall time (the speed-up is the ratio).
//! - yield round trip: 1 task, and 100 tasks, yielding; ns per yield.
//! - spawn + join of a trivial child, one after another; ns each.
//! - queue ping-pong between two tasks on one shard, and (2 threads) on
//!   two shards; ns per round trip.

use std::time::{Duration, Instant};

mod common;

use common::{bench_guest, varint};
use mtask_host::{Config, Program, TaskManager};

fn manager(threads: usize) -> (TaskManager, Program) {
    let manager = TaskManager::new(Config {
        max_tasks: 256,
        threads,
        ..Config::default()
    })
    .expect("manager");
    let program = manager.load(bench_guest()).expect("bench.wasm");
    (manager, program)
}

/// How long `run` takes for the tasks `add` adds, after one warm-up run of
/// what `warm` adds (the pool's slots, the code's pages).
fn timed(
    threads: usize,
    warm: impl Fn(&mut TaskManager, &Program),
    add: impl Fn(&mut TaskManager, &Program),
) -> Duration {
    let (mut m, program) = manager(threads);
    warm(&mut m, &program);
    m.run().unwrap();
    add(&mut m, &program);
    let start = Instant::now();
    m.run().unwrap();
    start.elapsed()
}

/// Wall time of 8 tasks of `units` × ~0.5 ms of work each.
fn cpu_bound(threads: usize, units: u32) -> Duration {
    let (mut m, program) = manager(threads);
    let program = program.with_args(["8".to_string(), units.to_string()]);
    m.add(&program, "crunch", Vec::new()).unwrap();
    let start = Instant::now();
    m.run().unwrap();
    start.elapsed()
}

/// ns per yield with `tasks` tasks yielding `each` times.
fn yields(threads: usize, tasks: u32, each: u32) -> f64 {
    let took = timed(
        threads,
        |m, p| {
            m.add(p, "yielder", varint(100)).unwrap();
        },
        |m, p| {
            for _ in 0..tasks {
                m.add(p, "yielder", varint(each)).unwrap();
            }
        },
    );
    took.as_nanos() as f64 / (f64::from(tasks) * f64::from(each))
}

/// ns per spawn + join of a trivial child.
fn spawn_join(threads: usize, children: u32) -> f64 {
    let took = timed(
        threads,
        |m, p| {
            m.add(p, "spawner", varint(100)).unwrap();
        },
        |m, p| {
            m.add(p, "spawner", varint(children)).unwrap();
        },
    );
    took.as_nanos() as f64 / f64::from(children)
}

/// ns per queue round trip; `entry` is `pinger` or `pinger_across`.
fn ping_pong(threads: usize, entry: &str, rounds: u32) -> f64 {
    let took = timed(
        threads,
        |m, p| {
            m.add(p, entry, varint(100)).unwrap();
        },
        |m, p| {
            m.add(p, entry, varint(rounds)).unwrap();
        },
    );
    took.as_nanos() as f64 / f64::from(rounds)
}

fn main() {
    let picked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| ["cpu", "yield", "spawn", "queue"].contains(&a.as_str()))
        .collect();
    let wants = |name: &str| picked.is_empty() || picked.iter().any(|p| p == name);
    println!("| benchmark | --threads 1 | --threads 2 | 1 / 2 |");
    println!("|---|---|---|---|");
    if wants("cpu") {
        // ~1 s per task on this machine at 2,200 units.
        let (one, two) = (cpu_bound(1, 2_200), cpu_bound(2, 2_200));
        println!(
            "| CPU-bound, 8 tasks × ~1 s (wall) | {:.2} s | {:.2} s | {:.2} |",
            one.as_secs_f64(),
            two.as_secs_f64(),
            one.as_secs_f64() / two.as_secs_f64()
        );
    }
    if wants("yield") {
        for (tasks, each) in [(1, 2_000_000), (100, 20_000)] {
            let (one, two) = (yields(1, tasks, each), yields(2, tasks, each));
            println!(
                "| yield round trip, {tasks} tasks | {one:.0} ns | {two:.0} ns | {:.2} |",
                one / two
            );
        }
    }
    if wants("spawn") {
        let (one, two) = (spawn_join(1, 50_000), spawn_join(2, 50_000));
        println!(
            "| spawn + join, one after another | {one:.0} ns | {two:.0} ns | {:.2} |",
            one / two
        );
    }
    if wants("queue") {
        let (one, two) = (
            ping_pong(1, "pinger", 200_000),
            ping_pong(2, "pinger", 200_000),
        );
        println!(
            "| queue ping-pong, both tasks on one shard | {one:.0} ns | {two:.0} ns | {:.2} |",
            one / two
        );
        let across = ping_pong(2, "pinger_across", 200_000);
        println!("| queue ping-pong, the tasks on two shards | | {across:.0} ns | |");
    }
}
