//! `serve --metrics`: the figures Prometheus scrapes, fetched over real
//! HTTP and read by the Prometheus project's own parser (its Python
//! client, installed by `just prom-parser`).

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{connect, guest, host, spawn_listening, tenants_file};

/// Sends `request` to `addr`; the status line and the body of the answer.
fn http(addr: SocketAddr, request: &str) -> (String, String) {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Each sample of an OpenMetrics text, as `name{label="value",...}` (labels
/// sorted) to its value, as Prometheus's parser reads it.
fn parse(text: &str) -> HashMap<String, f64> {
    let python = support::target_dir().join("promvenv/bin/python");
    assert!(
        python.exists(),
        "run `just prom-parser` (or `just test`) first"
    );
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    // The text goes in through a file: the child's wait has a deadline.
    let input = support::target_dir().join(format!("metrics-{}.txt", std::process::id()));
    std::fs::write(&input, text).unwrap();
    let stdin = std::fs::File::open(&input).unwrap();
    let mut cmd = Command::new(python);
    cmd.args(["-c", script]);
    let out = support::output_within_deadline_from(&mut cmd, Stdio::from(stdin));
    let _ = std::fs::remove_file(&input);
    assert!(
        out.status.success(),
        "the parser refused it: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (sample, value) = line.rsplit_once(' ').unwrap();
            (sample.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The samples at `addr`'s /metrics once `ready` holds of them (at most
/// ten seconds).
fn scrape_until(
    addr: SocketAddr,
    ready: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let started = Instant::now();
    loop {
        let (status, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let samples = parse(&body);
        if ready(&samples) {
            return samples;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{samples:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks the wake-latency histogram: a bucket per bound, each holding
/// those before it; every task started (`polls` of them at least) was
/// polled, each after its spawn; and the mean wait is short, as no task
/// here runs long without a wait.
fn check_wake_latencies(samples: &HashMap<String, f64>, polls: f64) {
    let name = "mtask_wake_latency_seconds";
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|(k, &v)| {
            let le = k.strip_prefix(&format!("{name}_bucket{{le=\""))?;
            Some((le.trim_end_matches("\"}").parse().ok()?, v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(buckets.len(), 13, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    let count = samples[&format!("{name}_count{{}}")];
    let sum = samples[&format!("{name}_sum{{}}")];
    assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, count));
    assert!(count >= polls, "{count} polls, {polls} tasks started");
    assert!(
        sum > 0.0 && sum / count < 0.05,
        "{sum} s over {count} polls"
    );
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn metrics_are_served_over_http_and_read_by_prometheus_s_parser() {
    let port = free_port();
    let file = tenants_file(
        "metrics",
        &format!(
            r#"
[host]
metrics = "127.0.0.1:{port}"

[[tenant]]
name = "echo"
app = "{echo}"
args = ["127.0.0.1:0"]
listen = ["127.0.0.1:*"]

[[tenant]]
name = "printer"
app = "{printer}"
restart = "always"
max_restarts = 1
restart_delay = "10ms"

[[tenant]]
name = "hostile"
app = "{hostile}"
entry = "spin"
cpu_budget = "50ms"

[[tenant]]
name = "queued"
app = "{hostile}"
entry = "empty_items_main"
max_queue_bytes = "64KiB"
"#,
            echo = guest("echo_server").display(),
            printer = guest("printer").display(),
            hostile = guest("hostile").display(),
        ),
    );
    let mut cmd = host();
    cmd.arg("serve").arg(&file).stderr(Stdio::null());
    let (mut child, _stdout, echo) = spawn_listening(&mut cmd);
    let metrics: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let key = |name: &str, labels: &str| format!("{name}{{{labels}}}");
    let printer_done = key(
        "mtask_tasks_ended_total",
        r#"outcome="succeeded",tenant="printer""#,
    );
    let samples = scrape_until(metrics, |s| {
        // Two runs of three tasks each: one restart.
        s.get(&printer_done) == Some(&6.0)
            && s.get(&key(
                "mtask_tasks_ended_total",
                r#"outcome="limit",tenant="hostile""#,
            )) == Some(&1.0)
            && s.get(&key("mtask_queue_bytes", r#"tenant="queued""#)) > Some(&60000.0)
    });
    let get = |labels: &str, name: &str| {
        let k = key(name, labels);
        *samples
            .get(&k)
            .unwrap_or_else(|| panic!("no {k} in {samples:#?}"))
    };
    assert_eq!(get(r#"tenant="printer""#, "mtask_tasks_started_total"), 6.0);
    assert_eq!(get(r#"tenant="printer""#, "mtask_restarts_total"), 1.0);
    assert_eq!(get(r#"tenant="echo""#, "mtask_restarts_total"), 0.0);
    // The spinner ran until its 50 ms budget was used up; the live echo
    // server's time so far counts too.
    let spun = get(r#"tenant="hostile""#, "mtask_cpu_seconds_total");
    assert!((0.05..1.0).contains(&spun), "{spun}");
    assert!(get(r#"tenant="echo""#, "mtask_cpu_seconds_total") > 0.0);
    assert_eq!(get(r#"tenant="printer""#, "mtask_queue_bytes"), 0.0);
    // Empty items up to the tenant's 64 KiB, which it then holds.
    assert!(get(r#"tenant="queued""#, "mtask_queue_bytes") <= 65536.0);
    let items = get(r#"tenant="queued""#, "mtask_queue_items");
    assert!((100.0..65536.0).contains(&items), "{items}");
    assert_eq!(get(r#"tenant="echo""#, "mtask_queue_items"), 0.0);
    assert!(get("", "mtask_scheduler_passes_total") > 0.0);
    assert_eq!(get("", "mtask_run_queue_tasks"), 0.0);
    assert_eq!(get(r#"tenant="printer""#, "mtask_tasks_live"), 0.0);
    assert!(get(r#"tenant="printer""#, "mtask_linear_memory_peak_bytes") > 0.0);
    assert_eq!(
        get(
            r#"outcome="failed",tenant="printer""#,
            "mtask_tasks_ended_total"
        ),
        0.0
    );
    // The echo server: its main task, listening on one socket.
    assert_eq!(get(r#"tenant="echo""#, "mtask_tasks_live"), 1.0);
    assert_eq!(get(r#"tenant="echo""#, "mtask_sockets_open"), 1.0);
    assert!(get(r#"tenant="echo""#, "mtask_linear_memory_bytes") > 0.0);
    // The echo server and the tenant holding its items.
    assert_eq!(get("", "mtask_host_tasks_live"), 2.0);
    // Each live task holds a slot of the pool, which has the four
    // tenants' 1000 each (and a few for listing entries).
    assert_eq!(get("", "mtask_pool_task_slots_used"), 2.0);
    assert!((4000.0..4100.0).contains(&get("", "mtask_pool_task_slots")));
    let memories = get("", "mtask_pool_memory_slots_used");
    assert!((2.0..20.0).contains(&memories), "{memories}");
    assert!(get("", "mtask_pool_memory_slots") >= 4000.0);
    check_wake_latencies(&samples, 9.0);

    // A connection: one more socket, and a task that serves it.
    let mut conn = connect(echo);
    conn.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    conn.read_exact(&mut back).unwrap();
    let samples = scrape_until(metrics, |s| {
        s.get(&key("mtask_sockets_open", r#"tenant="echo""#)) == Some(&2.0)
    });
    assert_eq!(samples[&key("mtask_tasks_live", r#"tenant="echo""#)], 2.0);
    assert_eq!(samples[&key("mtask_pool_task_slots_used", "")], 3.0);
    check_wake_latencies(&samples, 10.0);

    // Nothing but GET /metrics.
    let (status, _) = http(metrics, "GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(metrics, "POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");

    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_metrics_address_that_cannot_be_bound_is_refused_before_tenants_load() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let file = tenants_file(
        "metrics-taken",
        &format!(
            "[[tenant]]\nname = \"p\"\napp = \"{}\"\n",
            guest("printer").display()
        ),
    );
    let run = support::host_run([
        std::ffi::OsString::from("serve"),
        "--metrics".into(),
        addr.to_string().into(),
        file.into_os_string(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    run.assert_stderr_has("mtask-host: cannot serve metrics: Address already in use");
    assert_eq!(run.stdout, "", "no tenant started");
}
