//! Word on stderr while something slow runs: compiling a component takes
//! seconds (a Python one, ~14 s) during which the host would otherwise say
//! nothing.
//!
//! Quick work prints nothing. Past [`QUIET`], a terminal gets a spinner with
//! the seconds so far, erased when done; a pipe or file gets one line.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long work runs before it is announced.
const QUIET: Duration = Duration::from_secs(1);

/// How often the spinner turns.
const TICK: Duration = Duration::from_millis(100);

/// Runs `work`, saying on stderr that `what` is under way if it takes
/// longer than [`QUIET`].
pub(crate) fn while_slow<T>(what: &str, work: impl FnOnce() -> T) -> T {
    let (done, finished) = mpsc::channel::<()>();
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            match finished.recv_timeout(QUIET) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            if !terminal {
                tracing::info!("{what} (this may take a while)");
                return;
            }
            let frames = ['|', '/', '-', '\\'];
            for frame in frames.iter().cycle() {
                let seconds = started.elapsed().as_secs();
                eprint!("\r{frame} mtask-host: {what}, {seconds} s");
                let _ = std::io::stderr().flush();
                match finished.recv_timeout(TICK) {
                    Err(RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            }
            // Erase the spinner's line.
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        });
        let result = work();
        drop(done);
        result
    })
}
