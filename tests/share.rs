//! A tenant's `share`: CPU-bound tenants on one scheduler thread get CPU
//! in proportion to their shares. Told from the host's own JSON log: when
//! each tenant's spinner used up its CPU budget.

mod support;

use serde_json::Value;
use support::{guest, host, output_within_deadline, tenants_file};

/// Seconds of the day of a log timestamp (`2026-12-08T00:45:09.322414Z`).
fn seconds(timestamp: &str) -> f64 {
    let time = timestamp.split_once('T').unwrap().1.trim_end_matches('Z');
    let parts: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// Serves a spinner of budget 400 ms with `heavy_share` and one of budget
/// 100 ms with share 1, on one thread; how long after the light one the
/// heavy one ended, in seconds. The heavy one starts first, alone while
/// the light one loads: with shares 4 to 1 that head start of h makes it
/// end h/4 early, where the other way round it would make it end 4h late.
fn heavy_ends_after_light(heavy_share: u32) -> f64 {
    let hostile = guest("hostile");
    let file = tenants_file(
        &format!("share-{heavy_share}"),
        &format!(
            r#"
[[tenant]]
name = "heavy"
app = "{app}"
entry = "spin"
cpu_budget = "400ms"
share = {heavy_share}

[[tenant]]
name = "light"
app = "{app}"
entry = "spin"
cpu_budget = "100ms"
"#,
            app = hostile.display()
        ),
    );
    let mut cmd = host();
    cmd.args(["serve", "--threads", "1", "--log-format", "json"])
        .arg(&file)
        .env("RUST_LOG", "mtask=debug");
    let out = output_within_deadline(&mut cmd);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let end = |tenant: &str| {
        stderr
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|e| {
                e["outcome"] == "limit"
                    && e["message"].as_str().unwrap().contains("ended")
                    && e["spans"][0]["tenant"] == tenant
            })
            .map(|e| seconds(e["timestamp"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("no end of {tenant}'s spinner in\n{stderr}"))
    };
    let gap = end("heavy") - end("light");
    // Across midnight.
    if gap < -43_200.0 { gap + 86_400.0 } else { gap }
}

#[test]
fn cpu_is_shared_in_proportion_to_the_tenants_shares() {
    // Equal shares: the light spinner's 100 ms are done at 200 ms, and the
    // heavy one runs alone for 300 ms more.
    let equal = heavy_ends_after_light(1);
    assert!(
        equal > 0.2,
        "equal shares: heavy ended {equal:.3} s after light"
    );
    // Four to one: the heavy spinner's 400 ms and the light one's 100 ms
    // are used up together.
    let weighted = heavy_ends_after_light(4);
    eprintln!(
        "heavy ended after light: {equal:.3} s with equal shares, {weighted:.3} s with 4 to 1"
    );
    assert!(
        weighted.abs() < 0.1,
        "shares 4 and 1: heavy ended {weighted:.3} s after light (equal shares: {equal:.3} s)"
    );
}
