//! `mtask:task/net`: TCP and UDP sockets on the reactor.
//!
//! Sockets are non-blocking and registered with mio. A call tries the
//! system call first; when it would block, the task waits for the socket's
//! next readiness (or the deadline) and tries again, so `WouldBlock` never
//! reaches the guest. Binds and connects are checked against the app's
//! [`NetPolicy`](crate::net_policy::NetPolicy).

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use wasmtime::component::Resource;

use crate::bindings::mtask::task::net::{
    Host, HostTcpListener, HostTcpStream, HostUdpSocket, ShutdownHow, SocketAddress,
};
use crate::bindings::mtask::task::types::Error;
use crate::handles::{Registered, TcpListenerHandle, TcpStreamHandle, UdpSocketHandle};
use crate::ids::AppId;
use crate::net_policy::NetUse;
use crate::program::task::{TaskCtx, TaskState};
use crate::shard::reactor::{Direction, SourceKey};
use crate::shard::{Core, Wait};
use crate::waits::Deadline;

/// The most bytes one `recv` returns, whatever the guest asks for: the host
/// allocates the buffer, so a guest must not size it freely.
const MAX_RECV: u32 = 256 << 10;

impl<S: mio::event::Source> Registered<S> {
    /// Registers `io` of `app` with the reactor of the task's shard,
    /// unless the app has as many sockets open as it may (then `io` closes).
    fn new(ctx: &TaskCtx, mut io: S, app: AppId) -> Result<Self, Error> {
        ctx.shards.apps().open_socket(app).map_err(Error::Limit)?;
        let registered = ctx.core().reactor.register(&mut io);
        match registered {
            Ok(source) => Ok(Self {
                io,
                source,
                shard: ctx.me().shard,
                app,
                shards: ctx.shards.clone(),
            }),
            Err(e) => {
                ctx.shards.apps().close_socket(app);
                Err(io_error(e))
            }
        }
    }
}

impl<S: mio::event::Source> Registered<S> {
    /// Moves the socket's registration to the reactor of the task's shard
    /// (a socket handed to a child placed on another shard), so that its
    /// readiness wakes the child without a detour. It starts out ready
    /// both ways there, which only costs one attempt that may block.
    pub(crate) fn rehome(&mut self, ctx: &TaskCtx) -> wasmtime::Result<()> {
        if self.shard == ctx.me().shard {
            return Ok(());
        }
        let home = &self.shards.all()[self.shard];
        home.core().reactor.deregister(self.source, &mut self.io);
        let registered = ctx.core().reactor.register(&mut self.io);
        self.shard = ctx.me().shard;
        match registered {
            Ok(source) => {
                self.source = source;
                Ok(())
            }
            Err(e) => {
                // Registered nowhere: its drop must not take another
                // socket's slot. The child traps, which drops it.
                self.source = SourceKey::MAX;
                Err(wasmtime::Error::msg(format!(
                    "cannot register a socket handed over: {e}"
                )))
            }
        }
    }
}

/// Waits until `source` is ready in `direction` (true) or the deadline
/// passes (false). Created right after an attempt that would block.
///
/// The socket's readiness is kept by the shard it was registered with
/// (`home`), which may not be the waiting task's (a socket handed to a
/// child placed on another shard): that shard's reactor then wakes the
/// task across shards, and the deadline stays with the task's own shard.
struct Readiness<'a, 'd> {
    ctx: &'a TaskCtx,
    home: usize,
    source: SourceKey,
    direction: Direction,
    deadline: &'d mut Deadline<'a>,
    cleared: bool,
}

impl<'a, 'd> Readiness<'a, 'd> {
    fn new(
        ctx: &'a TaskCtx,
        (home, source): (usize, SourceKey),
        direction: Direction,
        deadline: &'d mut Deadline<'a>,
    ) -> Self {
        Self {
            ctx,
            home,
            source,
            direction,
            deadline,
            cleared: false,
        }
    }
}

impl Future for Readiness<'_, '_> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let this = &mut *self;
        let (source, direction, me) = (this.source, this.direction, this.ctx.me());
        let home = &this.ctx.shards.all()[this.home];
        let mut home_core = home.core();
        if !this.cleared {
            // The attempt just now would block: wait for the next edge.
            home_core.reactor.clear_ready(source, direction);
            this.cleared = true;
        }
        let ready = home_core.reactor.is_ready(source, direction);
        if !ready {
            home_core.reactor.wait_ready(source, direction, Some(me));
        }
        // The task's own shard, for the deadline: the same lock when the
        // socket is at home, else taken after the other is let go of.
        let mut own_core = if this.home == me.shard {
            home_core
        } else {
            drop(home_core);
            this.ctx.core()
        };
        if ready {
            this.deadline.clear(&mut own_core);
            return Poll::Ready(true);
        }
        if this.deadline.expired(&mut own_core, cx.waker()) {
            drop(own_core);
            home.core().reactor.wait_ready(source, direction, None);
            return Poll::Ready(false);
        }
        own_core.set_pending_wait(Wait::Io);
        Poll::Pending
    }
}

/// Retries `$attempt` (an `io::Result`) on the socket `$handle` of table
/// `$table` until it does not block, waiting for `$dir` between tries; gives
/// `Ok(Err(timeout))` at the deadline. Evaluates to the successful value.
macro_rules! retry {
    ($ctx:ident, $table:ident, $handle:expr, $dir:expr, $deadline:expr, |$io:ident| $attempt:expr) => {
        loop {
            let registered = $table.get_mut(&$handle)?;
            let home = (registered.shard, registered.source);
            let $io = &mut registered.io;
            match $attempt {
                Ok(value) => break value,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Ok(Err(io_error(e))),
            }
            if !Readiness::new($ctx, home, $dir, &mut $deadline).await {
                return Ok(Err(Error::Timeout));
            }
        }
    };
}

/// Reads into a shard's scratch buffer (`core`'s) and copies out what
/// came, so that a guest asking for up to 256 KiB costs the host that much
/// once, not an allocation per call.
fn read_scratch<T>(
    core: &mut Core,
    max: u32,
    read: impl FnOnce(&mut [u8]) -> io::Result<(usize, T)>,
) -> io::Result<(Vec<u8>, T)> {
    let len = max.min(MAX_RECV) as usize;
    if core.scratch.len() < len {
        core.scratch.resize(len, 0);
    }
    let (n, extra) = read(&mut core.scratch[..len])?;
    Ok((core.scratch[..n].to_vec(), extra))
}

/// Reads from the stream `io` registered at `(home, source)` if it may be
/// readable (`None`: it is drained, wait for the next edge), under one lock
/// of its home shard, whose scratch buffer takes the bytes.
///
/// After a short read the socket is drained (edge-triggered: new data
/// brings a new event), so the next recv waits at once instead of making a
/// read that would block.
fn read_ready(
    ctx: &TaskCtx,
    (home, source): (usize, SourceKey),
    max: u32,
    mut io: impl Read,
) -> Option<io::Result<Vec<u8>>> {
    let mut core = ctx.shards.all()[home].core();
    if !core.reactor.is_ready(source, Direction::Read) {
        return None;
    }
    let read = read_scratch(&mut core, max, |buf| io.read(buf).map(|n| (n, buf.len())));
    Some(read.map(|(data, asked)| {
        if !data.is_empty() && data.len() < asked {
            core.reactor.clear_ready(source, Direction::Read);
        }
        data
    }))
}

fn io_error(e: io::Error) -> Error {
    Error::Io(e.to_string())
}

fn parse_addr(text: &str) -> Result<SocketAddr, Error> {
    text.parse().map_err(|_| {
        Error::Invalid(format!(
            "`{text}` is not a socket address like 127.0.0.1:80 or [::1]:80"
        ))
    })
}

impl TaskState {
    /// Parses `text` and checks it against the app's network policy; gives
    /// the address in the canonical form that was checked (an IPv4-mapped
    /// address as IPv4), which the socket then uses.
    fn allowed(&self, text: &str, what: NetUse) -> Result<SocketAddr, Error> {
        let addr = parse_addr(text)?;
        self.program.net().check(&addr, what).map_err(|why| {
            let name = self.program.name();
            tracing::debug!(target: "mtask::denied", %addr, "{name}: {why}");
            Error::Denied(why)
        })
    }
}

/// Evaluates to the value of a `Result<T, Error>`, or returns its error to the guest.
macro_rules! guest_try {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl Host for TaskState {}

impl HostTcpListener for TaskState {
    fn bind(
        &mut self,
        address: SocketAddress,
        backlog: u32,
    ) -> wasmtime::Result<Result<Resource<TcpListenerHandle>, Error>> {
        let addr = guest_try!(self.allowed(&address, NetUse::Listen));
        let (app, tenant) = (self.program.app(), self.program.tenant_name().clone());
        let ctx = self.ctx()?;
        let bound = ctx.shards.listeners().bind(&tenant, app, addr, backlog);
        let (listener, claim) = guest_try!(bound.map_err(io_error));
        let socket = guest_try!(Registered::new(ctx, listener, app));
        Ok(Ok(self.table.push(TcpListenerHandle { socket, claim })?))
    }

    async fn accept(
        &mut self,
        listener: Resource<TcpListenerHandle>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<(Resource<TcpStreamHandle>, SocketAddress), Error>> {
        let app = self.program.app();
        let (ctx, table) = self.parts()?;
        let mut deadline = Deadline::after_nanos(&ctx.shards, timeout);
        let retired = table.get(&listener)?.retired();
        let (stream, peer) = retry!(ctx, table, listener, Direction::Read, deadline, |io| {
            // Replaced or removed, its app accepts no more: the socket is
            // its successor's, or shut.
            if retired.as_ref().is_some_and(|r| r.load(Ordering::Acquire)) {
                return Ok(Err(Error::Closed));
            }
            io.accept()
        });
        let registered = guest_try!(Registered::new(ctx, stream, app));
        Ok(Ok((table.push(registered)?, peer.to_string())))
    }

    fn local_address(
        &mut self,
        listener: Resource<TcpListenerHandle>,
    ) -> wasmtime::Result<Result<SocketAddress, Error>> {
        Ok(self
            .table
            .get(&listener)?
            .io
            .local_addr()
            .map(|a| a.to_string())
            .map_err(io_error))
    }

    fn drop(&mut self, listener: Resource<TcpListenerHandle>) -> wasmtime::Result<()> {
        self.table.delete(listener)?;
        Ok(())
    }
}

impl HostTcpStream for TaskState {
    async fn connect(
        &mut self,
        address: SocketAddress,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<Resource<TcpStreamHandle>, Error>> {
        let addr = guest_try!(self.allowed(&address, NetUse::Connect));
        let app = self.program.app();
        let (ctx, table) = self.parts()?;
        let stream = guest_try!(mio::net::TcpStream::connect(addr).map_err(io_error));
        let registered = guest_try!(Registered::new(ctx, stream, app));
        let handle = table.push(registered)?;
        let mut deadline = Deadline::after_nanos(&ctx.shards, timeout);
        // A connect in progress is done when the socket turns writable: then
        // either an error is pending or the peer address is known.
        let result = loop {
            let registered = table.get_mut(&handle)?;
            let home = (registered.shard, registered.source);
            match registered.io.take_error() {
                Ok(Some(e)) | Err(e) => break Err(io_error(e)),
                Ok(None) => {}
            }
            match registered.io.peer_addr() {
                Ok(_) => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) if e.raw_os_error() == Some(libc_einprogress()) => {}
                Err(e) => break Err(io_error(e)),
            }
            if !Readiness::new(ctx, home, Direction::Write, &mut deadline).await {
                break Err(Error::Timeout);
            }
        };
        match result {
            Ok(()) => Ok(Ok(handle)),
            Err(e) => {
                table.delete(handle)?;
                Ok(Err(e))
            }
        }
    }

    async fn recv(
        &mut self,
        stream: Resource<TcpStreamHandle>,
        max: u32,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        let (ctx, table) = self.parts()?;
        let mut deadline = Deadline::after_nanos(&ctx.shards, timeout);
        loop {
            let registered = table.get_mut(&stream)?;
            let home = (registered.shard, registered.source);
            let io = &mut registered.io;
            match read_ready(ctx, home, max, io) {
                Some(Ok(data)) => return Ok(Ok(data)),
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Some(Err(e)) => return Ok(Err(io_error(e))),
                None => {}
            }
            if !Readiness::new(ctx, home, Direction::Read, &mut deadline).await {
                return Ok(Err(Error::Timeout));
            }
        }
    }

    async fn send(
        &mut self,
        stream: Resource<TcpStreamHandle>,
        data: Vec<u8>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let (ctx, table) = self.parts()?;
        let mut deadline = Deadline::after_nanos(&ctx.shards, timeout);
        let n = retry!(ctx, table, stream, Direction::Write, deadline, |io| io
            .write(&data));
        Ok(Ok(n as u32))
    }

    async fn send_all(
        &mut self,
        stream: Resource<TcpStreamHandle>,
        data: Vec<u8>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (ctx, table) = self.parts()?;
        let mut deadline = Deadline::after_nanos(&ctx.shards, timeout);
        let mut sent = 0;
        while sent < data.len() {
            sent += retry!(ctx, table, stream, Direction::Write, deadline, |io| io
                .write(&data[sent..]));
        }
        Ok(Ok(()))
    }

    fn shutdown(
        &mut self,
        stream: Resource<TcpStreamHandle>,
        how: ShutdownHow,
    ) -> wasmtime::Result<Result<(), Error>> {
        let how = match how {
            ShutdownHow::Read => Shutdown::Read,
            ShutdownHow::Write => Shutdown::Write,
            ShutdownHow::Both => Shutdown::Both,
        };
        Ok(self.table.get(&stream)?.io.shutdown(how).map_err(io_error))
    }

    fn peer_address(
        &mut self,
        stream: Resource<TcpStreamHandle>,
    ) -> wasmtime::Result<Result<SocketAddress, Error>> {
        Ok(self
            .table
            .get(&stream)?
            .io
            .peer_addr()
            .map(|a| a.to_string())
            .map_err(io_error))
    }

    fn local_address(
        &mut self,
        stream: Resource<TcpStreamHandle>,
    ) -> wasmtime::Result<Result<SocketAddress, Error>> {
        Ok(self
            .table
            .get(&stream)?
            .io
            .local_addr()
            .map(|a| a.to_string())
            .map_err(io_error))
    }

    fn set_nodelay(
        &mut self,
        stream: Resource<TcpStreamHandle>,
        enabled: bool,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(self
            .table
            .get(&stream)?
            .io
            .set_nodelay(enabled)
            .map_err(io_error))
    }

    fn drop(&mut self, stream: Resource<TcpStreamHandle>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

/// A non-blocking UDP socket bound to `addr` (IPv6 sockets IPv6 only, as
/// for `listeners::listen`).
fn udp_bind(addr: SocketAddr) -> io::Result<mio::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        None,
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// EINPROGRESS on Linux: a non-blocking connect still under way.
fn libc_einprogress() -> i32 {
    115
}

impl HostUdpSocket for TaskState {
    fn bind(
        &mut self,
        address: SocketAddress,
    ) -> wasmtime::Result<Result<Resource<UdpSocketHandle>, Error>> {
        let addr = guest_try!(self.allowed(&address, NetUse::Listen));
        let socket = guest_try!(udp_bind(addr).map_err(io_error));
        let registered = guest_try!(Registered::new(self.ctx()?, socket, self.program.app()));
        Ok(Ok(self.table.push(registered)?))
    }

    async fn recv_from(
        &mut self,
        socket: Resource<UdpSocketHandle>,
        max: u32,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<(Vec<u8>, SocketAddress), Error>> {
        let (ctx, table) = self.parts()?;
        let mut deadline = Deadline::after_nanos(&ctx.shards, timeout);
        let (data, from) = retry!(ctx, table, socket, Direction::Read, deadline, |io| {
            read_scratch(&mut ctx.core(), max, |buf| io.recv_from(buf))
        });
        Ok(Ok((data, from.to_string())))
    }

    async fn send_to(
        &mut self,
        socket: Resource<UdpSocketHandle>,
        data: Vec<u8>,
        address: SocketAddress,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let addr = guest_try!(self.allowed(&address, NetUse::Connect));
        let (ctx, table) = self.parts()?;
        let mut deadline = Deadline::after_nanos(&ctx.shards, timeout);
        let n = retry!(ctx, table, socket, Direction::Write, deadline, |io| io
            .send_to(&data, addr));
        Ok(Ok(n as u32))
    }

    fn connect(
        &mut self,
        socket: Resource<UdpSocketHandle>,
        address: SocketAddress,
    ) -> wasmtime::Result<Result<(), Error>> {
        self.ctx()?;
        let addr = guest_try!(self.allowed(&address, NetUse::Connect));
        Ok(self.table.get(&socket)?.io.connect(addr).map_err(io_error))
    }

    async fn send(
        &mut self,
        socket: Resource<UdpSocketHandle>,
        data: Vec<u8>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let (ctx, table) = self.parts()?;
        let mut deadline = Deadline::after_nanos(&ctx.shards, timeout);
        let n = retry!(ctx, table, socket, Direction::Write, deadline, |io| io
            .send(&data));
        Ok(Ok(n as u32))
    }

    async fn recv(
        &mut self,
        socket: Resource<UdpSocketHandle>,
        max: u32,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        let (ctx, table) = self.parts()?;
        let mut deadline = Deadline::after_nanos(&ctx.shards, timeout);
        let (data, ()) = retry!(ctx, table, socket, Direction::Read, deadline, |io| {
            read_scratch(&mut ctx.core(), max, |buf| io.recv(buf).map(|n| (n, ())))
        });
        Ok(Ok(data))
    }

    fn local_address(
        &mut self,
        socket: Resource<UdpSocketHandle>,
    ) -> wasmtime::Result<Result<SocketAddress, Error>> {
        Ok(self
            .table
            .get(&socket)?
            .io
            .local_addr()
            .map(|a| a.to_string())
            .map_err(io_error))
    }

    fn drop(&mut self, socket: Resource<UdpSocketHandle>) -> wasmtime::Result<()> {
        self.table.delete(socket)?;
        Ok(())
    }
}
