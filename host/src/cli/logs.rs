//! The host's log: its own messages as `tracing` events, in one of two
//! formats (`--log-format`), filtered by `RUST_LOG` (docs/design.md §14).
//!
//! - **text** (the default): each event one stderr line, `mtask-host: ` and
//!   its message, nothing else. A message says everything by itself; the
//!   fields an event also carries are for JSON.
//! - **json**: each event one JSON object on a line, with its fields, its
//!   level and target, a timestamp, and the spans it happened in (a
//!   tenant's, a task's: tenant, task id, entry). A tenant's output lines
//!   are events too (targets `mtask::stdout` and `mtask::stderr`), on the
//!   stream the guest wrote them to; `RUST_LOG` does not filter them.
//!
//! `RUST_LOG` defaults to `mtask=info`: every message the host printed
//! before it logged through `tracing`, and nothing from the crates it uses
//! (a `RUST_LOG` that names no target, `RUST_LOG=debug`, shows theirs
//! too). Per-task starts and ends, each refused address (target
//! `mtask::denied`) and each limit reached (`mtask::limit`) are `debug`
//! events: a guest decides how many of those there are, so a host shows
//! them only when asked (`RUST_LOG=mtask=debug`).

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::{EitherWriter, MakeWriter};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::output::{GUEST_STDERR, GUEST_STDOUT};

/// How the host writes its log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `mtask-host: message` lines on stderr; tenants' output as
    /// `[tenant] line`.
    #[default]
    Text,
    /// A JSON object per line: the host's events on stderr, its tenants'
    /// output lines on the stream they were written to.
    Json,
}

/// Makes `format` the process's log, filtered by `RUST_LOG`; an error
/// names what in `RUST_LOG` is wrong.
pub(crate) fn init(format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .parse(&directives)
            .map_err(|e| format!("RUST_LOG `{directives}`: {e}"))?,
        // The host's own events; not its libraries' (async-nats says
        // why a connection failed, and the host says it again, in full).
        _ => EnvFilter::new("mtask=info"),
    };
    let registry = tracing_subscriber::registry();
    // Only a second init fails (an embedder's tests, say): the first stays.
    let _ = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .event_format(Plain)
                    .with_writer(std::io::stderr)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Json => {
            let guest = filter_fn(|meta| is_guest(meta.target()));
            registry
                .with(
                    fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_current_span(false)
                        .with_span_list(true)
                        .with_writer(ByStream)
                        .with_filter(filter.or(guest)),
                )
                .try_init()
        }
    };
    Ok(())
}

fn is_guest(target: &str) -> bool {
    target == GUEST_STDOUT || target == GUEST_STDERR
}

/// The text format: `mtask-host: ` and the message.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(writer, "mtask-host: {}", message.0)
    }
}

/// Picks an event's `message` field out.
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// JSON lines go to stderr, but a tenant's stdout lines to stdout.
struct ByStream;

impl<'a> MakeWriter<'a> for ByStream {
    type Writer = EitherWriter<std::io::Stdout, std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        EitherWriter::B(std::io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        if meta.target() == GUEST_STDOUT {
            EitherWriter::A(std::io::stdout())
        } else {
            EitherWriter::B(std::io::stderr())
        }
    }
}
