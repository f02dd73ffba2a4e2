//! Ping-pong: two tasks that talk through two queues.
//!
//! `mtask-host run pingpong.wasm -- 5` plays five rounds (default 3).

fn main() -> mtask::Result<()> {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let ping = mtask::Queue::<u32>::new(1)?;
    let pong = mtask::Queue::<u32>::new(1)?;
    let ponger: mtask::Task<()> = mtask::spawn_with(
        "ponger",
        &rounds,
        vec![ping.clone().into_handle(), pong.clone().into_handle()],
    )?;
    for round in 1..=rounds {
        println!("ping {round}");
        ping.put(&round)?;
        let back = pong.get()?;
        assert_eq!(back, round);
    }
    ponger.join()
}

/// Answers each ping on the first queue with a pong on the second.
fn ponger(rounds: u32) -> mtask::Result<()> {
    let mut handles = mtask::take_handles().into_iter();
    let (Some(mtask::Handle::Queue(ping)), Some(mtask::Handle::Queue(pong))) =
        (handles.next(), handles.next())
    else {
        return Err(mtask::Error::Invalid("ponger needs two queues".into()));
    };
    let (ping, pong) = (
        mtask::Queue::<u32>::from_raw(ping),
        mtask::Queue::<u32>::from_raw(pong),
    );
    for _ in 0..rounds {
        let round = ping.get()?;
        println!("pong {round}");
        pong.put(&round)?;
    }
    Ok(())
}

mtask::entries!(main, ponger);
