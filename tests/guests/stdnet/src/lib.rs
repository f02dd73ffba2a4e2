//! Guest for the WASI sockets tests: each entry uses the standard library's
//! own sockets (`std::net`), not mtask's `net` interface, against addresses
//! given as arguments (`-- ADDRESS...`), and prints what it saw.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

fn arg(n: usize) -> String {
    std::env::args().nth(n).unwrap_or_default()
}

fn count_arg(n: usize) -> usize {
    arg(n).parse().unwrap_or(1)
}

/// Echoes what each of `arg 2` connections sends, until it shuts its
/// side, on a listener bound to `arg 1`.
fn echo_main() -> std::io::Result<()> {
    let listener = TcpListener::bind(arg(1))?;
    println!("listening on {}", listener.local_addr()?);
    let count = count_arg(2);
    for _ in 0..count {
        let (mut conn, _) = listener.accept()?;
        let mut got = Vec::new();
        conn.read_to_end(&mut got)?;
        conn.write_all(&got)?;
    }
    println!("echoed {count} connections");
    Ok(())
}

/// Answers `arg 2` datagrams sent to `arg 1` with their own bytes.
fn udp_echo_main() -> std::io::Result<()> {
    let socket = UdpSocket::bind(arg(1))?;
    println!("listening on {}", socket.local_addr()?);
    let count = count_arg(2);
    let mut buf = [0u8; 1500];
    for _ in 0..count {
        let (n, from) = socket.recv_from(&mut buf)?;
        socket.send_to(&buf[..n], from)?;
    }
    println!("echoed {count} datagrams");
    Ok(())
}

/// Sends a line to `arg 1`, shuts its side and prints the answer.
fn client_main() -> std::io::Result<()> {
    let mut stream = TcpStream::connect(arg(1))?;
    stream.write_all(b"hello from std::net")?;
    stream.shutdown(Shutdown::Write)?;
    let mut back = String::new();
    stream.read_to_string(&mut back)?;
    println!("got: {back}");
    Ok(())
}

/// What each use of the network gives when the rules may not allow it:
/// binding `arg 1`, connecting and sending to `arg 2`, looking up `arg 3`.
fn denied_main() {
    let kind = |r: std::io::Result<()>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{:?}", e.kind()),
    };
    println!("listen: {}", kind(TcpListener::bind(arg(1)).map(drop)));
    println!("connect: {}", kind(TcpStream::connect(arg(2)).map(drop)));
    let sent = UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"x", arg(2)));
    println!("udp send: {}", kind(sent.map(drop)));
    let found = (arg(3).as_str(), 80).to_socket_addrs();
    println!("lookup: {}", kind(found.map(drop)));
}

/// Looks `arg 1` up and prints the addresses found.
fn lookup_main() -> std::io::Result<()> {
    let found: Vec<_> = (arg(1).as_str(), 80).to_socket_addrs()?.collect();
    println!("found: {found:?}");
    Ok(())
}

/// Blocks in a `std::net` read from `arg 1` while a child task ticks
/// every 20 ms: the read must suspend this task only.
fn blocked_main() -> mtask::Result<()> {
    let start = Instant::now();
    let ticker = mtask::spawn_fn(ticker, &25)?;
    let mut stream = TcpStream::connect(arg(1))?;
    let mut got = [0u8; 16];
    let n = stream.read(&mut got)?;
    println!(
        "read `{}` after {} ms",
        String::from_utf8_lossy(&got[..n]),
        start.elapsed().as_millis()
    );
    let (ended, late) = ticker.join()?;
    println!("ticker ended at {ended} ms, at most {late} ms late");
    Ok(())
}

/// Sleeps `ticks` times 20 ms; gives when it ended (ms since its start)
/// and how late its latest wake-up was.
fn ticker(ticks: u32) -> mtask::Result<(u64, u64)> {
    let start = Instant::now();
    let mut late = Duration::ZERO;
    for i in 1..=ticks {
        mtask::sleep(Duration::from_millis(20));
        late = late.max(
            start
                .elapsed()
                .saturating_sub(Duration::from_millis(20) * i),
        );
    }
    Ok((start.elapsed().as_millis() as u64, late.as_millis() as u64))
}

/// Opens std UDP sockets (after one of mtask's own) until one is refused,
/// prints how many it had and why; then closes them and opens one more.
fn many_main() -> mtask::Result<()> {
    let own = mtask::UdpSocket::bind("127.0.0.1:0")?;
    let mut open = Vec::new();
    let refused = loop {
        match UdpSocket::bind("0.0.0.0:0") {
            Ok(socket) => open.push(socket),
            Err(e) => break e,
        }
        if open.len() > 1000 {
            return Err(mtask::Error::Invalid("no limit".into()));
        }
    };
    println!("opened {} besides mtask's own: {refused}", open.len());
    drop(open);
    drop(own);
    let again = (0..3)
        .map(|_| UdpSocket::bind("0.0.0.0:0"))
        .collect::<Vec<_>>();
    let ok = again.iter().filter(|s| s.is_ok()).count();
    println!("after closing them: {ok} of 3 open");
    Ok(())
}

mtask::entries!(
    echo_main,
    udp_echo_main,
    client_main,
    denied_main,
    lookup_main,
    blocked_main,
    ticker,
    many_main
);
