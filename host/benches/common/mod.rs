//! What the benchmarks share: the bench guest and its argument encoding.

#![allow(dead_code)] // each benchmark uses its own share of these

use std::path::PathBuf;

/// The bench guest (tests/guests/bench), built by `just guests`.
pub fn bench_guest() -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/bench.wasm");
    assert!(
        path.exists(),
        "{} is missing: run `just guests`",
        path.display()
    );
    path
}

/// A `u32` as the guest SDK encodes it (postcard varint).
pub fn varint(mut n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}
