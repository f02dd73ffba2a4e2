//! The host's messages about its tasks, from the library's own code: a
//! `tracing` event where a subscriber is installed (`mtask-host` installs
//! one, `cli::logs`), else a line on stderr as `mtask-host: message`, so an
//! embedder that logs nothing still hears that a task nobody joined failed.
//!
//! An event about a task is made inside the task's span (entered for it),
//! not with the span as an explicit parent: `tracing-subscriber`'s JSON
//! span list shows the spans entered, not an event's parent.

/// `say!(warn, { fields, }, "format", args)`: an event of that level with
/// those fields, or its message on stderr where nobody subscribes;
/// `say!(warn, in span, { fields, }, ...)`: the event inside `span`.
macro_rules! say {
    ($level:ident, in $span:expr, { $($field:tt)* }, $($message:tt)+) => {
        if tracing::dispatcher::has_been_set() {
            $span.in_scope(|| tracing::$level!($($field)* $($message)+))
        } else {
            eprintln!("mtask-host: {}", format_args!($($message)+))
        }
    };
    ($level:ident, { $($field:tt)* }, $($message:tt)+) => {
        if tracing::dispatcher::has_been_set() {
            tracing::$level!($($field)* $($message)+)
        } else {
            eprintln!("mtask-host: {}", format_args!($($message)+))
        }
    };
}

/// `debug_in!(span, { fields, }, "format", args)`: a debug event inside
/// `span`, entered only if such events are wanted (one per task start and
/// end: a cost paid only when asked for). Nothing on stderr otherwise.
macro_rules! debug_in {
    ($span:expr, { $($field:tt)* }, $($message:tt)+) => {
        if tracing::enabled!(tracing::Level::DEBUG) {
            $span.in_scope(|| tracing::debug!($($field)* $($message)+))
        }
    };
}

pub(crate) use {debug_in, say};
