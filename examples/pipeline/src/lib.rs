//! A pipeline: a producer feeds jobs to several workers through a bounded
//! queue; a collector prints the results in input order, whichever worker
//! finishes first, by asking the results queue for each job's tag in turn.

use std::time::Duration;

use mtask::{Error, Handle, Queue, Task};

const WORKERS: u32 = 3;

fn main() -> mtask::Result<()> {
    let inputs: Vec<u64> = vec![7, 3, 9, 1, 4, 8, 2, 6];
    let jobs = Queue::<(u64, u64)>::new(2)?;
    let results = Queue::<u64>::new(0)?;
    let workers: Vec<Task<u32>> = (0..WORKERS)
        .map(|w| {
            mtask::spawn_with(
                "worker",
                &w,
                vec![jobs.clone().into_handle(), results.clone().into_handle()],
            )
        })
        .collect::<Result<_, _>>()?;
    let collector: Task<()> = mtask::spawn_with(
        "collector",
        &(inputs.len() as u64),
        vec![results.into_handle()],
    )?;
    for (index, n) in inputs.iter().enumerate() {
        jobs.put(&(index as u64, *n))?; // waits while the workers are busy
    }
    jobs.close(); // the workers stop once the jobs are drained
    let done: u32 = workers
        .into_iter()
        .map(Task::join)
        .sum::<Result<u32, _>>()?;
    collector.join()?;
    println!("{done} jobs done by {WORKERS} workers");
    Ok(())
}

/// Squares numbers until the jobs queue is closed; returns how many it did.
fn worker(id: u32) -> mtask::Result<u32> {
    let mut handles = mtask::take_handles().into_iter();
    let (Some(Handle::Queue(jobs)), Some(Handle::Queue(results))) =
        (handles.next(), handles.next())
    else {
        return Err(Error::Invalid(
            "a worker needs the jobs and results queues".into(),
        ));
    };
    let (jobs, results) = (
        Queue::<(u64, u64)>::from_raw(jobs),
        Queue::<u64>::from_raw(results),
    );
    let mut done = 0;
    loop {
        match jobs.get() {
            Ok((index, n)) => {
                // Work of uneven length, so results come back out of order.
                mtask::sleep(Duration::from_millis(n % 4 * 3 + u64::from(id)));
                results.put_tagged(index, &(n * n))?;
                done += 1;
            }
            Err(Error::Closed) => return Ok(done),
            Err(e) => return Err(e),
        }
    }
}

/// Prints `count` results, in input order.
fn collector(count: u64) -> mtask::Result<()> {
    let Some(Handle::Queue(results)) = mtask::take_handles().pop() else {
        return Err(Error::Invalid(
            "the collector needs the results queue".into(),
        ));
    };
    let results = Queue::<u64>::from_raw(results);
    for index in 0..count {
        let (_, square) = results.get_tagged(&[index])?;
        println!("result {index}: {square}");
    }
    Ok(())
}

mtask::entries!(main, worker, collector);
