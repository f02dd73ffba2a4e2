//! Children placed anywhere in a cluster (`just demo-cluster`): the main
//! task starts 8 CPU-bound children with `spawn_fn_anywhere`; each runs on
//! whichever host of the cluster that runs this component has room, and
//! says where it ran (the `HOST` variable each host is given). Outside a
//! cluster they all run here.

use std::time::Instant;

fn main() -> mtask::Result<()> {
    let began = Instant::now();
    let children = (0..8u64)
        .map(|i| mtask::spawn_fn_anywhere(crunch, &i))
        .collect::<mtask::Result<Vec<_>>>()?;
    for child in children {
        let (i, host) = child.join()?;
        println!("child {i} ran on {host}");
    }
    println!("8 children in {} ms", began.elapsed().as_millis());
    Ok(())
}

/// A few hundred milliseconds of arithmetic; returns `i` and the host it ran on.
fn crunch(i: u64) -> mtask::Result<(u64, String)> {
    let mut x = i;
    for _ in 0..2_000_000_000u64 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    std::hint::black_box(x);
    Ok((
        i,
        std::env::var("HOST").unwrap_or_else(|_| "this host".into()),
    ))
}

mtask::entries!(main, crunch);
