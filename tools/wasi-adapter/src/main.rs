//! `wasi-adapter OUT.wasm` writes the WASI preview1 *reactor* adapter that
//! matches the host's wasmtime, for `wasm-tools component new --adapt`.
//!
//! Debian's wasi-libc speaks WASI preview1; the adapter maps those imports
//! onto the preview2 interfaces the host provides. It is the reactor flavour
//! because an mtask component exports `run` and `entries`, not a `main`.

use std::process::ExitCode;

use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER as ADAPTER;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: wasi-adapter OUT.wasm");
        return ExitCode::from(2);
    };
    match std::fs::write(&out, ADAPTER) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", out.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
