//! Queues (docs/design.md §4 rows 9–10, issue 4): order, timeouts, close,
//! selective get, handoff, named queues, the byte limit.

mod support;

use mtask_host::{Config, TaskManager};
use support::{guest, number_after, run_entry, run_guest, run_in_order};

#[test]
fn a_put_that_wakes_a_getter_runs_first_as_in_multitask() {
    // Row 10: Queue([1,2,3], maxsize=3); other, getter (3 gets), putter (4,5,6).
    let run = run_in_order("queueing", "order_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["other", "1", "4", "2", "5", "3", "6"]);
}

#[test]
fn waiting_getters_are_served_in_arrival_order() {
    let run = run_in_order("queueing", "fifo_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "put 10",
            "getter 1 got 10",
            "put 20",
            "getter 2 got 20",
            "put 30",
            "getter 3 got 30"
        ]
    );
}

#[test]
fn a_put_on_a_full_queue_waits_for_room() {
    let run = run_entry("queueing", "full_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "len while putter waits: 1, full: true",
            "got 1",
            "2",
            "got 2"
        ]
    );
}

#[test]
fn timed_out_gets_and_puts_have_no_effect() {
    let run = run_entry("queueing", "timeout_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines = run.lines();
    assert!(
        lines[0]
            .starts_with("get: Err(Timeout { call: \"Queue::get_timeout\", after: 15ms }) after"),
        "{}",
        lines[0]
    );
    assert!(
        (15..150).contains(&number_after(lines[0], "}) after")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1]
            .starts_with("put: Err(Timeout { call: \"Queue::put_timeout\", after: 15ms }) after"),
        "{}",
        lines[1]
    );
    assert!(
        (15..150).contains(&number_after(lines[1], "}) after")),
        "{}",
        lines[1]
    );
    assert_eq!(
        &lines[2..],
        [
            "len 1",
            "get: Ok(1)",
            "try_get: Ok(None)",
            "try_put: Ok(true) Ok(false) len 1",
            "timed getter: Err(Timeout { call: \"Queue::get_timeout\", after: 5ms })",
            "after the timed-out getter: Ok(Some(7))",
        ]
    );
}

#[test]
fn close_wakes_waiters_and_leaves_items_to_drain() {
    let run = run_entry("queueing", "close_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            r#"getter: Err("task `named_getter` failed: closed")"#,
            r#"putter: Err("task `putter` failed: closed")"#,
            "put after close: Err(Closed)",
            "drain: Ok(1)",
            "then: Err(Closed)",
        ]
    );
}

#[test]
fn a_selective_get_takes_the_first_wanted_tag_and_keeps_the_rest_in_order() {
    let run = run_entry("queueing", "tagged_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            r#"tag 3: (3, "d")"#,
            r#"tag 2 or 9: (2, "b")"#,
            r#"rest: "a" "c""#,
            "tag 5: Err(Timeout { call: \"Queue::get_tagged_timeout\", after: 5ms })",
            "waiter got seven",
            r#"left: Some("six")"#,
        ]
    );
}

#[test]
fn tasks_of_one_app_share_named_queues() {
    let run = run_entry("queueing", "named_main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.lines(), ["child saw 42"]);
}

#[test]
fn named_queues_are_not_shared_between_apps() {
    let cache_dir = Some(support::target_dir().join("mtask-test-cache"));
    let mut m = TaskManager::new(Config {
        max_tasks: 16,
        cache_dir,
        ..Config::default()
    })
    .unwrap();
    let app_a = m.load(guest("queueing")).unwrap();
    let app_b = m.load(guest("queueing")).unwrap();
    // ("box", 5) and "box" as the guest SDK encodes them (postcard).
    let put_arg = [&[3u8][..], b"box", &[5]].concat();
    let name_arg = [&[3u8][..], b"box"].concat();
    m.add(&app_a, "put_named", put_arg).unwrap();
    m.run().unwrap();
    let seen_by_b = m.add(&app_b, "peek_named", name_arg.clone()).unwrap();
    let seen_by_a = m.add(&app_a, "peek_named", name_arg).unwrap();
    m.run().unwrap();
    assert_eq!(
        m.take_outcome(seen_by_b),
        Some(Ok(vec![0])),
        "app b sees an empty queue (None)"
    );
    assert_eq!(
        m.take_outcome(seen_by_a),
        Some(Ok(vec![1, 5])),
        "app a finds its item (Some(5))"
    );
}

#[test]
fn the_bytes_an_app_holds_in_queues_are_capped() {
    let run = run_guest(
        "queueing",
        "bytes_main",
        &["--max-queue-bytes", "64KiB"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        [
            "first: Ok(())",
            // Each item costs 64 bytes beside its data; the queue 320.
            "second: limit: the app's queues may hold at most 65536 bytes (41347 held, 41027 more asked)",
            "after a get: Ok(())",
        ]
    );
}

#[test]
fn tasks_waiting_on_each_other_forever_are_reported() {
    let run = run_entry("queueing", "deadlock_main");
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim(),
        "mtask-host: host error: deadlock: 2 tasks wait on each other"
    );
}

#[test]
fn a_main_task_that_failed_before_a_deadlock_is_reported_first() {
    let run = run_entry("queueing", "orphan_main");
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr.trim().lines().collect::<Vec<_>>(),
        [
            "mtask-host: main task (`orphan_main`) failed: invalid: main gave up",
            "mtask-host: host error: deadlock: 1 tasks wait on each other",
        ]
    );
}

#[test]
fn pingpong_example_alternates() {
    let run = run_entry("pingpong", "main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.lines(),
        ["ping 1", "pong 1", "ping 2", "pong 2", "ping 3", "pong 3"]
    );
}

#[test]
fn pipeline_example_prints_results_in_input_order() {
    let run = run_entry("pipeline", "main");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let squares: Vec<String> = [7u64, 3, 9, 1, 4, 8, 2, 6]
        .iter()
        .enumerate()
        .map(|(i, n)| format!("result {i}: {}", n * n))
        .chain(["8 jobs done by 3 workers".to_string()])
        .collect();
    assert_eq!(run.lines(), squares);
}
