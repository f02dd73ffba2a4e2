//! Cluster mode (docs/design.md §10): several real `mtask-host` processes
//! joined through a real nats-server with JetStream (started per test on a
//! free loopback port), sharing named queues and running each other's
//! remote spawns; a host killed with SIGKILL loses no item and no spawn;
//! joining over TLS and with a password.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use support::nats::NatsServer;
use support::{Run, guest, host, output_within_deadline, watchdog};

/// A `mtask-host` running in the background, its output collected.
struct Host {
    child: Child,
    /// Its stdout so far, and the thread that reads it.
    stdout: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

impl Host {
    /// Starts `mtask-host run` of the `clustered` guest with `flags`,
    /// the entry `entry` (none: a `--worker`) and the guest's `args`.
    fn start(flags: &[&str], args: &[&str]) -> Self {
        Self::of(cluster_cmd(flags, args))
    }

    /// Starts `cmd` (a `mtask-host` command).
    fn of(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mtask-host");
        watchdog(child.id());
        let stdout = Arc::new(Mutex::new(String::new()));
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let sink = stdout.clone();
        let reader = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut out = sink.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Host {
            child,
            stdout,
            reader: Some(reader),
            stderr: Some(stderr),
        }
    }

    /// Waits until a line of its stdout is `line` (at most a minute).
    fn wait_for_line(&self, line: &str) {
        self.wait_for(line, |out| out.lines().any(|l| l == line));
    }

    /// Waits until its stdout so far passes `test` (at most a minute).
    fn wait_for(&self, what: &str, test: impl Fn(&str) -> bool) {
        let began = std::time::Instant::now();
        while !test(&self.stdout.lock().unwrap()) {
            let out = self.stdout.lock().unwrap().clone();
            let late = began.elapsed() > Duration::from_secs(60);
            assert!(!late, "no {what} in: {out}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for it to end (the watchdog kills it if it hangs).
    fn finish(mut self) -> Run {
        let status = self.child.wait().expect("wait for mtask-host");
        self.reader.take().unwrap().join().unwrap();
        Run::new(
            status.code().unwrap_or(-1),
            std::mem::take(&mut *self.stdout.lock().unwrap()),
            &self.stderr.take().unwrap().join().unwrap(),
        )
    }

    /// Sends `signal` (`-9`, `-TERM`) and waits for the end.
    fn signal(self, signal: &str) -> Run {
        let pid = self.child.id().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
        self.finish()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mtask-host run FLAGS clustered.wasm -- ARGS`.
fn cluster_cmd(flags: &[&str], args: &[&str]) -> Command {
    let mut cmd = host();
    cmd.arg("run")
        .args(flags)
        .arg(guest("clustered"))
        .arg("--")
        .args(args);
    cmd
}

/// Runs the `clustered` guest's `entry` to its end in a host of `cluster`.
fn run(nats: &NatsServer, entry: &str, flags: &[&str], args: &[&str]) -> Run {
    let url = nats.url();
    let mut all = vec!["--cluster", &url, "--entry", entry];
    all.extend(flags);
    output_within_deadline(&mut cluster_cmd(&all, args)).into()
}

/// Starts the `clustered` guest's `entry` in the background (none: a worker).
fn start(nats: &NatsServer, entry: Option<&str>, flags: &[&str], args: &[&str]) -> Host {
    let url = nats.url();
    let mut all = vec!["--cluster", url.as_str()];
    match entry {
        Some(entry) => all.extend(["--entry", entry]),
        None => all.push("--worker"),
    }
    all.extend(flags);
    Host::start(&all, args)
}

/// The numbers of a host's `got N` lines, in order.
fn got(run: &Run) -> Vec<u64> {
    run.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("got "))
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn a_producer_and_two_consumers_on_three_hosts_share_a_queue_with_nothing_lost_or_doubled() {
    let nats = NatsServer::start();
    let b = start(&nats, Some("consume"), &[], &["work", "0"]);
    let c = start(&nats, Some("consume"), &[], &["work", "0"]);
    // A bounded queue: the producer waits on a full queue many times.
    let a = run(&nats, "produce", &[], &["work", "3000", "20"]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    assert_eq!(a.stdout.trim(), "produced 3000");
    let (b, c) = (b.finish(), c.finish());
    assert_eq!((b.code, c.code), (0, 0), "{}\n{}", b.stderr, c.stderr);
    let (from_b, from_c) = (got(&b), got(&c));
    // Each consumer sees its items in queue order (FIFO per queue).
    assert!(from_b.is_sorted() && from_c.is_sorted(), "out of order");
    let mut all: Vec<u64> = from_b.iter().chain(&from_c).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..3000).collect::<Vec<_>>(), "lost or doubled items");
    assert!(
        !from_b.is_empty() && !from_c.is_empty(),
        "one consumer got nothing: {} and {}",
        from_b.len(),
        from_c.len()
    );
}

#[test]
fn queue_calls_keep_their_meaning_on_a_cluster_queue() {
    let nats = NatsServer::start();
    let r = run(&nats, "edges", &[], &["edges"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = r.lines();
    let after = |prefix: &str| {
        let line = lines.iter().find(|l| l.starts_with(prefix)).unwrap();
        support::number_after(line, "after ")
    };
    // A timeout returns at its deadline, with nothing taken or added.
    assert!(
        lines[0]
            .starts_with("empty get: Err(Timeout { call: \"Queue::get_timeout\", after: 300ms })"),
        "{}",
        r.stdout
    );
    assert!((290..1500).contains(&after("empty get")), "{}", r.stdout);
    assert_eq!(lines[1], "len 2 full true");
    assert!(
        lines[2]
            .starts_with("full put: Err(Timeout { call: \"Queue::put_timeout\", after: 300ms })"),
        "{}",
        r.stdout
    );
    assert!((290..1500).contains(&after("full put")), "{}", r.stdout);
    assert_eq!(&lines[3..5], ["first a", "second b"]);
    assert_eq!(
        lines[5],
        "tagged: a selective get (get-tagged) is not available on a cluster queue"
    );
    assert_eq!(
        &lines[6..],
        [
            "put after close: Err(Closed)",
            "left c",
            "get after drain: Err(Closed)"
        ]
    );
}

#[test]
fn tenants_of_one_cluster_see_none_of_each_others_queues() {
    let nats = NatsServer::start();
    let planted = run(&nats, "plant", &["--tenant", "a"], &["secret", "for a"]);
    assert_eq!(planted.code, 0, "{}", planted.stderr);
    let other = run(&nats, "peek", &["--tenant", "b"], &["secret"]);
    assert_eq!(other.stdout.trim(), "found None", "{}", other.stderr);
    let same = run(&nats, "peek", &["--tenant", "a"], &["secret"]);
    assert_eq!(
        same.stdout.trim(),
        "found Some(\"for a\")",
        "{}",
        same.stderr
    );
}

#[test]
fn a_remote_childs_value_error_trap_and_cancel_reach_its_parent() {
    let nats = NatsServer::start();
    let worker = start(&nats, None, &["--env", "HOST=B"], &[]);
    // The parent's host runs no remote spawn: every child runs on B.
    let r = run(
        &nats,
        "outcomes",
        &["--cluster-jobs", "0", "--env", "HOST=A"],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = [
        "value: Ok(144)",
        "error: Err(Task { entry: \"fails\", error: Failed(\"no, said B\") })",
        "trap: true",
        "timeout: Err(Timeout { call: \"Task::join_timeout\", after: 100ms })",
        "cancelled: Err(Task { entry: \"nap\", error: Cancelled })",
        "key: true",
        "my key: None",
        "local queue: Err(Invalid(\"a queue made with `create` lives on one host: open a \
         queue by name to hand it to a task placed anywhere\"))",
        "handed: Ok(77)",
    ];
    assert_eq!(r.lines(), expected);
    // SIGTERM stops a worker cleanly.
    let w = worker.signal("-TERM");
    assert_eq!(w.code, 0, "{}", w.stderr);
}

#[test]
fn outside_a_cluster_a_child_placed_anywhere_runs_here() {
    let mut cmd = cluster_cmd(&["--entry", "outcomes", "--env", "HOST=A"], &[]);
    let r: Run = output_within_deadline(&mut cmd).into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = r.lines();
    assert_eq!(lines[0], "value: Ok(144)");
    assert!(lines[1].contains("no, said A"), "{}", r.stdout);
    assert_eq!(lines[5], "key: false");
    assert_eq!(lines[7], "local queue: Ok(())");
}

#[test]
fn remote_spawns_spread_cpu_work_over_the_hosts() {
    let nats = NatsServer::start();
    let worker = start(&nats, None, &["--threads", "1", "--env", "HOST=B"], &[]);
    let r = run(
        &nats,
        "spread",
        &["--threads", "1", "--env", "HOST=A"],
        &["8", "200"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let hosts: BTreeSet<&str> = r
        .lines()
        .iter()
        .filter_map(|l| l.split(" ran in ").nth(1))
        .collect();
    assert_eq!(hosts, BTreeSet::from(["A", "B"]), "{}", r.stdout);
    assert!(r.stdout.contains("sum 28 in"), "{}", r.stdout);
    drop(worker);
}

#[test]
fn a_host_killed_mid_work_loses_no_queued_item() {
    let nats = NatsServer::start();
    let lease = ["--cluster-lease", "1s"];
    let produced = run(&nats, "produce", &lease, &["slow", "40", "0"]);
    assert_eq!(produced.code, 0, "{}", produced.stderr);
    // Each consumer works 100 ms on each item it takes.
    let b = start(&nats, Some("consume"), &lease, &["slow", "100"]);
    let c = start(&nats, Some("consume"), &lease, &["slow", "100"]);
    // Killed while it works on an item (its third: it acked two).
    b.wait_for("3 items", |out| out.matches("got ").count() >= 3);
    let b = b.signal("-9");
    let c = c.finish();
    assert_eq!(c.code, 0, "{}", c.stderr);
    let (from_b, from_c) = (got(&b), got(&c));
    assert!(!from_b.is_empty(), "B took nothing before it was killed");
    let all: BTreeSet<u64> = from_b.iter().chain(&from_c).copied().collect();
    assert_eq!(all, (0..40).collect(), "items lost with the killed host");
    // What B held when it died came again to C; nothing else twice.
    let twice: Vec<u64> = from_c
        .iter()
        .filter(|i| from_b.contains(i))
        .copied()
        .collect();
    assert!(twice.len() <= 1, "delivered twice: {twice:?}");
    assert!(
        from_c.windows(2).all(|w| w[0] != w[1]),
        "C got an item twice"
    );
}

#[test]
fn a_host_killed_mid_work_loses_no_accepted_spawn() {
    let nats = NatsServer::start();
    let lease = ["--cluster-lease", "1s", "--cluster-jobs", "3"];
    let b = start(
        &nats,
        None,
        &[&lease[..], &["--env", "HOST=B"]].concat(),
        &[],
    );
    let c = start(
        &nats,
        None,
        &[&lease[..], &["--env", "HOST=C"]].concat(),
        &[],
    );
    // 18 children of 300 ms each, on B and C (the parent's host runs none).
    let url = nats.url();
    let parent = Host::start(
        &[
            "--cluster",
            &url,
            "--entry",
            "jobs",
            "--cluster-jobs",
            "0",
            "--cluster-lease",
            "1s",
        ],
        &["18", "300"],
    );
    // Killed with children under way: it finished one, and holds others.
    b.wait_for("a job done", |out| out.contains("job "));
    let b = b.signal("-9");
    let parent = parent.finish();
    assert_eq!(parent.code, 0, "{}", parent.stderr);
    assert_eq!(parent.stdout.trim(), "jobs done");
    // Every child put its number on `done`, some of them twice (those B
    // ran again elsewhere), each time with its own spawn key.
    let tally = run(&nats, "tally", &[], &["18"]);
    assert_eq!(tally.code, 0, "{}", tally.stderr);
    let numbers: Vec<String> = (0..18).map(|i| i.to_string()).collect();
    assert_eq!(tally.stdout.trim(), format!("tally {}", numbers.join(",")));
    let c = c.signal("-TERM");
    let ran = |run: &Run| -> BTreeMap<u64, usize> {
        let mut counts = BTreeMap::new();
        for line in run.lines() {
            if let Some(rest) = line.strip_prefix("job ") {
                let i: u64 = rest.split(' ').next().unwrap().parse().unwrap();
                *counts.entry(i).or_default() += 1;
            }
        }
        counts
    };
    let (on_b, on_c) = (ran(&b), ran(&c));
    assert!(!on_c.is_empty(), "C ran nothing: {}", c.stderr);
    assert!(
        on_b.len() < 18,
        "B finished everything before it was killed"
    );
    let finished: BTreeSet<u64> = on_b.keys().chain(on_c.keys()).copied().collect();
    assert_eq!(finished, (0..18).collect(), "B: {on_b:?}, C: {on_c:?}");
}

#[test]
fn a_served_tenant_shares_its_queues_with_the_runs_of_its_name() {
    let nats = NatsServer::start();
    let dir = std::env::temp_dir().join(format!("mtask-cluster-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tenants.toml");
    let tenants = format!(
        "[cluster]\nurl = \"{}\"\n\n[[tenant]]\nname = \"shop\"\napp = {:?}\n\
         entry = \"consume\"\nargs = [\"orders\", \"0\"]\n",
        nats.url(),
        guest("clustered")
    );
    std::fs::write(&file, tenants).unwrap();
    let mut serve = host();
    serve.arg("serve").arg(&file);
    let served = Host::of(serve);
    // Another tenant's queue of the same name is another queue.
    let other = run(
        &nats,
        "produce",
        &["--tenant", "other"],
        &["orders", "5", "0"],
    );
    assert_eq!(other.code, 0, "{}", other.stderr);
    let produced = run(
        &nats,
        "produce",
        &["--tenant", "shop"],
        &["orders", "50", "0"],
    );
    assert_eq!(produced.code, 0, "{}", produced.stderr);
    // The tenant's main ends with the queue; serve runs on until stopped.
    served.wait_for_line("[shop] consumed 50");
    std::thread::sleep(Duration::from_millis(200));
    let served = served.signal("-TERM");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(served.code, 0, "{}", served.stderr);
    let lines = support::by_label(&served.stdout);
    assert_eq!(
        lines["shop"]
            .iter()
            .filter_map(|l| l.strip_prefix("got "))
            .map(|n| n.parse().unwrap())
            .collect::<Vec<u64>>(),
        (0..50).collect::<Vec<_>>(),
        "{}",
        served.stderr
    );
    assert!(
        served.stdout.ends_with("consumed 50\n"),
        "{}",
        served.stdout
    );
}

#[test]
fn a_cluster_that_cannot_be_reached_is_one_clear_line() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut cmd = cluster_cmd(&["--cluster", &url, "--entry", "peek"], &[]);
    let r: Run = output_within_deadline(&mut cmd).into();
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with(&format!("mtask-host: cannot join the cluster at {url}: ")),
        "{}",
        r.stderr
    );
}

#[test]
fn credentials_in_the_url_are_used_and_never_shown() {
    let nats = NatsServer::start_with(&["--user", "mtask", "--pass", "s3cret"]);
    let port = nats.port();
    let wrong = format!("nats://mtask:wrong@127.0.0.1:{port}");
    let mut cmd = cluster_cmd(&["--cluster", &wrong, "--entry", "peek"], &[]);
    let refused: Run = output_within_deadline(&mut cmd).into();
    assert_eq!(refused.code, 2);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    let shown = format!("mtask-host: cannot join the cluster at nats://***@127.0.0.1:{port}: ");
    assert!(refused.stderr.starts_with(&shown), "{}", refused.stderr);
    assert!(!refused.stderr.contains("wrong"), "{}", refused.stderr);
    let right = format!("nats://mtask:s3cret@127.0.0.1:{port}");
    let mut cmd = cluster_cmd(&["--cluster", &right, "--entry", "peek"], &[]);
    let joined: Run = output_within_deadline(&mut cmd).into();
    assert_eq!(joined.code, 0, "{}", joined.stderr);
    assert_eq!(joined.stdout.trim(), "found None");
}

#[test]
fn a_host_keeps_the_items_it_holds_by_the_streams_lease_not_its_own() {
    let nats = NatsServer::start();
    // The stream is made with a lease of 1 s ...
    let made = run(
        &nats,
        "produce",
        &["--cluster-lease", "1s"],
        &["lease", "2", "0"],
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    // ... and taken by hosts that would give 30 s: A holds each item 2.5 s.
    let a = start(&nats, Some("consume"), &[], &["lease", "2500"]);
    a.wait_for_line("got 0");
    let b = run(&nats, "consume", &[], &["lease", "0"]);
    let a = a.finish();
    assert_eq!((a.code, b.code), (0, 0), "{}\n{}", a.stderr, b.stderr);
    let mut all = [got(&a), got(&b)].concat();
    all.sort_unstable();
    assert_eq!(all, [0, 1], "A: {}B: {}", a.stdout, b.stdout);
}

#[test]
fn a_host_at_its_task_limit_still_runs_its_own_remote_children() {
    let nats = NatsServer::start();
    // The main task and the two handles fill the app's three places.
    let flags = ["--max-tasks", "3", "--env", "HOST=A"];
    let r = run(&nats, "spread", &flags, &["2", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("sum 1 in"), "{}", r.stdout);
}

#[test]
fn a_closed_queue_waits_for_what_a_dying_host_held() {
    let nats = NatsServer::start();
    let lease = ["--cluster-lease", "1s"];
    let made = run(&nats, "produce", &lease, &["held", "2", "0"]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    // A takes an item and keeps it (it works on it for a minute).
    let a = start(&nats, Some("consume"), &lease, &["held", "60000"]);
    a.wait_for("an item", |out| out.contains("got "));
    // B drains the rest of the closed queue, but A still holds one ...
    let b = start(&nats, Some("consume"), &lease, &["held", "0"]);
    std::thread::sleep(Duration::from_millis(500));
    // ... which comes to B when A dies: B then sees the queue closed.
    let a = a.signal("-9");
    let b = b.finish();
    assert_eq!(b.code, 0, "{}", b.stderr);
    let mut all = [got(&a), got(&b)].concat();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, [0, 1], "A: {}B: {}", a.stdout, b.stdout);
    assert_eq!(got(&b).len(), 2, "B: {}", b.stdout);
    assert!(b.stdout.ends_with("consumed 2\n"), "{}", b.stdout);
}

/// Makes a CA and a server certificate for 127.0.0.1 in `dir` with
/// openssl; returns (ca.pem, server.pem, server.key).
fn certificates(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (Debian's openssl package)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = ["-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"];
    openssl(
        &[
            &["req", "-x509"],
            &key[..],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &key[..],
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
    ["ca.pem", "server.pem", "server.key"].map(|f| dir.join(f))
}

#[test]
fn a_cluster_over_tls_is_joined_with_its_root_certificate() {
    let dir = std::env::temp_dir().join(format!("mtask-cluster-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let [ca, cert, key] = certificates(&dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let nats = NatsServer::start_with(&["--tls", "--tlscert", cert, "--tlskey", key]);
    let url = format!("tls://127.0.0.1:{}", nats.port());
    let ca = ca.to_str().unwrap();
    let mut cmd = cluster_cmd(
        &["--cluster", &url, "--cluster-ca", ca, "--entry", "peek"],
        &[],
    );
    let joined: Run = output_within_deadline(&mut cmd).into();
    // Without the root certificate, the server's is not trusted.
    let mut cmd = cluster_cmd(&["--cluster", &url, "--entry", "peek"], &[]);
    let refused: Run = output_within_deadline(&mut cmd).into();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(joined.code, 0, "{}", joined.stderr);
    assert_eq!(joined.stdout.trim(), "found None");
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .starts_with(&format!("mtask-host: cannot join the cluster at {url}: ")),
        "{}",
        refused.stderr
    );
}
