//! Sockets over real loopback (issue 3): the echo-server example driven by
//! native clients, timeouts, refusals, capabilities, UDP, handoff, and no
//! leaked descriptors.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use support::{Run, connect, guest, host, host_run, run_guest, spawn_listening};

/// An `mtask-host run` in the background, whose first line of output
/// names the address it listens on.
struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Server {
    fn start(app: &str, entry: &str, listen: &str, args: &[&str]) -> Server {
        let mut cmd = host();
        cmd.args([
            "run",
            "--entry",
            entry,
            "--listen",
            listen,
            "--connect",
            "127.0.0.1:*",
        ])
        .arg(guest(app))
        .arg("--")
        .args(args)
        .stderr(Stdio::piped());
        let (child, stdout, addr) = spawn_listening(&mut cmd);
        Server {
            child,
            stdout,
            addr,
        }
    }

    /// The echo-server example on a free port, stopping after `count` connections.
    fn echo(count: usize) -> Server {
        Server::start(
            "echo_server",
            "main",
            "127.0.0.1:*",
            &["127.0.0.1:0", &count.to_string()],
        )
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to exit; its status and the rest of its output.
    fn finish(mut self) -> Run {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        Run::new(
            self.child.wait().unwrap().code().unwrap_or(-1),
            rest,
            &stderr,
        )
    }
}

/// Sends `data` on a fresh connection and returns all that comes back
/// once this side has shut down its writing half.
fn echo_round(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            stream.write_all(&data).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    back
}

#[test]
fn echoes_one_byte_64_kib_and_16_mib() {
    let server = Server::echo(3);
    for size in [1, 64 << 10, 16 << 20] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let back = echo_round(server.addr, &data);
        assert_eq!(back.len(), data.len(), "{size} bytes sent");
        assert!(back == data, "the echo of {size} bytes differs");
    }
    let run = server.finish();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "served 3 connections\n");
}

#[test]
fn serves_1000_concurrent_connections() {
    let server = Server::echo(1000);
    let mut streams: Vec<TcpStream> = (0..1000).map(|_| connect(server.addr)).collect();
    for (i, s) in streams.iter_mut().enumerate() {
        s.write_all(format!("message {i:04}\n").as_bytes()).unwrap();
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let mut line = [0u8; 13];
        s.read_exact(&mut line).unwrap();
        assert_eq!(line, *format!("message {i:04}\n").as_bytes());
    }
    drop(streams);
    let run = server.finish();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "served 1000 connections\n");
}

/// The descriptors `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn closes_every_connection_it_served() {
    let server = Server::echo(1001);
    // One connection first, so that lazily made descriptors exist already.
    assert_eq!(echo_round(server.addr, b"warm"), b"warm");
    let settle = |want: Option<usize>| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = open_fds(server.pid());
            if want.is_none_or(|w| n <= w) || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    std::thread::sleep(Duration::from_millis(100));
    let before = settle(None);
    for i in 0..1000 {
        let data = format!("connection {i}");
        assert_eq!(echo_round(server.addr, data.as_bytes()), data.as_bytes());
    }
    let after = settle(Some(before));
    assert!(
        after <= before,
        "{before} descriptors before 1000 connections, {after} after"
    );
    let run = server.finish();
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_half_closed_connection_still_gets_its_answer() {
    let server = Server::echo(1);
    let mut stream = connect(server.addr);
    stream.write_all(b"last words").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut back = String::new();
    stream.read_to_string(&mut back).unwrap();
    assert_eq!(back, "last words");
    assert_eq!(server.finish().code, 0);
}

#[test]
fn a_peer_reset_mid_transfer_ends_only_its_handler() {
    let server = Server::echo(2);
    {
        let stream = socket2::Socket::from(connect(server.addr));
        stream.set_linger(Some(Duration::ZERO)).unwrap(); // close with RST
        let mut stream = TcpStream::from(stream);
        stream.write_all(&vec![1u8; 1 << 20]).ok();
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(echo_round(server.addr, b"still here"), b"still here");
    let run = server.finish();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "served 2 connections\n");
    assert!(
        run.stderr.contains("reset"),
        "the reset is reported: {}",
        run.stderr
    );
}

#[test]
fn a_recv_that_times_out_has_no_effect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = guest("netting");
    let child = host()
        .args(["run", "--entry", "recv_timeout_main", "--connect", &addr])
        .arg(&app)
        .args(["--", &addr])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    support::watchdog(child.id());
    let mut conn = support::accept(&listener);
    let mut ready = [0u8; 5];
    conn.read_exact(&mut ready).unwrap();
    assert_eq!(&ready, b"ready");
    conn.write_all(b"hi").unwrap();
    let run: Run = child.wait_with_output().unwrap().into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert!(
        lines[0].starts_with(
            "first: Err(Timeout { call: \"TcpStream::recv_timeout\", after: 20ms }) after"
        ),
        "{}",
        lines[0]
    );
    let waited = support::number_after(lines[0], "}) after");
    assert!((20..200).contains(&waited), "timed out after {waited} ms");
    assert_eq!(lines[1], "then: hi");
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}"); // the listener is gone now
    let run = run_guest(
        "netting",
        "refused_main",
        &["--connect", "127.0.0.1:*"],
        &[&addr],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [r#"Err(Io("Connection refused (os error 111)"))"#]
    );
}

#[test]
fn binds_and_connects_outside_the_rules_are_denied() {
    let run = run_guest(
        "netting",
        "denied_main",
        &["--listen", "127.0.0.1:9000", "--connect", "10.0.0.0/8:443"],
        &["127.0.0.1:9001", "10.0.0.1:80"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            r#"listen: Err(Denied("binding 127.0.0.1:9001 is not allowed (no --listen rule grants it)"))"#,
            r#"connect: Err(Denied("connecting to 10.0.0.1:80 is not allowed (no --connect rule grants it)"))"#,
            r#"udp: Err(Denied("binding 127.0.0.1:9001 is not allowed (no --listen rule grants it)"))"#,
            r#"bad address: Err(Invalid("`localhost` is not a socket address like 127.0.0.1:80 or [::1]:80"))"#,
        ]
    );
    let bad_rule = host_run(["run", "--listen", "localhost:80", "x.wasm"]);
    assert_eq!(bad_rule.code, 2);
    assert!(
        bad_rule.stderr.contains("is not a network rule"),
        "{}",
        bad_rule.stderr
    );
}

#[test]
fn udp_datagrams_make_the_round_trip() {
    let server = Server::start("netting", "udp_main", "127.0.0.1:*", &[]);
    let addr = server.addr;
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.send_to(b"datagram", addr).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = client.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"datagram"[..], addr));
    let (n, connected) = client.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"connected");
    // The connected socket takes datagrams from its peer only: a
    // stranger's, sent first, never reaches its `recv`.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger.send_to(b"stranger", connected).unwrap();
    client.send_to(b"reply", connected).unwrap();
    let run = server.finish();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            r#"before: Err(Timeout { call: "UdpSocket::recv_timeout", after: 10ms })"#,
            "echoed 8 bytes",
            "connected got: reply",
        ]
    );
}

#[test]
fn a_connect_that_times_out_says_so() {
    // A listener that never accepts, with a queue of one: once full, the
    // kernel drops the next handshake, so a connect waits until it gives up.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let fillers: Vec<_> = (0..2)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok())
        .collect();
    assert!(!fillers.is_empty(), "the queue could not be filled");
    let run = run_guest(
        "netting",
        "connect_timeout_main",
        &["--connect", &addr.to_string()],
        &[&addr.to_string()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = run.lines()[0];
    assert!(
        line.starts_with(
            r#"Err(Timeout { call: "TcpStream::connect_timeout", after: 100ms }) after"#
        ),
        "{line}"
    );
    let waited = support::number_after(line, "}) after");
    assert!((100..1000).contains(&waited), "gave up after {waited} ms");
}

#[test]
fn send_timeout_shutdown_and_connect_timeout_work_on_a_stream() {
    // A native peer that reads nothing until the guest says its sends are
    // timing out, then reads to the end and answers with the count.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut cmd = host();
    cmd.args(["run", "--entry", "tcp_calls_main", "--connect", &addr])
        .arg(guest("netting"))
        .args(["--", &addr]);
    let (child, mut stdout, lines) = support::spawn_until(&mut cmd, "sent ");
    let mut conn = support::accept(&listener);
    let sent = support::number_after(&lines[0], "sent");
    assert!(
        lines[0].ends_with("then: TcpStream::send_timeout timed out after 50ms"),
        "{lines:?}"
    );
    // The guest's sends fill the socket buffers: at least 64 KiB went.
    assert!(sent >= 64 << 10, "{lines:?}");
    let mut got = Vec::new();
    // The end of the stream comes only from the guest's shutdown.
    conn.read_to_end(&mut got).unwrap();
    assert_eq!(got.len() as u64, sent);
    assert!(got.iter().all(|&b| b == 7));
    conn.write_all(format!("got {} bytes", got.len()).as_bytes())
        .unwrap();
    drop(conn);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{rest}");
    let rest: Vec<&str> = rest.lines().collect();
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert!(rest[0].starts_with("send after shutdown: Err("), "{rest:?}");
    assert_eq!(rest[1], format!("answer: got {sent} bytes"));
}

#[test]
fn a_listener_handed_to_a_child_serves_there() {
    let server = Server::start("netting", "handoff_main", "127.0.0.1:*", &["127.0.0.1:0"]);
    let mut stream = connect(server.addr);
    let mut greeting = String::new();
    BufReader::new(&mut stream)
        .read_line(&mut greeting)
        .unwrap();
    assert_eq!(greeting, "hello from a child\n");
    let run = server.finish();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "accept: Err(Timeout { call: \"TcpListener::accept_timeout\", after: 10ms })\nchild: greeted 127.0.0.1\n"
    );
}

#[test]
fn serves_over_ipv6() {
    let server = Server::start("echo_server", "main", "[::1]:*", &["[::1]:0", "1"]);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    assert_eq!(echo_round(server.addr, b"over ipv6"), b"over ipv6");
    assert_eq!(server.finish().code, 0);
}

#[test]
fn an_ipv4_mapped_address_is_ipv4_to_the_rules() {
    // A real listener on IPv4 loopback, reached through the mapped spelling.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mapped = format!("[::ffff:127.0.0.1]:{port}");
    // An IPv6-only grant does not reach IPv4 loopback.
    let run = run_guest(
        "netting",
        "refused_main",
        &["--connect", "[::/0]:*"],
        &[&mapped],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [format!(
            r#"Err(Denied("connecting to {mapped} is not allowed (no --connect rule grants it)"))"#
        )]
    );
    // An IPv4 grant reaches its address under either spelling.
    let run = run_guest(
        "netting",
        "refused_main",
        &["--connect", "127.0.0.1:*"],
        &[&mapped],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["Ok(())"]);
    support::accept(&listener);
}

#[test]
fn std_io_read_and_write_work_with_question_marks() {
    // A native peer that answers "pong" to the guest's "ping".
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let mut conn = support::accept(&listener);
        let mut got = [0u8; 4];
        conn.read_exact(&mut got).unwrap();
        conn.write_all(b"pong").unwrap();
        got
    });
    let run = run_guest(
        "netting",
        "std_io_main",
        &["--connect", "127.0.0.1:*"],
        &[&addr],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(&peer.join().unwrap(), b"ping");
    assert_eq!(
        run.lines(),
        [
            "read back: pong",
            r#"as io: PermissionDenied; back: Denied("no")"#,
            r#"foreign: Io("disk on fire")"#,
        ]
    );
}
