//! The tests' NATS server (`support::nats`): a real `nats-server` with
//! JetStream, on a loopback port of its own.

mod support;

use std::io::{BufRead, BufReader};

use support::nats::NatsServer;

#[test]
fn the_test_nats_server_starts_with_jetstream() {
    let server = NatsServer::start();
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));

    // Started means the monitoring endpoint reported JetStream healthy.
    let (code, body) = server.healthz().expect("healthz answers");
    assert_eq!(code, 200, "healthz body: {body}");
    assert!(body.contains("ok"), "healthz body: {body}");

    // A client's first read: the server's INFO line, JetStream on.
    let conn = support::connect(server.addr());
    let mut info = String::new();
    BufReader::new(conn).read_line(&mut info).unwrap();
    assert!(info.starts_with("INFO {"), "first line: {info}");
    assert!(info.contains("\"jetstream\":true"), "first line: {info}");

    let store = server.store_dir();
    assert!(store.is_dir(), "{} is missing", store.display());

    // Dropped: killed, and its directory gone.
    let port = server.port();
    drop(server);
    assert!(!store.exists(), "{} is still there", store.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still listens on port {port}"
    );
}
