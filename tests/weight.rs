//! Light tasks (issue 13): a task's linear memory and stack are slots of
//! two large mappings (host/src/arena.rs), reused from task to task. A
//! reused slot must show nothing of its last task, and the default
//! `--max-tasks` must start, on Linux's default `vm.max_map_count`.

mod support;

use mtask_host::{Config, TaskManager};
use support::guest;

/// An embedded host with the tests' code cache.
fn manager(config: Config) -> TaskManager {
    TaskManager::new(Config {
        cache_dir: Some(support::target_dir().join("mtask-test-cache")),
        ..config
    })
    .unwrap()
}

/// A postcard `u64` (an unsigned varint).
fn decode_varint(bytes: &[u8]) -> u64 {
    let mut value = 0;
    for (i, b) in bytes.iter().enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
    }
    value
}

#[test]
fn a_task_in_a_reused_slot_never_sees_the_last_ones_memory_or_stack() {
    // One thread, so that each task takes the slot the last one left.
    let mut m = manager(Config {
        threads: 1,
        ..Config::default()
    });
    let hostile = m.load(guest("hostile")).unwrap();
    for round in 0..20 {
        // A task fills its free shadow stack and 1 MiB of grown memory
        // with 0xA5, and ends; the next looks there for anything not zero.
        let scribbler = m.add(&hostile, "scribble", Vec::new()).unwrap();
        m.run().unwrap();
        let scribbled = m.take_outcome(scribbler).unwrap();
        assert!(scribbled.is_ok(), "{scribbled:?}");
        let peeker = m.add(&hostile, "peek", Vec::new()).unwrap();
        m.run().unwrap();
        let seen = m.take_outcome(peeker).unwrap().expect("peek ran");
        assert_eq!(
            decode_varint(&seen),
            0,
            "round {round}: bytes of the last task's memory showed through"
        );
    }
}

#[test]
fn the_default_task_limit_fits_under_the_default_map_count_and_all_start_and_finish() {
    let tasks = Config::default().max_tasks;
    assert!(tasks >= 100_000, "the default is {tasks} tasks");
    // The app's memory cap counts each task's whole linear memory (a Rust
    // guest's is 1 MiB, mostly its unused shadow stack), which on a 24 GiB
    // machine holds an app to about 22,000 such tasks: lifted here, where
    // the task and mapping limits are under test.
    let mut m = manager(Config {
        max_app_memory: u64::MAX,
        ..Config::default()
    });
    let bench = m.load(guest("bench")).unwrap();
    // Every task waits at a gate (a named queue), so all are alive at once.
    let ids: Vec<_> = (0..tasks)
        .map(|_| m.add(&bench, "gate", Vec::new()).unwrap())
        .collect();
    while m.unstarted_tasks() > 0 || m.has_runnable() {
        m.run_next(Some(std::time::Duration::ZERO)).unwrap();
    }
    assert_eq!(
        m.live_tasks(),
        tasks as usize,
        "every task is alive at once"
    );
    // The limit holds: one more task cannot start.
    assert!(m.add(&bench, "gate", Vec::new()).is_err());
    // Then, in the place one of them leaves, one opener lets the rest through.
    m.cancel(ids[0]);
    let cancelled = m.take_outcome(ids[0]).expect("a cancelled task has ended");
    assert!(cancelled.is_err(), "{cancelled:?}");
    let opener = m.add(&bench, "open_gate", varint(tasks - 1)).unwrap();
    m.run().unwrap();
    assert!(m.take_outcome(opener).unwrap().is_ok());
    for &id in &ids[1..] {
        let outcome = m.take_outcome(id).expect("ended");
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    assert_eq!(m.live_tasks(), 0);
}

/// A postcard `u32` (an unsigned varint).
fn varint(mut n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}
