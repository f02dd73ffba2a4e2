//! Guest for the socket tests: each entry does one thing against addresses
//! given as arguments (`-- ADDRESS...`) and prints what it saw.

use std::time::{Duration, Instant};

use mtask::{TcpListener, TcpStream, UdpSocket};

fn arg(n: usize) -> String {
    std::env::args().nth(n).unwrap_or_default()
}

/// Connects to `arg 1`; a recv with a timeout finds nothing; then the peer
/// is told so and its answer is still there to read.
fn recv_timeout_main() -> mtask::Result<()> {
    let stream = TcpStream::connect(&arg(1))?;
    let start = Instant::now();
    let first = stream.recv_timeout(100, Duration::from_millis(20));
    println!("first: {first:?} after {} ms", start.elapsed().as_millis());
    stream.send_all(b"ready")?;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(stream.recv(100)?);
    }
    println!("then: {}", String::from_utf8_lossy(&got));
    Ok(())
}

/// Connects to a port nobody listens on.
fn refused_main() {
    println!("{:?}", TcpStream::connect(&arg(1)).map(|_| ()));
}

/// Binds and connects where the rules do not allow.
fn denied_main() {
    println!("listen: {:?}", TcpListener::bind(&arg(1)).map(|_| ()));
    println!("connect: {:?}", TcpStream::connect(&arg(2)).map(|_| ()));
    println!("udp: {:?}", UdpSocket::bind(&arg(1)).map(|_| ()));
    println!(
        "bad address: {:?}",
        TcpStream::connect("localhost").map(|_| ())
    );
}

/// Talks to `arg 1` through `std::io`'s `Read` and `Write`, with `?` in a
/// function returning `mtask::Result`; then shows how errors convert.
fn std_io_main() -> mtask::Result<()> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(&arg(1))?;
    stream.write_all(b"ping")?;
    let mut back = [0u8; 4];
    stream.read_exact(&mut back)?;
    println!("read back: {}", String::from_utf8_lossy(&back));
    let io: std::io::Error = mtask::Error::Denied("no".into()).into();
    println!("as io: {:?}; back: {:?}", io.kind(), mtask::Error::from(io));
    let other = std::io::Error::other("disk on fire");
    println!("foreign: {:?}", mtask::Error::from(other));
    Ok(())
}

/// Answers one datagram, then talks to its sender through a connected
/// socket: sends one, and receives the first that comes from that peer
/// (the kernel drops the others').
fn udp_main() -> mtask::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    println!("listening on {}", socket.local_addr()?);
    let (data, from) = socket.recv_from(1500)?;
    socket.send_to(&data, &from.to_string())?;
    let connected = UdpSocket::bind("127.0.0.1:0")?;
    connected.connect(&from.to_string())?;
    println!(
        "before: {:?}",
        connected.recv_timeout(1500, Duration::from_millis(10))
    );
    connected.send(b"connected")?;
    println!("echoed {} bytes", data.len());
    let reply = connected.recv(1500)?;
    println!("connected got: {}", String::from_utf8_lossy(&reply));
    Ok(())
}

/// Connects to `arg 1`, a listener whose queue is full, with a deadline.
fn connect_timeout_main() {
    let start = Instant::now();
    let result = TcpStream::connect_timeout(&arg(1), Duration::from_millis(100));
    println!(
        "{:?} after {} ms",
        result.map(|_| ()),
        start.elapsed().as_millis()
    );
}

/// Connects to `arg 1` with a deadline, then sends until a send times out
/// (the peer reads nothing yet), shuts its writing half and reads the
/// peer's answer to the end.
fn tcp_calls_main() -> mtask::Result<()> {
    let stream = TcpStream::connect_timeout(&arg(1), Duration::from_secs(10))?;
    let chunk = vec![7u8; 64 << 10];
    let mut sent = 0;
    let full = loop {
        match stream.send_timeout(&chunk, Duration::from_millis(50)) {
            Ok(n) => sent += n,
            Err(e) => break e,
        }
    };
    println!("sent {sent} then: {full}");
    stream.shutdown(std::net::Shutdown::Write)?;
    println!(
        "send after shutdown: {:?}",
        stream.send(b"late").map_err(|e| e.to_string())
    );
    let mut answer = Vec::new();
    loop {
        let got = stream.recv(1024)?;
        if got.is_empty() {
            break;
        }
        answer.extend(got);
    }
    println!("answer: {}", String::from_utf8_lossy(&answer));
    Ok(())
}

/// A listener on `arg 1` whose accept times out, then a child that serves
/// the one connection it is handed.
fn handoff_main() -> mtask::Result<()> {
    let listener = TcpListener::bind(&arg(1))?;
    // Nobody knows the address yet: nothing can be accepted.
    let first = listener
        .accept_timeout(Duration::from_millis(10))
        .map(|_| ());
    println!("listening on {}", listener.local_addr()?);
    println!("accept: {first:?}");
    let child: mtask::Task<String> =
        mtask::spawn_with("greeter", &(), vec![listener.into_handle()])?;
    println!("child: {}", child.join()?);
    Ok(())
}

fn greeter() -> mtask::Result<String> {
    let Some(mtask::Handle::TcpListener(listener)) = mtask::take_handles().pop() else {
        return Err(mtask::Error::Invalid("no listener".into()));
    };
    let (conn, _) = listener.accept()?;
    conn.send_all(b"hello from a child\n")?;
    Ok(format!("greeted {}", conn.peer_addr()?.ip()))
}

mtask::entries!(
    std_io_main,
    recv_timeout_main,
    refused_main,
    denied_main,
    udp_main,
    tcp_calls_main,
    connect_timeout_main,
    handoff_main,
    greeter
);
