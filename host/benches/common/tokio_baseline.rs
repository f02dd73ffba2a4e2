//! The native baseline of the scheduler benchmarks: the same operations as
//! the bench guest's tasks, as Tokio tasks on a current-thread runtime
//! (one thread, like `--threads 1`), measured in the same run.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// Nanoseconds per `yield_now` with `tasks` tasks yielding `total` times in all.
pub fn yield_round_trip(tasks: u32, total: u64) -> f64 {
    let rt = runtime();
    let each = total / u64::from(tasks);
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..each {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        start.elapsed().as_nanos() as f64 / (each * u64::from(tasks)) as f64
    })
}

/// Nanoseconds per spawn + run + join of a task that returns at once.
pub fn spawn_join(children: u32) -> f64 {
    let rt = runtime();
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..children {
            tokio::spawn(async {}).await.unwrap();
        }
        start.elapsed().as_nanos() as f64 / f64::from(children)
    })
}

/// Nanoseconds per ping-pong round trip between two tasks through two
/// bounded channels of one slot (the bench guest's queues of one item).
pub fn ping_pong(rounds: u32) -> f64 {
    let rt = runtime();
    rt.block_on(async {
        let (ping_tx, mut ping_rx) = mpsc::channel::<u32>(1);
        let (pong_tx, mut pong_rx) = mpsc::channel::<u32>(1);
        let ponger = tokio::spawn(async move {
            while let Some(i) = ping_rx.recv().await {
                pong_tx.send(i).await.unwrap();
            }
        });
        let start = Instant::now();
        for i in 0..rounds {
            ping_tx.send(i).await.unwrap();
            pong_rx.recv().await.unwrap();
        }
        let elapsed = start.elapsed();
        drop(ping_tx);
        ponger.await.unwrap();
        elapsed.as_nanos() as f64 / f64::from(rounds)
    })
}

/// Bytes of heap per idle (sleeping) task with `tasks` alive: a Tokio
/// task lives wholly on the heap, so the allocator's count is exact where
/// RSS would show the allocator's reuse of freed memory.
pub fn idle_heap(tasks: u32) -> f64 {
    let heap = || unsafe { libc::mallinfo2() }.uordblks as f64;
    let rt = runtime();
    rt.block_on(async {
        let before = heap();
        let handles: Vec<_> = (0..tasks)
            .map(|_| tokio::spawn(tokio::time::sleep(Duration::from_secs(3600))))
            .collect();
        // Let every task run to its sleep.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let per_task = (heap() - before) / f64::from(tasks);
        for handle in handles {
            handle.abort();
        }
        per_task
    })
}
