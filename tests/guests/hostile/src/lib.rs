//! Hostile and well-behaved tasks side by side, for the sandbox tests: each
//! `*_main` entry runs one hostile child beside a task that keeps a
//! schedule, and prints how both fared.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mtask::{Error, Task, TaskError};

/// Runs forever without waiting.
fn spin() {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Wakes every `period` ms, `rounds` times; returns the worst lateness in ms.
fn steady((period, rounds): (u64, u32)) -> mtask::Result<u64> {
    let start = Instant::now();
    let mut worst = 0;
    for round in 1..=rounds {
        // Sleep until the planned time, so lateness does not add up.
        let planned = Duration::from_millis(period * u64::from(round));
        mtask::sleep(planned.saturating_sub(start.elapsed()));
        worst = worst.max(start.elapsed().saturating_sub(planned).as_millis() as u64);
    }
    Ok(worst)
}

/// Grabs memory until the host refuses.
fn memory_bomb() -> mtask::Result<()> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        black_box(&hoard);
    }
}

/// Recurses without end.
fn deep() -> mtask::Result<()> {
    fn recurse(n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            black_box(recurse(black_box(n - 1))) + 1
        }
    }
    black_box(recurse(u64::MAX));
    Ok(())
}

/// Spawns short-lived children until refused; returns how many it got.
fn spawn_bomb() -> mtask::Result<String> {
    let mut children: Vec<Task<u64>> = Vec::new();
    loop {
        match mtask::spawn("steady", &(5u64, 1u32)) {
            Ok(child) => children.push(child),
            Err(e) => return Ok(format!("spawned {} then: {e}", children.len())),
        }
    }
}

/// Opens UDP sockets until refused; says how many it got.
fn socket_bomb_main() -> mtask::Result<()> {
    let mut sockets = Vec::new();
    loop {
        match mtask::UdpSocket::bind("127.0.0.1:0") {
            Ok(socket) => sockets.push(socket),
            Err(e) => {
                println!("opened {} then: {e}", sockets.len());
                break;
            }
        }
    }
    // Closing them makes room again.
    sockets.clear();
    println!(
        "after closing: {:?}",
        mtask::UdpSocket::bind("127.0.0.1:0").map(|_| ())
    );
    Ok(())
}

/// Puts one item bigger than the app's queues may hold.
fn huge_item_main() -> mtask::Result<()> {
    let queue = mtask::Queue::<Vec<u8>>::new(0)?;
    println!(
        "huge: {:?}",
        queue.put(&vec![0u8; 2 << 20]).map_err(|e| e.to_string())
    );
    println!(
        "small: {:?}",
        queue.put(&vec![0u8; 16]).map_err(|e| e.to_string())
    );
    Ok(())
}

/// Serves two connections on `arg 1`: the first handler traps after reading
/// (its connection must close), the second echoes.
fn trap_server_main() -> mtask::Result<()> {
    let listener = mtask::TcpListener::bind(&std::env::args().nth(1).unwrap_or_default())?;
    println!("listening on {}", listener.local_addr()?);
    let mut handlers = Vec::new();
    for entry in ["trapping_handler", "echo_handler"] {
        let (conn, _) = listener.accept()?;
        handlers.push(mtask::spawn_with::<_, ()>(
            entry,
            &(),
            vec![conn.into_handle()],
        )?);
        // Serve one at a time, so the order is fixed.
        let handler = handlers.pop().expect("just pushed");
        match handler.join() {
            Err(Error::Task { error, .. }) => println!("{entry}: {}", summary(&error)),
            other => println!("{entry}: {other:?}"),
        }
    }
    Ok(())
}

fn handed_stream() -> mtask::Result<mtask::TcpStream> {
    match mtask::take_handles().pop() {
        Some(mtask::Handle::TcpStream(conn)) => Ok(conn),
        _ => Err(Error::Invalid("no connection".into())),
    }
}

fn trapping_handler() -> mtask::Result<()> {
    let conn = handed_stream()?;
    let request = conn.recv(100)?;
    panic!("trap while serving {} bytes", request.len());
}

fn echo_handler() -> mtask::Result<()> {
    let conn = handed_stream()?;
    let request = conn.recv(100)?;
    conn.send_all(&request)
}

/// Runs `hostile` beside a steady sleeper (20 ms × 10) and reports both.
fn beside(hostile: &str) -> mtask::Result<()> {
    let bad: Task<()> = mtask::spawn(hostile, &())?;
    let good: Task<u64> = mtask::spawn("steady", &(20u64, 10u32))?;
    println!("steady: worst lateness {} ms", good.join()?);
    if hostile == "spin" {
        bad.cancel();
    }
    match bad.join() {
        Err(Error::Task { error, .. }) => println!("{hostile}: {}", summary(&error)),
        other => println!("{hostile}: {other:?}"),
    }
    Ok(())
}

fn summary(error: &TaskError) -> String {
    let first_line = |m: &str| m.lines().next().unwrap_or_default().to_string();
    match error {
        TaskError::Failed(m) => format!("failed: {}", first_line(m)),
        TaskError::Trapped(m) => format!("trapped: {}", first_line(m)),
        TaskError::Cancelled => "cancelled".into(),
        TaskError::Limit(m) => format!("limit: {}", first_line(m)),
    }
}

/// Prints `line`, then stays alive a minute so that the test can look at
/// the host's memory (it ends the host when done).
fn hold(line: &str) {
    println!("{line}");
    mtask::sleep(Duration::from_secs(60));
}

/// Fills a queue with empty items until refused, then opens named queues
/// with long names until refused.
fn empty_items_main() -> mtask::Result<()> {
    let queue = mtask::Queue::<()>::new(0)?;
    let mut items = 0u64;
    let refused = loop {
        match queue.try_put(&()) {
            Ok(true) => items += 1,
            Ok(false) => unreachable!("an unbounded queue has room"),
            Err(e) => break e,
        }
    };
    println!("put {items} empty items then: {refused}");
    hold("holding");
    Ok(())
}

/// Names: one too long, then 1 KiB names until refused.
fn names_main() -> mtask::Result<()> {
    let long = mtask::Queue::<()>::open(&"q".repeat(1 << 20), 0).map(|_| ());
    println!("1 MiB name: {long:?}");
    let mut named = Vec::new();
    let refused = loop {
        match mtask::Queue::<()>::open(&format!("{:01024}", named.len()), 0) {
            Ok(queue) => named.push(queue),
            Err(e) => break e,
        }
    };
    println!("opened {} named queues then: {refused}", named.len());
    Ok(())
}

/// Clones a queue handle until the host ends the task.
fn clone_bomb() -> mtask::Result<()> {
    let queue = mtask::Queue::<()>::new(0)?;
    let mut clones = Vec::new();
    loop {
        clones.push(queue.clone());
    }
}

fn clone_bomb_main() -> mtask::Result<()> {
    match mtask::call::<_, ()>("clone_bomb", &()) {
        Err(Error::Task { error, .. }) => println!("clone_bomb: {}", summary(&error)),
        other => println!("clone_bomb: {other:?}"),
    }
    Ok(())
}

/// Grows its memory to 48 MiB, touching every page, then waits.
fn memory_hog() -> mtask::Result<()> {
    let hoard: Vec<Vec<u8>> = (0..48).map(|_| vec![1u8; 1 << 20]).collect();
    mtask::sleep(Duration::from_secs(60));
    black_box(&hoard);
    Ok(())
}

/// 40 hogs of 48 MiB: says how many hold their memory and how many were
/// refused, then holds.
fn app_memory_main() -> mtask::Result<()> {
    let hogs: Vec<Task<()>> = (0..40)
        .map(|_| mtask::spawn("memory_hog", &()))
        .collect::<mtask::Result<_>>()?;
    mtask::sleep(Duration::from_secs(2));
    let (mut holding, mut refused) = (0, Vec::new());
    for hog in &hogs {
        match hog.join_timeout(Duration::ZERO) {
            Err(Error::Timeout { .. }) => holding += 1,
            Err(Error::Task { error, .. }) => refused.push(summary(&error)),
            other => println!("unexpected: {other:?}"),
        }
    }
    println!("holding {holding}, refused {}", refused.len());
    println!(
        "first refusal: {}",
        refused.first().map_or("none", String::as_str)
    );
    hold("measure");
    Ok(())
}

/// 20,000 tagged items, then selective gets over 100,000 tags that match
/// none, each with a zero timeout; says how long the gets took.
fn tag_scan() -> mtask::Result<String> {
    let queue = mtask::Queue::<u8>::new(0)?;
    for tag in 0..20_000 {
        queue.put_tagged(tag, &0)?;
    }
    let tags: Vec<u64> = (20_000..120_000).collect();
    let start = Instant::now();
    for _ in 0..50 {
        match queue.get_tagged_timeout(&tags, Duration::ZERO) {
            Err(Error::Timeout { .. }) => {}
            other => return Ok(format!("unexpected {other:?}")),
        }
    }
    Ok(format!("50 scans in {} ms", start.elapsed().as_millis()))
}

/// A hostile child beside a steady one (10 ms × 30), each reported.
fn beside_steady(hostile: &str) -> mtask::Result<()> {
    let bad: Task<String> = mtask::spawn(hostile, &())?;
    let good: Task<u64> = mtask::spawn("steady", &(10u64, 30u32))?;
    println!("steady: worst lateness {} ms", good.join()?);
    match bad.join() {
        Ok(said) => println!("{hostile}: {said}"),
        Err(Error::Task { error, .. }) => println!("{hostile}: {}", summary(&error)),
        Err(e) => println!("{hostile}: {e}"),
    }
    Ok(())
}

fn tag_scan_main() -> mtask::Result<()> {
    beside_steady("tag_scan")
}

fn spawn_flood_main() -> mtask::Result<()> {
    beside_steady("spawn_bomb")
}

/// Spends its time in host calls: selective gets over 100,000 tags and
/// 20,000 items (once 400 ms a call, all of it past any budget check).
fn host_call_hog() -> mtask::Result<String> {
    let queue = mtask::Queue::<u8>::new(0)?;
    for tag in 0..20_000 {
        queue.put_tagged(tag, &0)?;
    }
    let tags: Vec<u64> = (20_000..120_000).collect();
    loop {
        let _ = queue.get_tagged_timeout(&tags, Duration::ZERO);
    }
}

fn host_call_hog_main() -> mtask::Result<()> {
    let start = Instant::now();
    let result = mtask::call::<_, String>("host_call_hog", &());
    let took = start.elapsed().as_millis();
    match result {
        Err(Error::Task { error, .. }) => println!("hog: {} after {took} ms", summary(&error)),
        other => println!("hog: {other:?}"),
    }
    Ok(())
}

/// Serves `arg 2` connections on `arg 1` (a task each, which echoes one
/// message) beside a steady task, and says how late the steady one was.
fn burst_server_main() -> mtask::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let count: u64 = args[2]
        .parse()
        .map_err(|_| Error::Invalid(args[2].clone()))?;
    let listener = mtask::TcpListener::bind_with_backlog(&args[1], 4096)?;
    let good: Task<u64> = mtask::spawn("steady", &(10u64, 150u32))?;
    println!("listening on {}", listener.local_addr()?);
    for _ in 0..count {
        let (conn, _) = listener.accept()?;
        mtask::spawn_with::<_, ()>("echo_handler", &(), vec![conn.into_handle()])?;
    }
    println!("steady: worst lateness {} ms", good.join()?);
    Ok(())
}

/// Runs 300 ms without waiting, then ends: only preemption lets the
/// others run meanwhile.
fn busy_300ms() -> mtask::Result<String> {
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < Duration::from_millis(300) {
        n = black_box(n.wrapping_add(1));
    }
    Ok("done".into())
}

/// A steady task started first, then [`busy_300ms`] beside it: with
/// preemption the steady one keeps its schedule; with `--no-preempt` (one
/// thread) it waits until the busy one ends.
fn busy_main() -> mtask::Result<()> {
    let good: Task<u64> = mtask::spawn("steady", &(10u64, 40u32))?;
    // Let it start its clock first.
    mtask::sleep(Duration::from_millis(1));
    let busy: Task<String> = mtask::spawn("busy_300ms", &())?;
    println!("steady: worst lateness {} ms", good.join()?);
    println!("busy: {}", busy.join()?);
    Ok(())
}

fn spin_main() -> mtask::Result<()> {
    beside("spin")
}

fn bomb_main() -> mtask::Result<()> {
    beside("memory_bomb")
}

fn deep_main() -> mtask::Result<()> {
    beside("deep")
}

fn spawn_bomb_main() -> mtask::Result<()> {
    println!("{}", mtask::call::<_, String>("spawn_bomb", &())?);
    Ok(())
}

/// Bytes of the shadow stack below the caller that `scribble` fills and
/// `peek` reads; and wasm pages each grows its memory by.
const BELOW_STACK: usize = 256 << 10;
const GROWN_PAGES: usize = 16;

/// The address just below this function's frame: the shadow stack's top.
#[inline(never)]
fn stack_top() -> usize {
    let marker = 0u8;
    black_box(&marker) as *const u8 as usize
}

/// Grows linear memory by `pages` wasm pages: the address of the first new byte.
#[cfg(target_arch = "wasm32")]
fn grow(pages: usize) -> usize {
    let old = core::arch::wasm32::memory_grow(0, pages);
    assert!(old != usize::MAX, "memory.grow refused");
    old << 16
}

#[cfg(not(target_arch = "wasm32"))]
fn grow(_pages: usize) -> usize {
    unreachable!("guests run as wasm32")
}

/// Fills the unused shadow stack below its frame and 16 freshly grown
/// pages of linear memory with 0xA5, for the next task in its slot to look
/// for (`peek`).
fn scribble() -> mtask::Result<u32> {
    let top = stack_top() - 4096;
    let grown = grow(GROWN_PAGES);
    // SAFETY: linear memory this task owns and nothing else uses: the
    // shadow stack below every live frame, and the pages just grown.
    unsafe {
        std::ptr::write_bytes((top - BELOW_STACK) as *mut u8, 0xA5, BELOW_STACK);
        std::ptr::write_bytes(grown as *mut u8, 0xA5, GROWN_PAGES << 16);
    }
    Ok(black_box(grown as u32))
}

/// Counts the bytes that are not zero where `scribble` writes: in a fresh
/// instance they never were written, so any is another task's.
fn peek() -> mtask::Result<u64> {
    let top = stack_top() - 4096;
    let grown = grow(GROWN_PAGES);
    let count = |start: usize, len: usize| {
        (start..start + len)
            // SAFETY: as in `scribble`; volatile so that no read is assumed zero.
            .filter(|&at| unsafe { std::ptr::read_volatile(at as *const u8) } != 0)
            .count() as u64
    };
    Ok(count(top - BELOW_STACK, BELOW_STACK) + count(grown, GROWN_PAGES << 16))
}

mtask::entries!(
    scribble,
    peek,
    spin,
    steady,
    memory_bomb,
    deep,
    spawn_bomb,
    spin_main,
    bomb_main,
    deep_main,
    spawn_bomb_main,
    socket_bomb_main,
    huge_item_main,
    trap_server_main,
    trapping_handler,
    echo_handler,
    empty_items_main,
    names_main,
    clone_bomb,
    clone_bomb_main,
    memory_hog,
    app_memory_main,
    tag_scan,
    tag_scan_main,
    spawn_flood_main,
    host_call_hog,
    host_call_hog_main,
    burst_server_main,
    busy_300ms,
    busy_main
);
