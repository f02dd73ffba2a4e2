//! Guests' own standard-library sockets (WASI sockets, issue 15): Rust
//! `std::net` under the same `--listen` / `--connect` rules and
//! `--max-sockets` count as mtask's own sockets, a blocking std read that
//! suspends only its task, and host-name lookups only with `--name-lookup`.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, ToSocketAddrs};
use std::time::Duration;

use support::{
    ONE_THREAD, accept, assert_echoes_until_shutdown, guest, host, number_after, run_guest,
};

const APP: &str = "stdnet";

#[test]
fn a_std_net_server_echoes_under_listen() {
    let mut cmd = host();
    cmd.args(["run", "--entry", "echo_main", "--listen", "127.0.0.1:*"])
        .arg(guest(APP))
        .args(["--", "127.0.0.1:0", "1"]);
    assert_eq!(
        assert_echoes_until_shutdown(&mut cmd),
        "echoed 1 connections\n"
    );
}

#[test]
fn a_std_net_client_connects_under_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let mut conn = accept(&listener);
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        conn.write_all(format!("you said: {got}").as_bytes())
            .unwrap();
    });
    let run = run_guest(APP, "client_main", &["--connect", &addr], &[&addr]);
    server.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["got: you said: hello from std::net"]);
}

#[test]
fn a_std_net_udp_socket_echoes_datagrams() {
    support::assert_udp_entry_serves_two_datagrams(&guest(APP), "udp_echo_main");
}

/// A port nobody listens on.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

#[test]
fn std_sockets_are_denied_without_rules_and_the_first_refusal_is_told() {
    let target = closed_port();
    let run = run_guest(
        APP,
        "denied_main",
        &[],
        &["127.0.0.1:0", &target, "localhost"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "listen: PermissionDenied",
            "connect: PermissionDenied",
            "udp send: PermissionDenied",
            "lookup: ok",
        ]
    );
    // One line on stderr, for the first refusal only.
    assert_eq!(
        run.stderr,
        "mtask-host: stdnet.wasm: a WASI socket was refused: binding 127.0.0.1:0 is not \
         allowed (no --listen rule grants it) (further refusals are not shown)\n"
    );

    // The same calls under rules that grant them.
    let granted = ["--listen", "127.0.0.1:*", "--connect", "127.0.0.1:*"];
    let run = run_guest(
        APP,
        "denied_main",
        &granted,
        &["127.0.0.1:0", &target, "localhost"],
    );
    assert_eq!(
        run.lines(),
        [
            "listen: ok",
            "connect: ConnectionRefused",
            "udp send: ok",
            "lookup: ok"
        ],
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr, "");

    // A rule for one address grants nothing else: not another IPv4 address,
    // not IPv6 loopback; an IPv4-mapped spelling is refused by WASI itself.
    let narrow = ["--connect", "127.0.0.2:*"];
    for (other, refused) in [
        (target.as_str(), "PermissionDenied"),
        ("[::1]:9", "PermissionDenied"),
        ("[::ffff:127.0.0.1]:9", "InvalidInput"),
    ] {
        let run = run_guest(
            APP,
            "denied_main",
            &narrow,
            &["127.0.0.1:0", other, "localhost"],
        );
        assert_eq!(run.lines()[1], format!("connect: {refused}"), "{other}");
    }
}

#[test]
fn a_blocked_std_read_suspends_only_its_task() {
    // The peer answers after 800 ms; the guest's ticker child sleeps 25
    // times 20 ms meanwhile, on the same (only) scheduler thread.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let mut conn = accept(&listener);
        std::thread::sleep(Duration::from_millis(800));
        conn.write_all(b"late").unwrap();
    });
    let mut flags = ONE_THREAD.to_vec();
    flags.extend(["--connect", &addr]);
    let run = run_guest(APP, "blocked_main", &flags, &[&addr]);
    peer.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert!(lines[0].starts_with("read `late` after "), "{lines:?}");
    let read_at = number_after(lines[0], "after");
    let ticker_end = number_after(lines[1], "ended at");
    let late = number_after(lines[1], "at most");
    assert!(read_at >= 800, "{lines:?}");
    // Had the read held the thread, the ticker would have ended after it.
    assert!(ticker_end + 150 < read_at, "{lines:?}");
    assert!(late < 150, "{lines:?}");
}

#[test]
fn std_sockets_count_against_max_sockets_with_mtasks_own() {
    let flags = ["--max-sockets", "5", "--listen", "127.0.0.1:*"];
    let run = run_guest(APP, "many_main", &flags, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    // One of mtask's own and four std sockets make five; the sixth is
    // refused with an error, not a trap; closed ones are uncounted.
    assert!(
        lines[0].starts_with("opened 4 besides mtask's own: "),
        "{lines:?}"
    );
    assert_eq!(lines[1], "after closing them: 3 of 3 open");
}

#[test]
fn host_names_are_looked_up_only_with_name_lookup() {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let name = name.trim();
    let Ok(found) = (name, 80).to_socket_addrs() else {
        eprintln!("skipped: this machine cannot look its own name `{name}` up");
        return;
    };
    let mut native: Vec<_> = found.map(|a| a.to_string()).collect();
    native.sort();
    let run = run_guest(APP, "lookup_main", &[], &[name]);
    assert_ne!(run.code, 0);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("lookup_main"), "{}", run.stderr);

    let run = run_guest(APP, "lookup_main", &["--name-lookup"], &[name]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let line = run.lines()[0];
    for addr in &native {
        assert!(line.contains(addr.as_str()), "{addr} not in {line}");
    }
}
