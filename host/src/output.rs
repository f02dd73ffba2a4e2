//! Labelled guest output: each line a task writes to stdout or stderr goes
//! out whole, after a label (`[echo] listening on 127.0.0.1:7878`), so
//! that the lines of tasks writing at once never mix within a line and
//! say whose they are. `serve` labels each tenant's tasks with its name
//! (docs/design.md §10).
//!
//! A task's bytes wait in its own buffer until a newline; the line then
//! goes out in one write under the host stream's lock, the lock the host's
//! own messages take too. A line longer than [`MAX_LINE`] goes out in
//! pieces of that size, each a line, so a guest that never writes a
//! newline cannot make the host hold more. What is left when the task ends
//! goes out with a newline added.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// The most bytes of one line held back before they go out anyway.
pub(crate) const MAX_LINE: usize = 64 << 10;

/// The target of a task's stdout lines made events ([`Sink::Events`]).
pub(crate) const GUEST_STDOUT: &str = "mtask::stdout";

/// The target of a task's stderr lines made events.
pub(crate) const GUEST_STDERR: &str = "mtask::stderr";

/// Which of the host's streams the lines go to.
#[derive(Clone, Debug)]
pub(crate) enum Sink {
    /// The host's stdout.
    Stdout,
    /// The host's stderr.
    Stderr,
    /// A `tracing` event per line, in the span the stream was made in
    /// (the task's), of target [`GUEST_STDERR`] or [`GUEST_STDOUT`].
    Events {
        /// Lines of the task's stderr, not its stdout.
        stderr: bool,
    },
    /// Kept, for the tests.
    #[cfg(test)]
    Kept(Arc<Mutex<Vec<u8>>>),
}

/// One task's stdout or stderr, labelled: what the task's WASI context
/// holds. Every stream made from it shares its buffer.
pub(crate) struct Labelled {
    /// The line under way, shared by the streams the guest opens.
    line: Arc<Mutex<Line>>,
}

impl Labelled {
    /// A stream whose lines go to `sink` after `[label] `.
    pub(crate) fn new(label: &str, sink: Sink) -> Labelled {
        Labelled {
            line: Arc::new(Mutex::new(Line {
                prefix: format!("[{label}] ").into_bytes(),
                sink,
                span: tracing::Span::current(),
                bytes: Vec::new(),
            })),
        }
    }

    fn stream(&self) -> LabelledStream {
        LabelledStream {
            line: self.line.clone(),
        }
    }
}

impl IsTerminal for Labelled {
    fn is_terminal(&self) -> bool {
        // Labelled lines are for logs; a guest should not draw on them.
        false
    }
}

impl StdoutStream for Labelled {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.stream())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.stream())
    }
}

/// A line being written.
struct Line {
    /// `[label] `, written before each line.
    prefix: Vec<u8>,
    /// Where whole lines go.
    sink: Sink,
    /// The span its events are made in: the task's, where the task made
    /// its WASI context (its last line may go out after its poll).
    span: tracing::Span,
    /// What was written since the last newline.
    bytes: Vec<u8>,
}

impl Line {
    /// Takes `data` in: every line it ends goes out.
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            self.bytes.extend_from_slice(&data[..end]);
            self.emit()?;
            data = &data[end + 1..];
        }
        self.bytes.extend_from_slice(data);
        while self.bytes.len() > MAX_LINE {
            let rest = self.bytes.split_off(MAX_LINE);
            self.emit()?;
            self.bytes = rest;
        }
        Ok(())
    }

    /// Writes the held bytes as one line, label first.
    fn emit(&mut self) -> std::io::Result<()> {
        let line = std::mem::take(&mut self.bytes);
        let written = self.send(&line);
        // The buffer is kept for the next line.
        self.bytes = line;
        self.bytes.clear();
        written
    }

    /// Sends `line` (without its newline) where the sink says.
    fn send(&self, line: &[u8]) -> std::io::Result<()> {
        let whole = || [&self.prefix[..], line, b"\n"].concat();
        match &self.sink {
            Sink::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(&whole()).and_then(|()| stdout.flush())
            }
            Sink::Stderr => std::io::stderr().lock().write_all(&whole()),
            Sink::Events { stderr } => {
                let line = String::from_utf8_lossy(line);
                self.span.in_scope(|| match stderr {
                    true => tracing::info!(target: GUEST_STDERR, stream = "stderr", "{line}"),
                    false => tracing::info!(target: GUEST_STDOUT, stream = "stdout", "{line}"),
                });
                Ok(())
            }
            #[cfg(test)]
            Sink::Kept(kept) => {
                kept.lock().unwrap().extend(whole());
                Ok(())
            }
        }
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        // The task has ended (its context went with it) mid-line.
        if !self.bytes.is_empty() {
            let _ = self.emit();
        }
    }
}

/// A stream the guest writes to (each `get-stdout` makes one).
struct LabelledStream {
    /// The task's line, shared with its other streams.
    line: Arc<Mutex<Line>>,
}

impl LabelledStream {
    fn write(&self, data: &[u8]) -> std::io::Result<()> {
        // A panic elsewhere mid-write leaves nothing half-done that matters.
        let mut line = self.line.lock().unwrap_or_else(PoisonError::into_inner);
        line.write(data)
    }
}

impl OutputStream for LabelledStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        LabelledStream::write(self, &bytes)
            .map_err(|e| StreamError::LastOperationFailed(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        // A line goes out when it ends: a flush does not cut it.
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl Pollable for LabelledStream {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        // Always ready: writes go to the host's stream at once.
        Box::pin(std::future::ready(()))
    }
}

impl tokio::io::AsyncWrite for LabelledStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(LabelledStream::write(&self, buf).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a task writing `pieces` and then ending puts out.
    fn out(pieces: &[&[u8]]) -> String {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let labelled = Labelled::new("t", Sink::Kept(kept.clone()));
        // Two streams of one task, as a guest that opens stdout twice has.
        let (mut a, b) = (labelled.stream(), labelled.stream());
        for (i, piece) in pieces.iter().enumerate() {
            if i % 2 == 0 {
                OutputStream::write(&mut a, Bytes::copy_from_slice(piece)).unwrap();
            } else {
                b.write(piece).unwrap();
            }
        }
        drop((labelled, a, b));
        String::from_utf8(kept.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn pieces_of_a_line_go_out_together_after_the_label() {
        assert_eq!(
            out(&[b"hel", b"lo\nwor", b"ld\n\n"]),
            "[t] hello\n[t] world\n[t] \n"
        );
    }

    #[test]
    fn an_unended_line_goes_out_when_the_task_ends() {
        assert_eq!(out(&[b"no newline"]), "[t] no newline\n");
        assert_eq!(out(&[]), "");
    }

    #[test]
    fn a_line_past_the_cap_is_cut_there() {
        let long = vec![b'x'; MAX_LINE + 10];
        let text = out(&[&long]);
        let lines: Vec<usize> = text.lines().map(str::len).collect();
        assert_eq!(lines, [4 + MAX_LINE, 4 + 10]);
    }
}
