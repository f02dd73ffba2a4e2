//! `--log-format json` and `RUST_LOG`: the host's events and the tenants'
//! output lines as JSON objects, read back with serde_json, checked
//! against what the same tenants print in text mode and against each
//! other (every task a line names was started and ended in the log).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;
use support::{by_label, guest, host, output_within_deadline, tenants_file};

/// Tenants that print, restart, go over their limits and are denied.
fn tenants() -> std::path::PathBuf {
    tenants_file(
        "logs",
        &format!(
            r#"
[[tenant]]
name = "printer"
app = "{printer}"
restart = "always"
max_restarts = 1
restart_delay = "10ms"

[[tenant]]
name = "spinner"
app = "{hostile}"
entry = "spin"
cpu_budget = "50ms"

[[tenant]]
name = "sockets"
app = "{hostile}"
entry = "socket_bomb_main"
listen = ["127.0.0.1:*"]
max_sockets = 3

[[tenant]]
name = "queue"
app = "{hostile}"
entry = "huge_item_main"
max_queue_bytes = "1MiB"

[[tenant]]
name = "net"
app = "{netting}"
entry = "denied_main"
args = ["127.0.0.1:9001", "10.0.0.1:80"]
listen = ["127.0.0.1:9000"]
"#,
            printer = guest("printer").display(),
            hostile = guest("hostile").display(),
            netting = guest("netting").display(),
        ),
    )
}

/// `serve` of `file` with `args` before it and `RUST_LOG` as given: its
/// exit status, stdout and stderr.
fn serve(file: &Path, args: &[&str], rust_log: Option<&str>) -> (i32, String, String) {
    let mut cmd = host();
    // One thread: the printers' steps interleave the same in every run.
    cmd.args(["serve", "--threads", "1"]).args(args).arg(file);
    match rust_log {
        Some(filter) => cmd.env("RUST_LOG", filter),
        None => cmd.env_remove("RUST_LOG"),
    };
    let out = output_within_deadline(&mut cmd);
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Each line of `text` as a JSON object, checked to have what every event
/// has: a UTC timestamp, a level, a target and a message.
fn events(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nin\n{text}"));
            let timestamp = event["timestamp"].as_str().unwrap_or("");
            assert!(timestamp.ends_with('Z') && timestamp.len() > 20, "{line}");
            for key in ["level", "target", "message"] {
                assert!(event[key].is_string(), "no {key}: {line}");
            }
            event
        })
        .collect()
}

/// The tenant and the task (id, entry) an event's spans name.
fn place(event: &Value) -> (String, Option<(u64, String)>) {
    let spans = event["spans"].as_array().expect("a span list");
    assert_eq!(spans[0]["name"], "tenant", "{event}");
    let tenant = spans[0]["tenant"].as_str().unwrap().to_string();
    let task = spans.get(1).map(|task| {
        assert_eq!(task["name"], "task", "{event}");
        let entry = task["entry"].as_str().unwrap().to_string();
        (task["task"].as_u64().unwrap(), entry)
    });
    (tenant, task)
}

fn message(event: &Value) -> &str {
    event["message"].as_str().unwrap()
}

#[test]
fn json_logs_carry_each_tenant_s_lines_and_events_in_their_spans() {
    let file = tenants();
    let (code, text_out, _) = serve(&file, &[], None);
    assert_eq!(code, 0);
    let (code, stdout, stderr) = serve(&file, &["--log-format", "json"], Some("mtask=debug"));
    assert_eq!(code, 0, "{stderr}");

    // The tenants' lines: the ones text mode prints, tenant by tenant in
    // the same order, each in its tenant's span and its task's.
    let lines = events(&stdout);
    let mut by_tenant: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut writers = Vec::new();
    for line in &lines {
        assert_eq!(line["target"], "mtask::stdout", "{line}");
        assert_eq!(line["stream"], "stdout");
        assert_eq!(line["level"], "INFO");
        let (tenant, task) = place(line);
        writers.push((tenant.clone(), task.expect("a line's task")));
        by_tenant
            .entry(tenant)
            .or_default()
            .push(message(line).to_string());
    }
    let texts: BTreeMap<String, Vec<String>> = by_label(&text_out)
        .into_iter()
        .map(|(t, l)| (t.to_string(), l.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(by_tenant, texts);
    assert!(by_tenant["printer"].len() >= 4, "{by_tenant:?}");

    // The host's events: each task that wrote a line started and ended,
    // in its own span; no task ended twice or without a start.
    let host = events(&stderr);
    let mut started = HashMap::new();
    let mut ended = HashMap::new();
    for event in &host {
        let text = message(event);
        if text.ends_with(") started") || text.contains(") ended: ") {
            let (tenant, task) = place(event);
            let (id, entry) = task.expect("a task's own span");
            assert_eq!(event["task"].as_u64(), Some(id), "{event}");
            assert!(
                text.starts_with(&format!("task {id} (`{entry}`)")),
                "{event}"
            );
            let seen = if text.ends_with("started") {
                &mut started
            } else {
                assert!(event["outcome"].is_string(), "{event}");
                &mut ended
            };
            assert!(seen.insert(id, (tenant, entry)).is_none(), "twice: {event}");
        }
    }
    assert_eq!(started, ended);
    for (tenant, (id, entry)) in &writers {
        assert_eq!(started.get(id), Some(&(tenant.clone(), entry.clone())));
    }

    let find = |what: &str| -> &Value {
        host.iter()
            .find(|e| message(e).contains(what))
            .unwrap_or_else(|| panic!("no event saying {what:?} in\n{stderr}"))
    };
    // The restart, and the supervisor giving up, in the tenant's span.
    let restart = find("starting it again");
    assert_eq!(restart["level"], "WARN");
    assert_eq!(place(restart).0, "printer");
    let gave_up = find("given up");
    assert_eq!(gave_up["level"], "ERROR");
    assert_eq!(gave_up["restarts"], 1);
    // The limit, named by tenant and outcome.
    let limit = find("CPU budget");
    assert_eq!(limit["tenant"], "spinner");
    assert_eq!(limit["outcome"], "limit");
    assert_eq!(ended.values().filter(|(t, _)| t == "spinner").count(), 1);
    // Each limit reached, a debug event in the task that reached it.
    let limits: Vec<(String, &str)> = host
        .iter()
        .filter(|e| e["target"] == "mtask::limit")
        .map(|e| (place(e).0, message(e)))
        .collect();
    assert_eq!(limits.len(), 2, "{limits:?}");
    assert!(limits.contains(&(
        "sockets".into(),
        "limit reached: the app may have at most 3 sockets open"
    )));
    assert!(limits.iter().any(|(tenant, text)| tenant == "queue"
        && text.starts_with("limit reached: the app's queues may hold at most 1048576 bytes")));
    // Each refused address, a debug event in the task that asked.
    let denied: Vec<&Value> = host
        .iter()
        .filter(|e| e["target"] == "mtask::denied")
        .collect();
    let addrs: Vec<&str> = denied.iter().map(|e| e["addr"].as_str().unwrap()).collect();
    assert_eq!(addrs, ["127.0.0.1:9001", "10.0.0.1:80", "127.0.0.1:9001"]);
    for event in denied {
        assert_eq!(event["level"], "DEBUG");
        assert_eq!(place(event).0, "net");
    }
}

#[test]
fn rust_log_filters_the_host_s_events_but_never_a_tenant_s_lines() {
    let file = tenants();
    let (code, all_out, all_err) = serve(&file, &["--log-format", "json"], None);
    assert_eq!(code, 0, "{all_err}");
    // The default, info: no debug events.
    assert!(events(&all_err).iter().all(|e| e["level"] != "DEBUG"));

    let (code, stdout, stderr) = serve(&file, &["--log-format", "json"], Some("error"));
    assert_eq!(code, 0, "{stderr}");
    let levels: Vec<Value> = events(&stderr).iter().map(|e| e["level"].clone()).collect();
    assert!(
        !levels.is_empty() && levels.iter().all(|l| l == "ERROR"),
        "{stderr}"
    );
    // The restart's warning is gone; the give-up is not.
    assert!(!stderr.contains("starting it again") && stderr.contains("given up"));
    assert_eq!(events(&stdout).len(), events(&all_out).len());

    // Text mode: the same filter.
    let (_, _, text_err) = serve(&file, &[], Some("error"));
    assert!(text_err.lines().all(|l| l.starts_with("mtask-host: ")));
    assert!(!text_err.contains("starting it again") && text_err.contains("given up"));
}

#[test]
fn a_bad_rust_log_is_refused_in_one_line() {
    let file = tenants();
    let (code, stdout, stderr) = serve(&file, &[], Some("mtask=loud"));
    assert_eq!(code, 2);
    assert_eq!(stdout, "", "no tenant started");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("mtask-host: RUST_LOG `mtask=loud`: "),
        "{stderr}"
    );
    let (code, _, stderr) = serve(&file, &["--log-format", "yaml"], None);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid value 'yaml'"), "{stderr}");
}
