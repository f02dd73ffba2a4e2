//! `spawn_fn!` and `call_fn!` of a listed entry compile; of a function
//! that is not listed (feature `unlisted`), they must not.

fn main() -> mtask::Result<()> {
    let task = mtask::spawn_fn!(square, &3)?;
    println!("{}", task.join()? + mtask::call_fn!(square, &4)?);
    #[cfg(feature = "unlisted")]
    mtask::spawn_fn!(helper, &5)?.join()?;
    Ok(())
}

fn square(n: u64) -> mtask::Result<u64> {
    Ok(n * n)
}

#[cfg_attr(not(feature = "unlisted"), allow(dead_code))]
fn helper(n: u64) -> mtask::Result<u64> {
    Ok(n)
}

mtask::entries!(main, square);
