//! Sleepers: tasks that sleep for different times wake in deadline order,
//! whichever way they sleep — the SDK's `mtask::sleep` or the standard
//! library's `std::thread::sleep`, which suspends only its own task too.

use std::time::{Duration, Instant};

fn main() -> mtask::Result<()> {
    let start = Instant::now();
    let naps: [(u64, bool); 4] = [(30, false), (10, true), (20, false), (40, true)];
    let sleepers: Vec<mtask::Task<u64>> = naps
        .iter()
        .map(|nap| mtask::spawn_fn(sleeper, nap))
        .collect::<Result<_, _>>()?;
    for sleeper in sleepers {
        sleeper.join()?;
    }
    println!(
        "all {} slept in {} ms (the longest nap is 40 ms)",
        naps.len(),
        start.elapsed().as_millis()
    );
    Ok(())
}

/// Sleeps `ms` milliseconds and says so; `std_sleep` picks std's sleep.
fn sleeper((ms, std_sleep): (u64, bool)) -> mtask::Result<u64> {
    if std_sleep {
        std::thread::sleep(Duration::from_millis(ms));
    } else {
        mtask::sleep(Duration::from_millis(ms));
    }
    let how = if std_sleep {
        "std::thread::sleep"
    } else {
        "mtask::sleep"
    };
    println!("task {} woke after {ms} ms ({how})", mtask::current_id());
    Ok(ms)
}

mtask::entries!(main, sleeper);
