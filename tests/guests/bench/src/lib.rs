//! Guest for the host's benchmarks (`just bench`): trivial tasks whose cost
//! is the scheduler's, not the guest's.

use std::time::Duration;

/// Yields `n` times.
fn yielder(n: u32) {
    for _ in 0..n {
        mtask::yield_now();
    }
}

/// Spawns and joins `n` trivial children, one after another.
fn spawner(n: u32) -> mtask::Result<()> {
    for _ in 0..n {
        mtask::call::<_, ()>("nothing", &())?;
    }
    Ok(())
}

/// Returns at once.
fn nothing() {}

/// Sleeps for an hour: an idle task.
fn idle() {
    mtask::sleep(Duration::from_secs(3600));
}

mtask::entries!(yielder, spawner, nothing, idle);
