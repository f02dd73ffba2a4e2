//! The seed's echo server: a listener task that accepts connections and
//! hands each to a `client_handler` child task of its own.
//!
//! `mtask-host run --listen 127.0.0.1:7878 echo-server.wasm -- [ADDRESS] [COUNT]`
//! listens on ADDRESS (default 127.0.0.1:7878); with COUNT, it stops after
//! that many connections, once their handlers are done.

use mtask::{Handle, TcpListener, TcpStream};

fn main() -> mtask::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:7878".to_string());
    let count: Option<u64> = args.next().and_then(|n| n.parse().ok());
    let listener = TcpListener::bind_with_backlog(&address, 1024)?;
    println!("listening on {}", listener.local_addr()?);
    let mut handlers = Vec::new();
    let mut accepted = 0;
    while count.is_none_or(|n| accepted < n) {
        let (conn, _peer) = listener.accept()?;
        accepted += 1;
        // The handler owns the connection now: the listener no longer has it.
        let handler = mtask::spawn_fn_with(client_handler, &(), vec![conn.into_handle()])?;
        if count.is_some() {
            handlers.push(handler);
        }
    }
    for handler in handlers {
        // A connection that failed (a reset, say) ends its handler only.
        if let Err(e) = handler.join() {
            eprintln!("echo-server: {e}");
        }
    }
    println!("served {accepted} connections");
    Ok(())
}

/// Echoes what the peer sends until it closes its side.
fn client_handler() -> mtask::Result<()> {
    let Some(Handle::TcpStream(conn)) = mtask::take_handles().pop() else {
        return Err(mtask::Error::Invalid(
            "client_handler needs a connection".into(),
        ));
    };
    echo(&conn)
}

fn echo(conn: &TcpStream) -> mtask::Result<()> {
    loop {
        let request = conn.recv(64 << 10)?;
        if request.is_empty() {
            return Ok(());
        }
        conn.send_all(&request)?;
    }
}

mtask::entries!(main, client_handler);
