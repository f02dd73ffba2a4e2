//! `wasi:sockets` for guests' standard libraries (Rust `std::net`, Python
//! `socket`, C `recv`), under the same sandbox as mtask's own `net`
//! interface (docs/design.md §6).
//!
//! wasmtime-wasi implements the sockets; this file adds what it leaves to
//! the embedder:
//!
//! - **Addresses.** Every bind, listen, connect and datagram is checked
//!   against the app's `--listen` / `--connect` rules
//!   ([`NetPolicy::check_wasi`], through wasmtime-wasi's address-check
//!   hook, installed by `Program::wasi_ctx`).
//! - **Counts.** A socket counts against the app's `--max-sockets` from its
//!   creation (or accept) to its drop, as mtask's own do: the socket
//!   constructors, `accept` and the two socket destructors are shadowed
//!   here by versions that count and then call wasmtime-wasi's. A socket's
//!   streams are its children in the resource table, so it cannot be
//!   dropped while they keep its file open. The count is a task's
//!   `handles::WasiSockets`.
//! - **Names.** A host name is looked up only if the app may
//!   (`--name-lookup`): a lookup reaches the host's resolver, a channel out
//!   of the sandbox. Address literals and `localhost` always resolve.
//!
//! A blocking call (`TcpStream::read`, `sock.recv`) waits in wasmtime-wasi's
//! async `poll`, which suspends the task's fiber: the other tasks run on.

use std::net::IpAddr;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{self, ResolveAddressStream};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily, Network};
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::bindings::sockets::udp::HostUdpSocket;
use wasmtime_wasi::p2::bindings::sockets::{tcp_create_socket, udp_create_socket};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, SocketResult, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView};

use crate::program::task::TaskState;

/// The version of `wasi:sockets` that wasmtime-wasi links; a component
/// built for an earlier 0.2 release is matched to it by semver.
const VERSION: &str = "0.2.12";

/// The guest's view of a socket call's outcome: its error code, or a trap
/// for an error that is the host's (a bad resource, say).
fn to_guest<T>(result: SocketResult<T>) -> wasmtime::Result<Result<T, ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) => e.downcast().map(Err),
    }
}

/// A socket made by `make` (wasmtime-wasi's), counted first; a refused or
/// failed one is not counted.
fn counted<T>(
    state: &mut TaskState,
    make: impl FnOnce(&mut TaskState) -> SocketResult<T>,
) -> wasmtime::Result<Result<T, ErrorCode>> {
    if let Err(code) = state.wasi_sockets.open() {
        return Ok(Err(code));
    }
    let made = to_guest(make(state));
    if !matches!(made, Ok(Ok(_))) {
        state.wasi_sockets.close();
    }
    made
}

/// A socket destructor: drops the socket as wasmtime-wasi's `drop` does,
/// then uncounts it.
fn uncounting<S: 'static>(
    drop: impl Fn(&mut WasiSocketsCtxView<'_>, Resource<S>) -> wasmtime::Result<()>
    + Send
    + Sync
    + 'static,
) -> impl Fn(StoreContextMut<'_, TaskState>, u32) -> wasmtime::Result<()> + Send + Sync + 'static {
    move |mut store, rep| {
        let state = store.data_mut();
        drop(&mut state.sockets(), Resource::new_own(rep))?;
        state.wasi_sockets.close();
        Ok(())
    }
}

/// Whether `name` resolves without a lookup beyond the host (an address
/// literal, bracketed or not, or `localhost`).
fn resolves_locally(name: &str) -> bool {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost")
}

/// Shadows wasmtime-wasi's socket constructors, `accept`, socket
/// destructors and name lookup in `linker` (which already holds
/// wasmtime-wasi's) with the counting and checking versions above.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = shadow(linker);
    linker.allow_shadowing(false);
    added
}

fn shadow(linker: &mut Linker<TaskState>) -> wasmtime::Result<()> {
    let mut tcp_create = linker.instance(&format!("wasi:sockets/tcp-create-socket@{VERSION}"))?;
    tcp_create.func_wrap(
        "create-tcp-socket",
        |mut store: StoreContextMut<'_, TaskState>, (family,): (IpAddressFamily,)| {
            let made = counted(store.data_mut(), |state| {
                tcp_create_socket::Host::create_tcp_socket(&mut state.sockets(), family)
            });
            Ok((made?,))
        },
    )?;

    let mut tcp = linker.instance(&format!("wasi:sockets/tcp@{VERSION}"))?;
    tcp.func_wrap(
        "[method]tcp-socket.accept",
        |mut store: StoreContextMut<'_, TaskState>, (this,): (Resource<TcpSocket>,)| {
            type Accepted = (
                Resource<TcpSocket>,
                Resource<DynInputStream>,
                Resource<DynOutputStream>,
            );
            let made: Result<Accepted, ErrorCode> = counted(store.data_mut(), |state| {
                HostTcpSocket::accept(&mut state.sockets(), this)
            })?;
            Ok((made,))
        },
    )?;
    tcp.resource(
        "tcp-socket",
        ResourceType::host::<TcpSocket>(),
        uncounting(|sockets, socket| HostTcpSocket::drop(sockets, socket)),
    )?;

    let mut udp_create = linker.instance(&format!("wasi:sockets/udp-create-socket@{VERSION}"))?;
    udp_create.func_wrap_async(
        "create-udp-socket",
        |mut store: StoreContextMut<'_, TaskState>, (family,): (IpAddressFamily,)| {
            Box::new(async move {
                let state = store.data_mut();
                if let Err(code) = state.wasi_sockets.open() {
                    return Ok((Err(code),));
                }
                let mut sockets = state.sockets();
                let made = udp_create_socket::Host::create_udp_socket(&mut sockets, family).await;
                let made = to_guest(made);
                if !matches!(made, Ok(Ok(_))) {
                    state.wasi_sockets.close();
                }
                Ok((made?,))
            })
        },
    )?;

    let mut udp = linker.instance(&format!("wasi:sockets/udp@{VERSION}"))?;
    udp.resource(
        "udp-socket",
        ResourceType::host::<UdpSocket>(),
        uncounting(|sockets, socket| HostUdpSocket::drop(sockets, socket)),
    )?;

    let mut lookup = linker.instance(&format!("wasi:sockets/ip-name-lookup@{VERSION}"))?;
    lookup.func_wrap(
        "resolve-addresses",
        |mut store: StoreContextMut<'_, TaskState>,
         (network, name): (Resource<Network>, String)| {
            let state = store.data_mut();
            if !resolves_locally(&name) && !state.program.net().name_lookup() {
                return Ok((Err::<Resource<ResolveAddressStream>, _>(
                    ErrorCode::AccessDenied,
                ),));
            }
            let made = ip_name_lookup::Host::resolve_addresses(&mut state.sockets(), network, name);
            Ok((to_guest(made)?,))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_localhost_resolve_without_a_lookup() {
        for name in ["127.0.0.1", "::1", "[::1]", "localhost", "LOCALHOST"] {
            assert!(resolves_locally(name), "{name}");
        }
        for name in [
            "example.com",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!resolves_locally(name), "{name}");
        }
    }
}
