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

/// `n` round trips through two queues with a ponger task.
fn pinger(n: u32) -> mtask::Result<()> {
    let ping = mtask::Queue::<u32>::new(1)?;
    let pong = mtask::Queue::<u32>::new(1)?;
    let ponger: mtask::Task<()> = mtask::spawn_with(
        "ponger",
        &n,
        vec![ping.clone().into_handle(), pong.clone().into_handle()],
    )?;
    for i in 0..n {
        ping.put(&i)?;
        pong.get()?;
    }
    ponger.join()
}

/// [`pinger`] with its ponger on the other shard (`--threads 2`): an idle
/// child first keeps this shard two tasks ahead, so by the placement rule
/// of docs/design.md §3 the ponger goes to the other.
fn pinger_across(n: u32) -> mtask::Result<()> {
    let idle: mtask::Task<()> = mtask::spawn("idle", &())?;
    pinger(n)?;
    idle.cancel();
    Ok(())
}

fn ponger(n: u32) -> mtask::Result<()> {
    let (ping, pong) = two_queues()?;
    for _ in 0..n {
        pong.put(&ping.get()?)?;
    }
    Ok(())
}

fn two_queues() -> mtask::Result<(mtask::Queue<u32>, mtask::Queue<u32>)> {
    let mut handles = mtask::take_handles().into_iter();
    match (handles.next(), handles.next()) {
        (Some(mtask::Handle::Queue(a)), Some(mtask::Handle::Queue(b))) => {
            Ok((mtask::Queue::from_raw(a), mtask::Queue::from_raw(b)))
        }
        _ => Err(mtask::Error::Invalid("two queues expected".into())),
    }
}

/// Puts `items` items into a queue that `consumers` tasks drain.
fn producer((items, consumers): (u32, u32)) -> mtask::Result<()> {
    let queue = mtask::Queue::<u32>::new(64)?;
    let tasks: Vec<mtask::Task<u32>> = (0..consumers)
        .map(|_| mtask::spawn_with("consumer", &(), vec![queue.clone().into_handle()]))
        .collect::<Result<_, _>>()?;
    for i in 0..items {
        queue.put(&i)?;
    }
    queue.close();
    let got: u32 = tasks
        .into_iter()
        .map(mtask::Task::join)
        .sum::<Result<u32, _>>()?;
    assert_eq!(got, items);
    Ok(())
}

/// Takes items until the queue closes; returns how many.
fn consumer() -> mtask::Result<u32> {
    let Some(mtask::Handle::Queue(raw)) = mtask::take_handles().pop() else {
        return Err(mtask::Error::Invalid("a queue expected".into()));
    };
    let queue = mtask::Queue::<u32>::from_raw(raw);
    let mut got = 0;
    while queue.get().is_ok() {
        got += 1;
    }
    Ok(got)
}

/// Runs forever without waiting.
fn spin() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Wakes every `period_ms`, `rounds` times; returns each wake's lateness in µs.
fn ticker((period_ms, rounds): (u64, u32)) -> mtask::Result<Vec<u64>> {
    let start = std::time::Instant::now();
    let mut late = Vec::with_capacity(rounds as usize);
    for round in 1..=rounds {
        let planned = Duration::from_millis(period_ms * u64::from(round));
        mtask::sleep(planned.saturating_sub(start.elapsed()));
        late.push(start.elapsed().saturating_sub(planned).as_micros() as u64);
    }
    Ok(late)
}

/// `uneven N LONG SHORT` (args): N children, every second one doing
/// `work(LONG)` and the others `work(SHORT)`. By the placement rule the
/// long ones share one shard, so the other runs out of work early: what
/// work stealing is for.
fn uneven() -> mtask::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>());
    let (Some(Ok(n)), Some(Ok(long)), Some(Ok(short))) = (args.next(), args.next(), args.next())
    else {
        return Err(mtask::Error::Invalid("usage: uneven N LONG SHORT".into()));
    };
    let children: Vec<mtask::Task<u64>> = (0..n)
        .map(|i| mtask::spawn_fn(work, &if i % 2 == 0 { long } else { short }))
        .collect::<Result<_, _>>()?;
    let mut sum = 0u64;
    for child in children {
        sum = sum.wrapping_add(child.join()?);
    }
    println!("checksum {sum}");
    Ok(())
}

/// `roam N ROUNDS` (args): N tasks that each, ROUNDS times, compute (the
/// even ones long, the odd ones briefly), yield, sometimes sleep, and pass
/// an item through a shared queue with deadlines: the long ones share a
/// shard at first and get taken by the other, then wait there.
fn roam() -> mtask::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>());
    let (Some(Ok(n)), Some(Ok(rounds))) = (args.next(), args.next()) else {
        return Err(mtask::Error::Invalid("usage: roam N ROUNDS".into()));
    };
    let queue = mtask::Queue::<u32>::new(4)?;
    let roamers: Vec<mtask::Task<u32>> = (0..n)
        .map(|i| mtask::spawn_with("roamer", &(i, rounds), vec![queue.clone().into_handle()]))
        .collect::<Result<_, _>>()?;
    let mut passed = 0;
    for roamer in roamers {
        passed += roamer.join()?;
    }
    println!("{passed} items passed by {n} roamers");
    Ok(())
}

fn roamer((i, rounds): (u32, u32)) -> mtask::Result<u32> {
    let Some(mtask::Handle::Queue(raw)) = mtask::take_handles().pop() else {
        return Err(mtask::Error::Invalid("a queue expected".into()));
    };
    let queue = mtask::Queue::<u32>::from_raw(raw);
    let spins = if i % 2 == 0 { 300_000u64 } else { 1_000 };
    let mut x: u64 = 1;
    let mut passed = 0;
    for round in 0..rounds {
        for k in 0..spins {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(k));
        }
        mtask::yield_now();
        if round % 5 == 0 {
            mtask::sleep(Duration::from_millis(1));
        }
        queue.put_timeout(&(i * 1000 + round), Duration::from_secs(10))?;
        queue.get_timeout(Duration::from_secs(10))?;
        passed += 1;
    }
    Ok(passed)
}

/// Runs for `millis` without waiting (preempted only by its time slice).
fn busy_ms(millis: u64) {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(millis) {
        std::hint::spin_loop();
    }
}

/// `crowd N MS` (args): N children busy for MS ms each, joined; a tenant
/// that keeps every core busy.
fn crowd() -> mtask::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let (Some(Ok(n)), Some(Ok(millis))) = (args.next(), args.next()) else {
        return Err(mtask::Error::Invalid("usage: crowd N MS".into()));
    };
    let children: Vec<mtask::Task<()>> = (0..n)
        .map(|_| mtask::spawn_fn(busy_ms, &millis))
        .collect::<Result<_, _>>()?;
    for child in children {
        child.join()?;
    }
    Ok(())
}

/// `ticker_main PERIOD_MS ROUNDS` (args): prints how late its latest wake was.
fn ticker_main() -> mtask::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let (Some(Ok(period)), Some(Ok(rounds))) = (args.next(), args.next()) else {
        return Err(mtask::Error::Invalid(
            "usage: ticker_main PERIOD_MS ROUNDS".into(),
        ));
    };
    let late = ticker((period, rounds as u32))?;
    let worst = late.iter().max().copied().unwrap_or(0);
    println!("ticker: {} wakes, latest {} us late", late.len(), worst);
    Ok(())
}

/// About a millisecond of arithmetic on this machine, then a yield, `units`
/// times; returns a checksum so the work is not optimised away.
fn work(units: u32) -> mtask::Result<u64> {
    let mut x: u64 = 1;
    for _ in 0..units {
        for i in 0..400_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        mtask::yield_now();
    }
    Ok(x)
}

/// `mtask-host run bench.wasm --entry crunch -- TASKS UNITS`: TASKS children
/// each doing `work(UNITS)`, joined; a CPU-bound app.
fn crunch() -> mtask::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>());
    let (Some(Ok(tasks)), Some(Ok(units))) = (args.next(), args.next()) else {
        return Err(mtask::Error::Invalid("usage: crunch TASKS UNITS".into()));
    };
    let children: Vec<mtask::Task<u64>> = (0..tasks)
        .map(|_| mtask::spawn_fn(work, &units))
        .collect::<Result<_, _>>()?;
    for child in children {
        child.join()?;
    }
    Ok(())
}

/// Waits for one item on the queue named `gate`: a task that stays alive
/// until `open_gate` lets it end.
fn gate() -> mtask::Result<()> {
    mtask::Queue::<()>::open("gate", 0)?.get()
}

/// Lets `n` tasks waiting in [`gate`] end.
fn open_gate(n: u32) -> mtask::Result<()> {
    let gate = mtask::Queue::<()>::open("gate", 0)?;
    for _ in 0..n {
        gate.put(&())?;
    }
    Ok(())
}

mtask::entries!(
    gate,
    open_gate,
    yielder,
    spawner,
    nothing,
    idle,
    pinger,
    pinger_across,
    ponger,
    producer,
    consumer,
    spin,
    ticker,
    work,
    crunch,
    uneven,
    roam,
    roamer,
    busy_ms,
    crowd,
    ticker_main
);
