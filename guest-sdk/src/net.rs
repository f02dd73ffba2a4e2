//! TCP and UDP sockets whose blocking calls suspend only the calling task.
//!
//! They work like `std::net`'s, plus `_timeout` variants that give up with
//! [`Error::Timeout`](crate::Error::Timeout) having had no effect. What a
//! task may bind or connect to is up to the host (`mtask-host run --listen
//! ... --connect ...`); anything else fails with
//! [`Error::Denied`](crate::Error::Denied).

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use crate::bindings::mtask::task::net as wit;
use crate::{Error, Handle, Result, nanos, timed};

fn addr(text: String) -> Result<SocketAddr> {
    text.parse()
        .map_err(|_| Error::Io(format!("the host returned a bad address `{text}`")))
}

fn timeout(d: Option<Duration>) -> Option<u64> {
    d.map(nanos)
}

/// A TCP socket listening for connections.
pub struct TcpListener(pub(crate) wit::TcpListener);

impl TcpListener {
    /// Binds to `address` (`"127.0.0.1:8080"`, `"[::1]:0"`) and listens,
    /// with a backlog of 128.
    pub fn bind(address: &str) -> Result<Self> {
        Self::bind_with_backlog(address, 128)
    }

    /// Like [`bind`](Self::bind) with room for `backlog` pending connections.
    pub fn bind_with_backlog(address: &str, backlog: u32) -> Result<Self> {
        Ok(TcpListener(wit::TcpListener::bind(address, backlog)?))
    }

    /// Waits for a connection.
    pub fn accept(&self) -> Result<(TcpStream, SocketAddr)> {
        self.accept_inner(None)
    }

    /// Like [`accept`](Self::accept), giving up after `timeout`.
    pub fn accept_timeout(&self, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
        self.accept_inner(Some(timeout))
    }

    fn accept_inner(&self, d: Option<Duration>) -> Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = timed("TcpListener::accept_timeout", d, self.0.accept(timeout(d)))?;
        Ok((TcpStream(stream), addr(peer)?))
    }

    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        addr(self.0.local_address()?)
    }

    /// Turns it into a [`Handle`] to give to a child.
    pub fn into_handle(self) -> Handle {
        Handle::TcpListener(self)
    }
}

/// A TCP connection. It implements [`io::Read`] and [`io::Write`], so
/// code written for `std::net::TcpStream` works on it.
pub struct TcpStream(pub(crate) wit::TcpStream);

impl TcpStream {
    /// Connects to `address`.
    pub fn connect(address: &str) -> Result<Self> {
        Ok(TcpStream(wit::TcpStream::connect(address, None)?))
    }

    /// Like [`connect`](Self::connect), giving up after `timeout`.
    pub fn connect_timeout(address: &str, timeout: Duration) -> Result<Self> {
        let connected = wit::TcpStream::connect(address, Some(nanos(timeout)));
        let stream = timed("TcpStream::connect_timeout", Some(timeout), connected)?;
        Ok(TcpStream(stream))
    }

    /// Receives at most `max` bytes (and at most 256 KiB), waiting until some
    /// arrive; empty when the peer closed its side.
    pub fn recv(&self, max: usize) -> Result<Vec<u8>> {
        Ok(self.0.recv(clamp(max), None)?)
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    pub fn recv_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<u8>> {
        let got = self.0.recv(clamp(max), Some(nanos(timeout)));
        timed("TcpStream::recv_timeout", Some(timeout), got)
    }

    /// Sends a prefix of `data`; returns how many bytes went.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        Ok(self.0.send(data, None)? as usize)
    }

    /// Like [`send`](Self::send), giving up after `timeout`.
    pub fn send_timeout(&self, data: &[u8], timeout: Duration) -> Result<usize> {
        let sent = self.0.send(data, Some(nanos(timeout)));
        Ok(timed("TcpStream::send_timeout", Some(timeout), sent)? as usize)
    }

    /// Sends all of `data`.
    pub fn send_all(&self, data: &[u8]) -> Result<()> {
        Ok(self.0.send_all(data, None)?)
    }

    /// Like [`send_all`](Self::send_all), giving up after `timeout` (what
    /// was sent by then stays sent).
    pub fn send_all_timeout(&self, data: &[u8], timeout: Duration) -> Result<()> {
        let sent = self.0.send_all(data, Some(nanos(timeout)));
        timed("TcpStream::send_all_timeout", Some(timeout), sent)
    }

    /// Closes one direction or both.
    pub fn shutdown(&self, how: Shutdown) -> Result<()> {
        let how = match how {
            Shutdown::Read => wit::ShutdownHow::Read,
            Shutdown::Write => wit::ShutdownHow::Write,
            Shutdown::Both => wit::ShutdownHow::Both,
        };
        Ok(self.0.shutdown(how)?)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        addr(self.0.peer_address()?)
    }

    /// This end's address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        addr(self.0.local_address()?)
    }

    /// Turns Nagle's algorithm off (`true`) or on.
    pub fn set_nodelay(&self, enabled: bool) -> Result<()> {
        Ok(self.0.set_nodelay(enabled)?)
    }

    /// Turns it into a [`Handle`] to give to a child.
    pub fn into_handle(self) -> Handle {
        Handle::TcpStream(self)
    }
}

fn clamp(max: usize) -> u32 {
    u32::try_from(max).unwrap_or(u32::MAX)
}

fn to_io(e: Error) -> io::Error {
    e.into()
}

/// An mtask error as a `std::io::Error` (for `Read` and `Write`), with the
/// kind that fits: `TimedOut`, `PermissionDenied`, `BrokenPipe` or `Other`.
/// It converts back whole: `mtask::Error::from(io_error)` is the original.
impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match e {
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Denied(_) => io::ErrorKind::PermissionDenied,
            Error::Closed => io::ErrorKind::BrokenPipe,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// A `std::io::Error` as an mtask error, so that `?` works on `Read` and
/// `Write` calls in a function returning [`crate::Result`]: one made from
/// an mtask error gives it back; any other is `Io` with its message, or
/// `Timeout` for `TimedOut`.
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<Error>().expect("checked above");
        }
        match e.kind() {
            io::ErrorKind::TimedOut => Error::Timeout {
                call: "an i/o call",
                after: Duration::ZERO,
            },
            _ => Error::Io(e.to_string()),
        }
    }
}

impl io::Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let data = self.recv(buf.len()).map_err(to_io)?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }
}

impl io::Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf).map_err(to_io)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl io::Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A UDP socket.
pub struct UdpSocket(pub(crate) wit::UdpSocket);

impl UdpSocket {
    /// Binds to `address` (port 0: any free port).
    pub fn bind(address: &str) -> Result<Self> {
        Ok(UdpSocket(wit::UdpSocket::bind(address)?))
    }

    /// Waits for a datagram; returns at most `max` bytes of it and the sender.
    pub fn recv_from(&self, max: usize) -> Result<(Vec<u8>, SocketAddr)> {
        let (data, from) = self.0.recv_from(clamp(max), None)?;
        Ok((data, addr(from)?))
    }

    /// Like [`recv_from`](Self::recv_from), giving up after `timeout`.
    pub fn recv_from_timeout(
        &self,
        max: usize,
        timeout: Duration,
    ) -> Result<(Vec<u8>, SocketAddr)> {
        let got = self.0.recv_from(clamp(max), Some(nanos(timeout)));
        let (data, from) = timed("UdpSocket::recv_from_timeout", Some(timeout), got)?;
        Ok((data, addr(from)?))
    }

    /// Sends `data` as one datagram to `address`.
    pub fn send_to(&self, data: &[u8], address: &str) -> Result<usize> {
        Ok(self.0.send_to(data, address, None)? as usize)
    }

    /// Fixes the peer of [`send`](Self::send) and [`recv`](Self::recv).
    pub fn connect(&self, address: &str) -> Result<()> {
        Ok(self.0.connect(address)?)
    }

    /// Sends one datagram to the connected peer.
    pub fn send(&self, data: &[u8]) -> Result<usize> {
        Ok(self.0.send(data, None)? as usize)
    }

    /// Waits for a datagram from the connected peer.
    pub fn recv(&self, max: usize) -> Result<Vec<u8>> {
        Ok(self.0.recv(clamp(max), None)?)
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    pub fn recv_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<u8>> {
        let got = self.0.recv(clamp(max), Some(nanos(timeout)));
        timed("UdpSocket::recv_timeout", Some(timeout), got)
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        addr(self.0.local_address()?)
    }

    /// Turns it into a [`Handle`] to give to a child.
    pub fn into_handle(self) -> Handle {
        Handle::UdpSocket(self)
    }
}
