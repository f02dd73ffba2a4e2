//! The seed's first example: two printers that yield to each other.
//!
//! `mtask-host run printer.wasm` prints hello and goodbye in turn; pass a
//! count after `--` to change how many times (default 3).

fn main() -> mtask::Result<()> {
    let times: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let hello = mtask::spawn_fn(printer, &("hello".into(), times))?;
    let goodbye = mtask::spawn_fn(printer, &("goodbye".into(), times))?;
    hello.join()?;
    goodbye.join()
}

/// Prints `message` `times` times, yielding after each.
fn printer((message, times): (String, u32)) {
    for _ in 0..times {
        println!("{message}");
        mtask::yield_now();
    }
}

mtask::entries!(main, printer);
