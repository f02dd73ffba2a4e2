//! Guest for the end-to-end tests: each `*_main` entry exercises one rule
//! of docs/design.md §4 and prints what it observed, for the test to compare.

use std::time::{Duration, Instant};

use mtask::{Error, Task, TaskError};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// Row 1: three printers interleave 1,2,3,1,2,3.
fn order_main() -> mtask::Result<()> {
    let printers: Vec<Task<()>> = ["1", "2", "3"]
        .iter()
        .map(|m| mtask::spawn("printer", &(*m, 3u32)))
        .collect::<Result<_, _>>()?;
    for p in printers {
        p.join()?;
    }
    Ok(())
}

fn printer((message, times): (String, u32)) {
    for _ in 0..times {
        println!("{message}");
        mtask::yield_now();
    }
}

// Row 2: timers are collected between passes, so a task that never stops
// yielding does not starve a sleeper.
fn starve_main() -> mtask::Result<()> {
    let spinner = mtask::spawn::<_, ()>("spinner", &())?;
    let start = Instant::now();
    mtask::sleep(ms(20));
    println!("slept {} ms beside a spinner", start.elapsed().as_millis());
    spinner.cancel();
    match spinner.join() {
        Err(Error::Task {
            error: TaskError::Cancelled,
            ..
        }) => println!("spinner cancelled"),
        other => println!("spinner: {other:?}"),
    }
    Ok(())
}

fn spinner() {
    loop {
        mtask::yield_now();
    }
}

// Row 3: the child's end and the join deadline land in the same pass: the
// end wins.
fn race_main() -> mtask::Result<()> {
    let child = mtask::spawn::<_, u32>("busy", &30u64)?;
    match child.join_timeout(ms(10)) {
        Ok(v) => println!("joined {v}"),
        Err(e) => println!("join failed: {e}"),
    }
    Ok(())
}

/// Runs without yielding for `millis`, then returns 7.
fn busy(millis: u64) -> mtask::Result<u32> {
    let start = Instant::now();
    while start.elapsed() < ms(millis) {}
    Ok(7)
}

// Rows 4, 5, 14: a join that times out has no effect; the deadline counts
// from the call; the child can be joined again.
fn timeout_main() -> mtask::Result<()> {
    let child = mtask::spawn::<_, u64>("napper", &60u64)?;
    // Busy time before the call must not count toward its deadline.
    busy(20)?;
    let start = Instant::now();
    match child.join_timeout(ms(15)) {
        Err(Error::Timeout { .. }) => println!("timeout after {} ms", start.elapsed().as_millis()),
        other => println!("unexpected: {other:?}"),
    }
    println!("joined {}", child.join()?);
    Ok(())
}

fn napper(millis: u64) -> mtask::Result<u64> {
    mtask::sleep(ms(millis));
    Ok(millis)
}

// Row 7: errors chain up three levels.
fn chain_main() -> mtask::Result<()> {
    match mtask::call::<_, ()>("level1", &()) {
        Err(e) => println!("{e}"),
        Ok(()) => println!("no error"),
    }
    Ok(())
}

fn level1() -> mtask::Result<()> {
    mtask::call("level2", &())
}

fn level2() -> mtask::Result<()> {
    mtask::call("level3", &())
}

fn level3() -> Result<(), String> {
    mtask::yield_now();
    Err("foo".into())
}

// Trap containment: a panic and a trap end only their own task.
fn trap_main() -> mtask::Result<()> {
    for entry in ["panicker", "trapper"] {
        match mtask::call::<_, ()>(entry, &()) {
            Err(Error::Task {
                error: TaskError::Trapped(message),
                ..
            }) => println!("{entry} trapped: {message}"),
            other => println!("{entry}: {other:?}"),
        }
    }
    println!("parent still running");
    Ok(())
}

fn panicker() {
    mtask::yield_now();
    panic!("boom at depth {}", 3);
}

fn trapper() {
    mtask::yield_now();
    std::process::abort();
}

// Row 14: cancel a sleeping child, a spinning child, and an ended one.
fn cancel_main() -> mtask::Result<()> {
    let sleeper = mtask::spawn::<_, u64>("napper", &10_000u64)?;
    mtask::yield_now();
    sleeper.cancel();
    println!("sleeper: {:?}", sleeper.join());
    let spinner = mtask::spawn::<_, ()>("spinner", &())?;
    mtask::yield_now();
    mtask::yield_now();
    spinner.cancel();
    println!("spinner: {:?}", spinner.join());
    let quick = mtask::spawn::<_, u64>("napper", &0u64)?;
    mtask::sleep(ms(5));
    quick.cancel();
    println!("ended: {:?}", quick.join());
    Ok(())
}

// Rows 8 and 12: a detached child's failure is reported; others go on.
fn detached_main() -> mtask::Result<()> {
    drop(mtask::spawn::<_, ()>("fail_later", &())?);
    drop(mtask::spawn::<_, ()>("late_printer", &())?);
    println!("main done");
    Ok(())
}

fn fail_later() -> Result<(), String> {
    mtask::sleep(ms(5));
    Err("detached failure".into())
}

fn late_printer() {
    mtask::sleep(ms(30));
    println!("still running");
}

fn main_fails() -> Result<(), String> {
    drop(mtask::spawn::<_, ()>("late_printer", &()).map_err(|e| e.to_string())?);
    Err("main broke".into())
}

fn main_traps() {
    panic!("main panicked");
}

/// Counts its runs in `/state/runs` (a writable grant): fails the first
/// two, succeeds from the third on. For supervision tests.
fn flaky_main() -> mtask::Result<()> {
    let before = std::fs::read_to_string("/state/runs").unwrap_or_default();
    let runs = before.trim().parse::<u32>().unwrap_or(0) + 1;
    std::fs::write("/state/runs", runs.to_string())?;
    println!("run {runs}");
    if runs < 3 {
        return Err(Error::Invalid(format!("run {runs} fails")));
    }
    Ok(())
}

// Blocking WASI calls suspend only their task.
fn std_sleepers_main() -> mtask::Result<()> {
    let start = Instant::now();
    let tasks: Vec<Task<()>> = (0..20)
        .map(|_| mtask::spawn("std_sleeper", &50u64))
        .collect::<Result<_, _>>()?;
    for t in tasks {
        t.join()?;
    }
    println!(
        "20 std sleeps of 50 ms took {} ms",
        start.elapsed().as_millis()
    );
    Ok(())
}

fn std_sleeper(millis: u64) {
    std::thread::sleep(ms(millis));
}

// Handles move to a child at spawn.
fn handoff_main() -> mtask::Result<()> {
    let worker = mtask::spawn::<_, u64>("napper", &10u64)?;
    let relay = mtask::spawn_with::<_, u64>("relay", &(), vec![worker.into_handle()])?;
    println!("relay returned {}", relay.join()?);
    Ok(())
}

fn relay() -> mtask::Result<u64> {
    let Some(mtask::Handle::Task(raw)) = mtask::take_handles().pop() else {
        return Err(Error::Invalid("no task handle".into()));
    };
    let worker: Task<u64> = Task::from_raw(raw);
    Ok(worker.join()? + 1)
}

// Misuse gets error values, not traps.
fn misuse_main() -> mtask::Result<()> {
    match mtask::spawn::<_, ()>("no_such_entry", &()) {
        Err(e) => println!("spawn: {e}"),
        Ok(_) => println!("spawn: ok?"),
    }
    let child = mtask::spawn::<_, u64>("napper", &0u64)?;
    println!("first join: {:?}", child.join_timeout(ms(1000)));
    println!("second join: {:?}", child.join_timeout(ms(1000)));
    let a = mtask::spawn::<_, u64>("napper", &0u64)?;
    let b = mtask::spawn::<_, u64>("napper", &0u64)?;
    println!(
        "ids distinct: {}",
        a.id() != b.id() && a.id() != mtask::current_id()
    );
    Ok(())
}

// Directories granted with --dir / --dir-rw, and the ways out that must fail.
fn files_main() {
    let show = |what: &str, result: std::io::Result<String>| match result {
        Ok(text) => println!("{what}: ok {text}"),
        Err(e) => println!("{what}: error {:?}", e.kind()),
    };
    show("read", std::fs::read_to_string("/data/hello.txt"));
    show("dotdot", std::fs::read_to_string("/data/../secret.txt"));
    show("symlink", std::fs::read_to_string("/data/link"));
    show("absolute", std::fs::read_to_string("/secret.txt"));
    show(
        "write ro",
        std::fs::write("/data/new.txt", "x").map(|()| String::new()),
    );
    show(
        "write rw",
        std::fs::write("/out/new.txt", "written").map(|()| String::new()),
    );
}

/// Spawns entries by the function itself: argument and result types are
/// the entries' own, checked by the compiler.
fn typed_main() -> mtask::Result<()> {
    let square = mtask::spawn_fn(typed_square, &7)?;
    println!("square: {}", square.join()?);
    println!("greet: {}", mtask::call_fn(typed_greet, &())?);
    mtask::call_fn(typed_printer, &("typed".to_string(), 2))?;
    match mtask::call_fn(not_an_entry, &()) {
        Ok(()) => println!("not_an_entry ran"),
        Err(e) => println!("not_an_entry: {e}"),
    }
    Ok(())
}

fn typed_square(n: u64) -> Result<u64, String> {
    n.checked_mul(n).ok_or_else(|| "overflow".into())
}

fn typed_greet() -> Result<String, String> {
    Ok("hello from a typed child".into())
}

fn typed_printer((word, times): (String, u8)) {
    for _ in 0..times {
        println!("{word}");
    }
}

/// Not named in `entries!`, so the host has no such entry.
fn not_an_entry() {}

// Across shards (run with `--threads 2`): by the placement rule of
// docs/design.md §3, of two children spawned together the second goes to
// the other shard, and so does each later child while this shard has two
// more tasks than that one.
fn shards_main() -> mtask::Result<()> {
    let filler = mtask::spawn::<_, u64>("napper", &60_000u64)?;
    // A value from the other shard.
    let worker = mtask::spawn::<_, u32>("busy", &20u64)?;
    println!("joined {:?}", worker.join());
    // A join that times out there, then a cancel of a sleeper there.
    let sleeper = mtask::spawn::<_, u64>("napper", &60_000u64)?;
    let start = Instant::now();
    match sleeper.join_timeout(ms(30)) {
        Err(Error::Timeout { .. }) => println!("timeout after {} ms", start.elapsed().as_millis()),
        other => println!("unexpected: {other:?}"),
    }
    sleeper.cancel();
    println!("sleeper {:?}", sleeper.join());
    // A child spinning on the other core, cancelled while it runs.
    let spinner = mtask::spawn::<_, ()>("spinner", &())?;
    mtask::sleep(ms(30));
    spinner.cancel();
    println!("spinner {:?}", spinner.join());
    // A trap there ends that task only.
    let panicker = mtask::spawn::<_, ()>("panicker", &())?;
    match panicker.join() {
        Err(Error::Task {
            error: TaskError::Trapped(message),
            ..
        }) => println!("panicker trapped: {message}"),
        other => println!("panicker: {other:?}"),
    }
    filler.cancel();
    println!("filler {:?}", filler.join());
    Ok(())
}

fn echo_args() {
    println!("args: {:?}", std::env::args().collect::<Vec<_>>());
}

/// Prints the environment it was given, a `NAME=VALUE` line each, sorted.
fn print_env() {
    let mut vars: Vec<_> = std::env::vars().collect();
    vars.sort();
    for (name, value) in vars {
        println!("{name}={value}");
    }
}

/// Reads stdin to its end, a line at a time, printing each, while a child
/// ticks beside it (the read waits in this task only); a child that reads
/// stdin first finds nothing (only the main task has it).
fn read_stdin() -> mtask::Result<()> {
    let reader: mtask::Task<u64> = mtask::spawn("count_stdin", &())?;
    println!("child read {} bytes", reader.join()?);
    let ticker: mtask::Task<()> = mtask::spawn("stdin_ticker", &())?;
    for line in std::io::stdin().lines() {
        println!("got {}", line.map_err(|e| Error::Io(e.to_string()))?);
    }
    println!("eof");
    ticker.cancel();
    Ok(())
}

/// Counts the bytes stdin gives until its end.
fn count_stdin() -> mtask::Result<u64> {
    std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).map_err(|e| Error::Io(e.to_string()))
}

/// Prints `tick` every 20 ms, 100 times at most.
fn stdin_ticker() {
    for _ in 0..100 {
        mtask::sleep(Duration::from_millis(20));
        println!("tick");
    }
}

// WIT 0.1.3: a monitor tells how a task ended without taking its value.
fn monitor_main() -> mtask::Result<()> {
    let failing = mtask::spawn::<_, ()>("fail_later", &())?;
    let watcher = mtask::spawn::<_, String>("watcher", &failing.id())?;
    println!("watcher: {:?}", watcher.join());
    println!("joined: {:?}", failing.join());
    let slow = mtask::spawn::<_, u64>("napper", &50u64)?;
    let watch = mtask::monitor(slow.id())?;
    println!(
        "early: {:?}",
        watch.wait_timeout(ms(5)).map_err(|e| e.to_string())
    );
    println!("later: {:?}, again: {:?}", watch.wait(), watch.wait());
    println!("joined: {:?}", slow.join());
    // Ended, its result still held: watched all the same; taken: gone.
    let done = mtask::spawn::<_, u64>("napper", &0u64)?;
    mtask::sleep(ms(5));
    println!("ended: {:?}", mtask::monitor(done.id())?.wait());
    let id = done.id();
    done.join()?;
    println!("taken: {}", mtask::monitor(id).err().unwrap());
    println!(
        "self: {}",
        mtask::monitor(mtask::current_id()).err().unwrap()
    );
    Ok(())
}

fn watcher(id: u64) -> mtask::Result<String> {
    Ok(format!("{:?}", mtask::monitor(id)?.wait()))
}

// WIT 0.1.3: a task linked to one that fails is cancelled.
fn link_main() -> mtask::Result<()> {
    let failing = mtask::spawn::<_, ()>("fail_later", &())?;
    let linked = mtask::spawn::<_, String>("linked_sleeper", &(failing.id(), 10_000u64))?;
    println!("linked to a failure: {:?}", linked.join());
    let _ = failing.join();
    let fine = mtask::spawn::<_, u64>("napper", &5u64)?;
    let calm = mtask::spawn::<_, String>("linked_sleeper", &(fine.id(), 20u64))?;
    println!("linked to a success: {:?}", calm.join());
    let _ = fine.join();
    let failed = mtask::spawn::<_, ()>("fail_later", &())?;
    mtask::sleep(ms(20));
    let late = mtask::spawn::<_, String>("linked_sleeper", &(failed.id(), 10_000u64))?;
    println!("linked to a failed one: {:?}", late.join());
    let _ = failed.join();
    println!("unknown: {}", mtask::link(u64::MAX).err().unwrap());
    Ok(())
}

fn linked_sleeper((id, millis): (u64, u64)) -> mtask::Result<String> {
    mtask::link(id)?;
    mtask::sleep(ms(millis));
    Ok("slept".into())
}

// WIT 0.1.3: `cancel` leaves a child's children running; `cancel_tree`
// ends them too.
fn tree_main() -> mtask::Result<()> {
    let ids = mtask::Queue::<u64>::open("tree-ids", 1)?;
    let child = mtask::spawn::<_, ()>("tree_parent", &())?;
    let grandchild = mtask::monitor(ids.get()?)?;
    child.cancel();
    println!("cancel: {:?}", child.join());
    let waited = grandchild.wait_timeout(ms(50)).map_err(|e| e.to_string());
    println!("its child, 50 ms on: {waited:?}");
    println!("its child, at its end: {:?}", grandchild.wait());
    let child = mtask::spawn::<_, ()>("tree_parent", &())?;
    let grandchild = mtask::monitor(ids.get()?)?;
    child.cancel_tree();
    println!("cancel_tree: {:?}", child.join());
    println!("its child: {:?}", grandchild.wait_timeout(ms(50)));
    Ok(())
}

// A chain of `n` tasks, each linked to the one before, the first of
// which fails: every one is cancelled, one after another, and the host
// goes on (a chain is a loop in the host, not a recursion).
fn link_chain_main(n: u32) -> mtask::Result<()> {
    let go = mtask::Queue::<()>::open("chain-go", 0)?;
    let linked = mtask::Queue::<()>::open("chain-linked", 0)?;
    let head = mtask::spawn::<_, ()>("fail_on_go", &())?;
    let mut prev = head.id();
    let mut chain = Vec::new();
    for _ in 0..n {
        let task = mtask::spawn::<_, String>("chain_link", &prev)?;
        prev = task.id();
        chain.push(task);
    }
    for _ in 0..n {
        linked.get()?;
    }
    go.put(&())?;
    let cancelled = chain
        .into_iter()
        .filter(|t| {
            matches!(
                t.join_timeout(ms(10_000)),
                Err(mtask::Error::Task {
                    error: mtask::TaskError::Cancelled,
                    ..
                })
            )
        })
        .count();
    println!("head: {:?}", head.join().map_err(|e| e.to_string()));
    println!("cancelled: {cancelled} of {n}");
    Ok(())
}

fn fail_on_go() -> Result<(), String> {
    let go = mtask::Queue::<()>::open("chain-go", 0).map_err(|e| e.to_string())?;
    go.get().map_err(|e| e.to_string())?;
    Err("the head fails".into())
}

fn chain_link(prev: u64) -> mtask::Result<String> {
    mtask::link(prev)?;
    mtask::Queue::<()>::open("chain-linked", 0)?.put(&())?;
    mtask::sleep(ms(60_000));
    Ok("slept".into())
}

/// Starts a napper of 300 ms, says its id, and sleeps on.
fn tree_parent() -> mtask::Result<()> {
    let napper = mtask::spawn::<_, u64>("napper", &300u64)?;
    mtask::Queue::<u64>::open("tree-ids", 1)?.put(&napper.id())?;
    mtask::sleep(ms(10_000));
    drop(napper);
    Ok(())
}

// WIT 0.1.3: a task sees only its own app's tasks: of the first 100
// ids, it can watch its child's alone (in `serve`, beside a tenant doing
// the same).
fn probe_main() -> mtask::Result<()> {
    let child = mtask::spawn::<_, u64>("napper", &500u64)?;
    mtask::sleep(ms(100));
    let found: Vec<u64> = (1..100).filter(|&id| mtask::monitor(id).is_ok()).collect();
    let linkable: Vec<u64> = (1..100).filter(|&id| mtask::link(id).is_ok()).collect();
    let own = found == [child.id()] && linkable == found;
    println!("only its own child: {own}");
    child.join()?;
    Ok(())
}

mtask::entries!(
    read_stdin,
    count_stdin,
    stdin_ticker,
    print_env,
    order_main,
    printer,
    starve_main,
    spinner,
    race_main,
    busy,
    timeout_main,
    napper,
    chain_main,
    level1,
    level2,
    level3,
    trap_main,
    panicker,
    trapper,
    cancel_main,
    detached_main,
    fail_later,
    late_printer,
    main_fails,
    main_traps,
    std_sleepers_main,
    std_sleeper,
    handoff_main,
    relay,
    misuse_main,
    echo_args,
    shards_main,
    files_main,
    typed_main,
    typed_square,
    typed_greet,
    typed_printer,
    flaky_main,
    probe_main,
    monitor_main,
    watcher,
    link_main,
    linked_sleeper,
    tree_main,
    tree_parent,
    link_chain_main,
    fail_on_go,
    chain_link
);
