//! Guest for the queue tests: each `*_main` entry exercises one rule of
//! docs/design.md §4 rows 9–10 or of the queues interface, and prints what it saw.

use std::time::{Duration, Instant};

use mtask::{Error, Handle, Queue, Task};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The queue handed to this task at spawn.
fn handed_queue<T: serde::Serialize + serde::de::DeserializeOwned>() -> mtask::Result<Queue<T>> {
    match mtask::take_handles().pop() {
        Some(Handle::Queue(raw)) => Ok(Queue::from_raw(raw)),
        _ => Err(Error::Invalid("no queue was handed over".into())),
    }
}

/// Spawns `entry(arg)` with a handle on `queue`.
fn spawn_on<A: serde::Serialize>(
    entry: &str,
    arg: &A,
    queue: &Queue<u32>,
) -> mtask::Result<Task<()>> {
    mtask::spawn_with(entry, arg, vec![queue.clone().into_handle()])
}

// Row 10: Queue([1,2,3], maxsize=3) with other, getter (3 gets) and putter
// (puts 4,5,6) prints other,1,4,2,5,3,6.
fn order_main() -> mtask::Result<()> {
    let queue = Queue::with_items(3, [1u32, 2, 3])?;
    let tasks = [
        spawn_on("other", &(), &queue)?,
        spawn_on("getter", &3u32, &queue)?,
        spawn_on("putter", &vec![4u32, 5, 6], &queue)?,
    ];
    drop(queue);
    for t in tasks {
        t.join()?;
    }
    Ok(())
}

fn other() {
    println!("other");
}

fn getter(n: u32) -> mtask::Result<()> {
    let queue = handed_queue::<u32>()?;
    for _ in 0..n {
        println!("{}", queue.get()?);
    }
    Ok(())
}

fn putter(items: Vec<u32>) -> mtask::Result<()> {
    let queue = handed_queue::<u32>()?;
    for item in items {
        queue.put(&item)?;
        println!("{item}");
    }
    Ok(())
}

// Row 9: waiting getters are served first come first served, and a put
// that wakes a getter lets the putter run first.
fn fifo_main() -> mtask::Result<()> {
    let queue = Queue::<u32>::new(0)?;
    let getters: Vec<Task<()>> = (1..=3u32)
        .map(|n| spawn_on("named_getter", &n, &queue))
        .collect::<Result<_, _>>()?;
    mtask::yield_now(); // every getter now waits on the empty queue
    mtask::yield_now();
    for item in [10u32, 20, 30] {
        queue.put(&item)?;
        println!("put {item}");
    }
    for g in getters {
        g.join()?;
    }
    Ok(())
}

fn named_getter(n: u32) -> mtask::Result<()> {
    let queue = handed_queue::<u32>()?;
    println!("getter {n} got {}", queue.get()?);
    Ok(())
}

// A put on a full queue waits; a get that makes room lets it in.
fn full_main() -> mtask::Result<()> {
    let queue = Queue::with_items(1, [1u32])?;
    let putter = spawn_on("putter", &vec![2u32], &queue)?;
    mtask::sleep(ms(5));
    println!(
        "len while putter waits: {}, full: {}",
        queue.len(),
        queue.is_full()
    );
    println!("got {}", queue.get()?);
    putter.join()?;
    println!("got {}", queue.get()?);
    Ok(())
}

// Timeouts: a get on an empty queue and a put on a full one give up at
// their deadline, having had no effect.
fn timeout_main() -> mtask::Result<()> {
    let queue = Queue::<u32>::new(1)?;
    let start = Instant::now();
    println!(
        "get: {:?} after {} ms",
        queue.get_timeout(ms(15)),
        start.elapsed().as_millis()
    );
    queue.put(&1)?;
    let start = Instant::now();
    println!(
        "put: {:?} after {} ms",
        queue.put_timeout(&2, ms(15)),
        start.elapsed().as_millis()
    );
    println!("len {}", queue.len());
    println!("get: {:?}", queue.get_timeout(ms(15)));
    println!("try_get: {:?}", queue.try_get());
    println!(
        "try_put: {:?} {:?} len {}",
        queue.try_put(&3),
        queue.try_put(&4),
        queue.len()
    );
    // A getter whose wait times out takes nothing from a later put.
    let late = Queue::<u32>::new(0)?;
    let waiter = spawn_on("get_with_timeout", &5u64, &late)?;
    mtask::sleep(ms(20));
    late.put(&7)?;
    waiter.join()?;
    println!("after the timed-out getter: {:?}", late.try_get());
    Ok(())
}

fn get_with_timeout(millis: u64) -> mtask::Result<()> {
    let queue = handed_queue::<u32>()?;
    println!("timed getter: {:?}", queue.get_timeout(ms(millis)));
    Ok(())
}

// Close: waiters resume with `closed`; queued items can still be drained.
fn close_main() -> mtask::Result<()> {
    let empty = Queue::<u32>::new(0)?;
    let getter = spawn_on("named_getter", &1u32, &empty)?;
    let full = Queue::with_items(1, [1u32])?;
    let putter = spawn_on("putter", &vec![2u32], &full)?;
    mtask::sleep(ms(5));
    empty.close();
    full.close();
    println!("getter: {:?}", getter.join().map_err(|e| e.to_string()));
    println!("putter: {:?}", putter.join().map_err(|e| e.to_string()));
    println!("put after close: {:?}", full.put(&3));
    println!("drain: {:?}", full.get());
    println!("then: {:?}", full.get());
    Ok(())
}

// Selective get: the first item with a wanted tag; the rest keep their order.
fn tagged_main() -> mtask::Result<()> {
    let queue = Queue::<String>::new(0)?;
    for (tag, item) in [(1, "a"), (2, "b"), (1, "c"), (3, "d")] {
        queue.put_tagged(tag, &item.to_string())?;
    }
    println!("tag 3: {:?}", queue.get_tagged(&[3])?);
    println!("tag 2 or 9: {:?}", queue.get_tagged(&[9, 2])?);
    println!("rest: {:?} {:?}", queue.get()?, queue.get()?);
    println!("tag 5: {:?}", queue.get_tagged_timeout(&[5], ms(5)));
    // A waiting selective getter is passed over by items it did not ask for.
    let waiter: Task<String> =
        mtask::spawn_with("tag_waiter", &7u64, vec![queue.clone().into_handle()])?;
    mtask::yield_now();
    queue.put_tagged(6, &"six".to_string())?;
    queue.put_tagged(7, &"seven".to_string())?;
    println!("waiter got {}", waiter.join()?);
    println!("left: {:?}", queue.try_get()?);
    Ok(())
}

fn tag_waiter(tag: u64) -> mtask::Result<String> {
    Ok(handed_queue::<String>()?.get_tagged(&[tag])?.1)
}

// Named queues are shared by the tasks of one app.
fn named_main() -> mtask::Result<()> {
    let child: Task<u32> = mtask::spawn("named_child", &())?;
    let jobs = Queue::<u32>::open("jobs", 0)?;
    jobs.put(&41)?;
    println!("child saw {}", child.join()?);
    Ok(())
}

fn named_child() -> mtask::Result<u32> {
    Ok(Queue::<u32>::open("jobs", 0)?.get()? + 1)
}

/// Puts `item` in the named queue `name` (for the isolation test).
fn put_named((name, item): (String, u32)) -> mtask::Result<()> {
    Queue::<u32>::open(&name, 0)?.put(&item)
}

/// What the named queue `name` holds now, without waiting.
fn peek_named(name: String) -> mtask::Result<Option<u32>> {
    Queue::<u32>::open(&name, 0)?.try_get()
}

// The bytes an app's queues hold are capped.
fn bytes_main() -> mtask::Result<()> {
    let queue = Queue::<Vec<u8>>::new(0)?;
    let big = vec![7u8; 40 << 10];
    println!("first: {:?}", queue.put(&big));
    match queue.put(&big) {
        Err(Error::Limit(message)) => println!("second: limit: {message}"),
        other => println!("second: {other:?}"),
    }
    queue.get()?;
    println!("after a get: {:?}", queue.put(&big));
    Ok(())
}

// Two tasks waiting on each other's queues can never run again.
fn deadlock_main() -> mtask::Result<()> {
    let queue = Queue::<u32>::new(0)?;
    let child = spawn_on("named_getter", &1u32, &queue)?;
    Queue::<u32>::new(0)?.get()?;
    child.join()
}

// The main task fails while its child waits forever: the run ends in a
// deadlock, and the main task's own error must not be lost.
fn orphan_main() -> mtask::Result<()> {
    let queue = Queue::<u32>::new(0)?;
    let _child = spawn_on("named_getter", &1u32, &queue)?;
    mtask::yield_now();
    Err(mtask::Error::Invalid("main gave up".into()))
}

// The orders that hold across shards (docs/design.md §3): waiting getters
// are served in the order they began to wait, wherever they run; the items
// of one putter come out in the order it put them.
fn fifo_across_main() -> mtask::Result<()> {
    let queue = Queue::<u32>::new(0)?;
    let mut getters: Vec<Task<u32>> = Vec::new();
    for _ in 0..4 {
        getters.push(mtask::spawn_with(
            "getter_value",
            &(),
            vec![queue.clone().into_handle()],
        )?);
        // Long enough for it to start and wait, on either shard.
        mtask::sleep(ms(20));
    }
    for item in [10u32, 20, 30, 40] {
        queue.put(&item)?;
    }
    for (i, getter) in getters.into_iter().enumerate() {
        println!("getter {} got {}", i + 1, getter.join()?);
    }
    let items = Queue::<u32>::new(8)?;
    let putters: Vec<Task<()>> = (0..2u32)
        .map(|p| {
            mtask::spawn_with(
                "put_range",
                &(p * 100_000, 2_000u32),
                vec![items.clone().into_handle()],
            )
        })
        .collect::<Result<_, _>>()?;
    let mut last = [None::<u32>; 2];
    let mut out_of_order = 0;
    for _ in 0..4_000 {
        let item = items.get()?;
        let from = (item / 100_000) as usize;
        if last[from].is_some_and(|l| l >= item) {
            out_of_order += 1;
        }
        last[from] = Some(item);
    }
    for p in putters {
        p.join()?;
    }
    println!("4000 items from 2 putters, {out_of_order} out of order");
    Ok(())
}

fn getter_value() -> mtask::Result<u32> {
    handed_queue::<u32>()?.get()
}

fn put_range((first, count): (u32, u32)) -> mtask::Result<()> {
    let queue = handed_queue::<u32>()?;
    for item in first..first + count {
        queue.put(&item)?;
    }
    Ok(())
}

// A stress of queues across shards: PAIRS producers put PER distinct items
// each into one bounded queue, PAIRS consumers move them to a results queue,
// and main checks that every item came through exactly once.
fn exchange_main() -> mtask::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u32>());
    let (Some(Ok(pairs)), Some(Ok(per))) = (args.next(), args.next()) else {
        return Err(Error::Invalid("usage: exchange_main PAIRS PER".into()));
    };
    let work = Queue::<u32>::new(64)?;
    let results = Queue::<u32>::new(0)?;
    let mut tasks: Vec<Task<()>> = Vec::new();
    for p in 0..pairs {
        let handles = vec![work.clone().into_handle()];
        tasks.push(mtask::spawn_with(
            "exchange_producer",
            &(p * per, per),
            handles,
        )?);
        let handles = vec![work.clone().into_handle(), results.clone().into_handle()];
        tasks.push(mtask::spawn_with("exchange_consumer", &(), handles)?);
    }
    let total = (pairs * per) as usize;
    let mut seen = vec![false; total];
    for _ in 0..total {
        let item = results.get()? as usize;
        if std::mem::replace(&mut seen[item], true) {
            println!("item {item} came twice");
        }
    }
    work.close();
    for task in tasks {
        task.join()?;
    }
    let lost = seen.iter().filter(|s| !**s).count();
    println!(
        "exchanged {total} items among {} tasks, {lost} lost",
        2 * pairs
    );
    Ok(())
}

fn exchange_producer((first, count): (u32, u32)) -> mtask::Result<()> {
    let work = handed_queue::<u32>()?;
    for item in first..first + count {
        work.put(&item)?;
    }
    Ok(())
}

fn exchange_consumer() -> mtask::Result<()> {
    let mut handles = mtask::take_handles().into_iter();
    let (Some(Handle::Queue(work)), Some(Handle::Queue(results))) =
        (handles.next(), handles.next())
    else {
        return Err(Error::Invalid("two queues expected".into()));
    };
    let (work, results) = (
        Queue::<u32>::from_raw(work),
        Queue::<u32>::from_raw(results),
    );
    loop {
        match work.get() {
            Ok(item) => results.put(&item)?,
            Err(Error::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

mtask::entries!(
    fifo_across_main,
    getter_value,
    put_range,
    exchange_main,
    exchange_producer,
    exchange_consumer,
    order_main,
    other,
    getter,
    putter,
    fifo_main,
    named_getter,
    full_main,
    timeout_main,
    get_with_timeout,
    close_main,
    tagged_main,
    tag_waiter,
    named_main,
    named_child,
    put_named,
    peek_named,
    bytes_main,
    deadlock_main,
    orphan_main,
);
