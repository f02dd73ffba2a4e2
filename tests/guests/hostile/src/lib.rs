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
fn deep() -> mtask::Result<u64> {
    fn recurse(n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            black_box(recurse(black_box(n - 1))) + 1
        }
    }
    Ok(recurse(u64::MAX))
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

mtask::entries!(
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
    echo_handler
);
