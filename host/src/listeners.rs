//! The listening sockets of every tenant, kept so that a new version of an
//! app takes over its old version's listeners with their queues of
//! connections: none is refused while the versions switch
//! (docs/design.md §13).
//!
//! A bind of a tenant's task on a fixed port goes through [`Listeners`]:
//! the host keeps a duplicate of each listening socket, keyed by tenant and
//! address, for as long as some task's handle on it lives or a reload
//! pins it ([`Listeners::pin`]). When an app is replaced, its listeners
//! are retired ([`Listeners::retire`]): its tasks' accepts fail with
//! `closed` from then on, the kernel keeps queueing connections, and the
//! new version's bind of the same address gets the same socket, with the
//! connections queued meanwhile. A removed tenant's listeners are shut
//! down instead, so that connecting is refused at once.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::ids::AppId;

/// Names one kept socket: the tenant and the address it was bound to.
type Key = (Arc<str>, SocketAddr);

/// The kept listening sockets, and which apps are retired.
#[derive(Default)]
pub(crate) struct Listeners {
    /// The state, behind one leaf lock (a bind or a handle's drop).
    state: Mutex<State>,
    /// Tells each kept socket's entry apart from a later one at its key.
    next_generation: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The kept sockets.
    kept: HashMap<Key, Kept>,
    /// Each app's retired flag, shared with its claims (an accept reads it
    /// with no lock).
    flags: HashMap<AppId, Arc<AtomicBool>>,
}

/// One kept socket.
struct Kept {
    /// A duplicate of the socket: it stays open while the entry does.
    socket: TcpListener,
    /// Which entry at this key this is.
    generation: u64,
    /// The apps whose handles hold it, one element per handle.
    claims: Vec<AppId>,
    /// Reloads that keep it open with no handle on it.
    pins: usize,
    /// Shut down (its tenant removed): a later bind binds afresh.
    shut: bool,
}

/// A task's hold on a kept socket, in its listener handle: dropped with
/// the handle.
pub(crate) struct Claim {
    /// Where the socket is kept.
    listeners: Arc<Listeners>,
    /// Which socket.
    key: Key,
    /// Which entry at the key.
    generation: u64,
    /// The app whose handle it is.
    app: AppId,
    /// Set when the app is retired: its accepts fail from then on.
    retired: Arc<AtomicBool>,
}

impl Claim {
    /// Whether the app was retired: the socket is its successor's now.
    #[cfg(test)]
    fn retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// The app's retired flag, for an accept to read between attempts.
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.retired.clone()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut state = crate::shard::lock(&self.listeners.state);
        let Some(kept) = state.kept.get_mut(&self.key) else {
            return;
        };
        if kept.generation != self.generation {
            return;
        }
        if let Some(at) = kept.claims.iter().position(|&a| a == self.app) {
            kept.claims.swap_remove(at);
        }
        if kept.claims.is_empty() && kept.pins == 0 {
            state.kept.remove(&self.key);
        }
    }
}

/// A reload's hold on every socket a tenant had: they stay open, with
/// their queues of connections, until it drops (the old version drained).
pub(crate) struct Pin {
    /// Where the sockets are kept.
    listeners: Arc<Listeners>,
    /// The entries pinned, with their generations.
    pinned: Vec<(Key, u64)>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut state = crate::shard::lock(&self.listeners.state);
        for (key, generation) in self.pinned.drain(..) {
            let Some(kept) = state.kept.get_mut(&key) else {
                continue;
            };
            if kept.generation == generation {
                kept.pins -= 1;
                if kept.pins == 0 && kept.claims.is_empty() {
                    state.kept.remove(&key);
                }
            }
        }
    }
}

impl Listeners {
    /// A listening socket on `addr` for a task of `app` in `tenant`: the
    /// kept one if every handle on it is a retired app's (or none is),
    /// else a new one with `backlog`. An address held by a live app is in
    /// use, as the kernel would say. Port 0 always binds afresh and is not
    /// kept (no successor could ask for the same port).
    pub(crate) fn bind(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        app: AppId,
        addr: SocketAddr,
        backlog: u32,
    ) -> io::Result<(mio::net::TcpListener, Option<Claim>)> {
        if addr.port() == 0 {
            return Ok((
                mio::net::TcpListener::from_std(listen(addr, backlog)?),
                None,
            ));
        }
        let key: Key = (tenant.clone(), addr);
        let mut state = crate::shard::lock(&self.state);
        let retired = state.flags.entry(app).or_default().clone();
        let flags = &state.flags;
        let takeable = state.kept.get(&key).map(|kept| {
            !kept.shut
                && kept
                    .claims
                    .iter()
                    .all(|a| flags.get(a).is_some_and(|f| f.load(Ordering::Acquire)))
        });
        let socket = match takeable {
            Some(true) => state.kept[&key].socket.try_clone()?,
            Some(false) if !state.kept[&key].shut => {
                return Err(io::Error::from(io::ErrorKind::AddrInUse));
            }
            // None kept, or a shut one whose claims are going: bind anew.
            _ => {
                let socket = listen(addr, backlog)?;
                let kept = Kept {
                    socket: socket.try_clone()?,
                    generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
                    claims: Vec::new(),
                    pins: 0,
                    shut: false,
                };
                state.kept.insert(key.clone(), kept);
                socket
            }
        };
        let kept = state.kept.get_mut(&key).expect("kept above");
        kept.claims.push(app);
        let claim = Claim {
            listeners: self.clone(),
            key,
            generation: kept.generation,
            app,
            retired,
        };
        Ok((mio::net::TcpListener::from_std(socket), Some(claim)))
    }

    /// Keeps every socket of `tenant` open until the pin drops, whoever
    /// lets go of it meanwhile.
    pub(crate) fn pin(self: &Arc<Self>, tenant: &str) -> Pin {
        let mut state = crate::shard::lock(&self.state);
        let mut pinned = Vec::new();
        for (key, kept) in state.kept.iter_mut() {
            if &*key.0 == tenant && !kept.shut {
                kept.pins += 1;
                pinned.push((key.clone(), kept.generation));
            }
        }
        Pin {
            listeners: self.clone(),
            pinned,
        }
    }

    /// Retires `app` of `tenant`: its tasks' accepts fail with `closed`
    /// from now on, and its sockets go to the next app of the tenant that
    /// binds their addresses. With `shut`, its sockets are shut down
    /// instead (the tenant goes): connecting is refused, and a blocked
    /// accept wakes and fails.
    pub(crate) fn retire(&self, tenant: &str, app: AppId, shut: bool) {
        let mut state = crate::shard::lock(&self.state);
        state
            .flags
            .entry(app)
            .or_default()
            .store(true, Ordering::Release);
        if !shut {
            return;
        }
        for (key, kept) in state.kept.iter_mut() {
            if &*key.0 == tenant && kept.claims.contains(&app) {
                kept.shut = true;
                // A listening socket shut down stops listening: the
                // connections queued are reset, new ones refused.
                let _ = socket2::SockRef::from(&kept.socket).shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Forgets the flag of `app`, whose tasks have all ended.
    pub(crate) fn forget(&self, app: AppId) {
        crate::shard::lock(&self.state).flags.remove(&app);
    }

    /// The apps with a retired flag (for tests of the bookkeeping).
    #[cfg(test)]
    fn flagged(&self) -> std::collections::HashSet<AppId> {
        crate::shard::lock(&self.state)
            .flags
            .keys()
            .copied()
            .collect()
    }
}

/// A non-blocking listening socket on `addr` with `backlog`.
pub(crate) fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    // An IPv6 wildcard would also take IPv4 connections: a grant of `[::]`
    // must not reach IPv4 (see `net_policy`).
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.clamp(1, i32::MAX as u32) as i32)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;
    use std::net::TcpStream;

    fn free_addr() -> SocketAddr {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    }

    #[test]
    fn a_successor_takes_the_socket_with_its_queued_connections() {
        let listeners = Arc::new(Listeners::default());
        let tenant: Arc<str> = "t".into();
        let addr = free_addr();
        let (old, claim) = listeners.bind(&tenant, 1, addr, 16).unwrap();
        // A live app's address is in use, for another app as for itself.
        let taken = listeners.bind(&tenant, 2, addr, 16).map(|_| ());
        assert_eq!(taken.unwrap_err().kind(), ErrorKind::AddrInUse);
        let pin = listeners.pin("t");
        listeners.retire("t", 1, false);
        assert!(claim.as_ref().unwrap().retired());
        drop((old, claim));
        // Queued while no app holds the socket: not refused.
        let early = TcpStream::connect(addr).expect("queued, not refused");
        let (new, new_claim) = listeners.bind(&tenant, 2, addr, 16).unwrap();
        assert!(!new_claim.as_ref().unwrap().retired());
        drop(pin);
        let std_new: TcpListener = new.into();
        std_new.set_nonblocking(false).unwrap();
        let (_, peer) = std_new.accept().unwrap();
        assert_eq!(peer, early.local_addr().unwrap());
        drop((std_new, new_claim));
        // Nobody holds it: it is closed.
        let refused = TcpStream::connect(addr).map(|_| ());
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::ConnectionRefused);
        listeners.forget(1);
        listeners.forget(2);
        assert!(listeners.flagged().is_empty());
    }

    #[test]
    fn a_shut_tenants_socket_refuses_and_a_later_bind_is_fresh() {
        let listeners = Arc::new(Listeners::default());
        let tenant: Arc<str> = "t".into();
        let addr = free_addr();
        let (old, claim) = listeners.bind(&tenant, 1, addr, 16).unwrap();
        listeners.retire("t", 1, true);
        let refused = TcpStream::connect(addr).map(|_| ());
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::ConnectionRefused);
        // The old handle still lives; a new app binds a socket of its own.
        let (new, _claim) = listeners.bind(&tenant, 2, addr, 16).unwrap();
        drop((old, claim));
        let std_new: TcpListener = new.into();
        std_new.set_nonblocking(false).unwrap();
        let client = TcpStream::connect(addr).expect("the fresh socket listens");
        assert_eq!(std_new.accept().unwrap().1, client.local_addr().unwrap());
    }
}
