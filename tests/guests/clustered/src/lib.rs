//! Tasks for the cluster tests (tests/cluster.rs): producers and consumers
//! of a named queue shared by several hosts, and the calls' edge cases.
//! Entries read their settings from the command line (`-- ARGS`).

use std::time::{Duration, Instant};

use mtask::{Error, Queue};

/// The arguments after the program's name.
fn args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

/// Argument `i` as a number, or `default`.
fn number(i: usize, default: u64) -> u64 {
    args()
        .get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// `produce QUEUE N MAXSIZE`: puts 0..N on QUEUE (made with MAXSIZE), then closes it.
fn produce() -> mtask::Result<()> {
    let name = args().first().cloned().unwrap_or("work".into());
    let (n, maxsize) = (number(1, 100), number(2, 0));
    let queue = Queue::<u64>::open(&name, maxsize as u32)?;
    for i in 0..n {
        queue.put(&i)?;
    }
    queue.close();
    println!("produced {n}");
    Ok(())
}

/// `consume QUEUE MS`: takes items until the queue is closed and empty,
/// printing each, sleeping MS milliseconds after each one (work that takes
/// time: a host killed meanwhile holds an item).
fn consume() -> mtask::Result<()> {
    let name = args().first().cloned().unwrap_or("work".into());
    let pause = Duration::from_millis(number(1, 0));
    let queue = Queue::<u64>::open(&name, 0)?;
    let mut count = 0;
    loop {
        match queue.get() {
            Ok(item) => {
                println!("got {item}");
                count += 1;
                mtask::sleep(pause);
            }
            Err(Error::Closed) => break,
            Err(e) => return Err(e),
        }
    }
    println!("consumed {count}");
    Ok(())
}

/// `edges QUEUE`: timeouts, a full queue, try-put and try-get, len, close.
fn edges() -> mtask::Result<()> {
    let name = args().first().cloned().unwrap_or("edges".into());
    let queue = Queue::<String>::open(&name, 2)?;
    let began = Instant::now();
    let got = queue.get_timeout(Duration::from_millis(300));
    println!("empty get: {:?} after {} ms", got.map(|_| ()), ms(began));
    assert_eq!(queue.try_get()?, None);
    queue.put(&"a".into())?;
    assert!(queue.try_put(&"b".into())?);
    println!("len {} full {}", queue.len(), queue.is_full());
    assert!(
        !queue.try_put(&"c".into())?,
        "a third item fits in a queue of 2"
    );
    let began = Instant::now();
    let put = queue.put_timeout(&"c".into(), Duration::from_millis(300));
    println!("full put: {:?} after {} ms", put, ms(began));
    println!("first {}", queue.get()?);
    // The first item is acked by this second get: room for one more.
    println!("second {}", queue.get()?);
    queue.put_timeout(&"c".into(), Duration::from_secs(5))?;
    match queue.get_tagged(&[1]) {
        Err(Error::Invalid(why)) => println!("tagged: {why}"),
        other => println!("tagged: unexpected {other:?}"),
    }
    queue.close();
    println!("put after close: {:?}", queue.put(&"d".into()));
    println!("left {}", queue.get()?);
    println!("get after drain: {:?}", queue.get().map(|_| ()));
    Ok(())
}

/// `peek QUEUE`: what a tenant finds on a queue of that name now.
fn peek() -> mtask::Result<()> {
    let name = args().first().cloned().unwrap_or("secret".into());
    let queue = Queue::<String>::open(&name, 0)?;
    println!("found {:?}", queue.try_get()?);
    Ok(())
}

/// `plant QUEUE TEXT`: leaves one item on a queue.
fn plant() -> mtask::Result<()> {
    let name = args().first().cloned().unwrap_or("secret".into());
    let text = args().get(1).cloned().unwrap_or_default();
    Queue::<String>::open(&name, 0)?.put(&text)?;
    println!("planted");
    Ok(())
}

/// `spread N WORK`: N children placed anywhere, each doing WORK units of
/// CPU work (400,000 multiply-adds each);
/// prints where each ran (its host's pid) and the sum of what they return.
fn spread() -> mtask::Result<()> {
    let (n, work) = (number(0, 8), number(1, 200));
    let began = Instant::now();
    let children = (0..n)
        .map(|i| mtask::spawn_fn_anywhere(burn, &(i, work)))
        .collect::<mtask::Result<Vec<_>>>()?;
    let mut sum = 0;
    for child in children {
        let (i, pid) = child.join()?;
        println!("child {i} ran in {pid}");
        sum += i;
    }
    println!("sum {sum} in {} ms", ms(began));
    Ok(())
}

/// `work` units of CPU work; returns `i` and the host it ran on.
fn burn((i, work): (u64, u64)) -> mtask::Result<(u64, String)> {
    let mut x = i;
    for _ in 0..work {
        for _ in 0..400_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
    }
    Ok((i, host_pid()))
}

/// The host process this task runs in, from the environment the test gives
/// each host (`--env HOST=...`).
fn host_pid() -> String {
    std::env::var("HOST").unwrap_or_else(|_| "?".into())
}

/// `outcomes`: a remote child's value, error, trap and cancel reach the parent.
fn outcomes() -> mtask::Result<()> {
    println!("value: {:?}", mtask::spawn_fn_anywhere(square, &12)?.join());
    println!("error: {:?}", mtask::spawn_fn_anywhere(fails, &())?.join());
    println!(
        "trap: {}",
        mtask::spawn_fn_anywhere(traps, &())?.join().is_err()
    );
    let slow = mtask::spawn_fn_anywhere(nap, &5_000)?;
    println!(
        "timeout: {:?}",
        slow.join_timeout(Duration::from_millis(100))
    );
    slow.cancel();
    println!("cancelled: {:?}", slow.join());
    let key = mtask::spawn_fn_anywhere(key, &())?.join()?;
    println!("key: {}", key.is_some());
    println!("my key: {:?}", mtask::spawn_key());
    let local = Queue::<u64>::new(1)?;
    let refused = mtask::spawn_at::<_, ()>(
        mtask::Placement::Anywhere,
        "nap",
        &1u64,
        vec![local.into_handle()],
    );
    println!("local queue: {:?}", refused.map(|_| ()));
    let shared = Queue::<u64>::open("handed", 0)?;
    let child = mtask::spawn_fn_anywhere_with(drain_one, &(), vec![shared.clone().into_handle()])?;
    shared.put(&77)?;
    println!("handed: {:?}", child.join());
    Ok(())
}

fn square(n: u64) -> mtask::Result<u64> {
    Ok(n * n)
}

fn fails() -> Result<(), String> {
    Err(format!("no, said {}", host_pid()))
}

fn traps() -> mtask::Result<()> {
    panic!("a remote panic")
}

fn nap(ms: u64) -> mtask::Result<()> {
    mtask::sleep(Duration::from_millis(ms));
    Ok(())
}

fn key() -> mtask::Result<Option<String>> {
    Ok(mtask::spawn_key())
}

/// Takes one item from the queue it was handed.
fn drain_one() -> mtask::Result<u64> {
    let handles = mtask::take_handles();
    let Some(mtask::Handle::Queue(raw)) = handles.into_iter().next() else {
        return Err(Error::Invalid("no queue handed".into()));
    };
    Queue::<u64>::from_raw(raw).get_timeout(Duration::from_secs(10))
}

/// `jobs N MS`: N children anywhere, each sleeping MS ms then putting its
/// number and spawn key on the queue `done`; waits for them all.
fn jobs() -> mtask::Result<()> {
    let (n, pause) = (number(0, 20), number(1, 100));
    let children = (0..n)
        .map(|i| mtask::spawn_fn_anywhere(job, &(i, pause)))
        .collect::<mtask::Result<Vec<_>>>()?;
    for child in children {
        child.join()?;
    }
    println!("jobs done");
    Ok(())
}

fn job((i, pause): (u64, u64)) -> mtask::Result<()> {
    mtask::sleep(Duration::from_millis(pause));
    let done = Queue::<(u64, String)>::open("done", 0)?;
    done.put(&(i, mtask::spawn_key().unwrap_or_default()))?;
    println!("job {i} done in {}", host_pid());
    Ok(())
}

/// `tally N`: takes N items from `done`; prints each number once it has them all.
fn tally() -> mtask::Result<()> {
    let n = number(0, 20);
    let done = Queue::<(u64, String)>::open("done", 0)?;
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < n as usize {
        let (i, key) = done.get_timeout(Duration::from_secs(60))?;
        seen.entry(i).or_insert(key);
    }
    println!(
        "tally {}",
        seen.keys()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(())
}

/// `qping N`: N round trips between this task and a child through two
/// named queues; prints the microseconds per round trip.
fn qping() -> mtask::Result<()> {
    let n = number(0, 1000);
    let (ping, pong) = (
        Queue::<u64>::open("ping", 1)?,
        Queue::<u64>::open("pong", 1)?,
    );
    let handles = vec![ping.clone().into_handle(), pong.clone().into_handle()];
    let ponger = mtask::spawn_fn_with(qpong, &n, handles)?;
    let began = Instant::now();
    for i in 0..n {
        ping.put(&i)?;
        assert_eq!(pong.get()?, i);
    }
    let took = began.elapsed();
    ponger.join()?;
    println!("qping {n} {:.1}", took.as_secs_f64() * 1e6 / n as f64);
    Ok(())
}

fn qpong(n: u64) -> mtask::Result<()> {
    let mut handles = mtask::take_handles().into_iter();
    let (Some(mtask::Handle::Queue(a)), Some(mtask::Handle::Queue(b))) =
        (handles.next(), handles.next())
    else {
        return Err(Error::Invalid("two queues expected".into()));
    };
    let (ping, pong) = (Queue::<u64>::from_raw(a), Queue::<u64>::from_raw(b));
    for _ in 0..n {
        pong.put(&ping.get()?)?;
    }
    Ok(())
}

/// `qflood N P`: P producer tasks put N items in all on one named queue
/// while P consumer tasks take them; prints items per second.
fn qflood() -> mtask::Result<()> {
    let (n, p) = (number(0, 10_000), number(1, 4));
    let began = Instant::now();
    let producers = (0..p)
        .map(|i| mtask::spawn_fn(flood_put, &(i, p, n)))
        .collect::<mtask::Result<Vec<_>>>()?;
    let consumers = (0..p)
        .map(|_| mtask::spawn_fn(flood_get, &(n / p)))
        .collect::<mtask::Result<Vec<_>>>()?;
    for task in producers {
        task.join()?;
    }
    let got: u64 = consumers
        .into_iter()
        .map(|t| t.join())
        .sum::<mtask::Result<u64>>()?;
    assert_eq!(got, n / p * p);
    println!(
        "qflood {n} {:.0}",
        got as f64 / began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Puts every `p`th number below `n` from `i` on `flood`.
fn flood_put((i, p, n): (u64, u64, u64)) -> mtask::Result<()> {
    let queue = Queue::<u64>::open("flood", 0)?;
    for item in (i..n / p * p).step_by(p as usize) {
        queue.put(&item)?;
    }
    Ok(())
}

/// Takes `n` items from `flood`.
fn flood_get(n: u64) -> mtask::Result<u64> {
    let queue = Queue::<u64>::open("flood", 0)?;
    for _ in 0..n {
        queue.get()?;
    }
    Ok(n)
}

/// `rspawn N`: N children placed anywhere, one after another, each joined;
/// prints the microseconds per spawn and join.
fn rspawn() -> mtask::Result<()> {
    let n = number(0, 200);
    let began = Instant::now();
    for i in 0..n {
        assert_eq!(mtask::spawn_fn_anywhere(square, &i)?.join()?, i * i);
    }
    println!(
        "rspawn {n} {:.1}",
        began.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}

fn ms(since: Instant) -> u128 {
    since.elapsed().as_millis()
}

mtask::entries!(
    produce, consume, edges, peek, plant, spread, burn, outcomes, square, fails, traps, nap, key,
    drain_one, jobs, job, tally, qping, qpong, qflood, flood_put, flood_get, rspawn
);
