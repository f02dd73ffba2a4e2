//! `serve --metrics ADDR`: the host's and each tenant's figures at
//! `GET /metrics`, in the OpenMetrics text format that Prometheus scrapes
//! (encoded by `prometheus-client`).
//!
//! The listener is the operator's, outside every tenant's network rules.
//! It answers one request at a time, each within [`PATIENCE`] (a client
//! that stalls longer is dropped), with `GET /metrics` only: any other
//! path is 404, any other method 405. The figures are read when scraped,
//! from the same counters as `--summary`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use super::tenant::Roster;
use crate::shard::lock;
use crate::{AppStats, BOUNDS_MICROS, Latencies, Program, StatsHandle};

/// How long a scraper may take to send its request and read the answer.
const PATIENCE: Duration = Duration::from_secs(2);

/// The most bytes of a request read (its head; a GET has no body).
const MAX_REQUEST: usize = 8 << 10;

/// What names one tenant's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabel {
    tenant: String,
}

/// One tenant's ended tasks of one outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndedLabel {
    tenant: String,
    outcome: String,
}

/// The series, and where their values come from.
struct Metrics {
    /// Encodes every series below.
    registry: Registry,
    /// Tasks started, per tenant.
    started: Family<TenantLabel, Counter>,
    /// Tasks ended, per tenant and outcome.
    ended: Family<EndedLabel, Counter>,
    /// Restarts of the main task, per tenant.
    restarts: Family<TenantLabel, Counter>,
    /// CPU time used, per tenant, in seconds.
    cpu: Family<TenantLabel, Counter<f64, AtomicU64>>,
    /// Bytes held in queues now, per tenant.
    queue_bytes: Family<TenantLabel, Gauge>,
    /// Items held in queues now, per tenant.
    queue_items: Family<TenantLabel, Gauge>,
    /// Scheduler passes begun, over every shard.
    passes: Counter,
    /// Tasks queued for their shard's next pass.
    queued: Gauge,
    /// Live tasks, per tenant.
    live: Family<TenantLabel, Gauge>,
    /// Open sockets, per tenant.
    sockets: Family<TenantLabel, Gauge>,
    /// Linear memory held now, per tenant.
    memory: Family<TenantLabel, Gauge>,
    /// The most linear memory held at once, per tenant.
    peak_memory: Family<TenantLabel, Gauge>,
    /// Live tasks of the whole host.
    host_live: Gauge,
    /// Task slots of the pool taken, and there are.
    task_slots: [Gauge; 2],
    /// Linear-memory slots of the pool taken, and there are.
    memory_slots: [Gauge; 2],
    /// How long woken tasks waited for their poll.
    wake_latency: WakeLatency,
    /// The tenants, as reloads change them.
    tenants: Roster,
    /// Reads their counters while the host runs.
    stats: StatsHandle,
}

impl Metrics {
    fn new(stats: StatsHandle, tenants: Roster) -> Self {
        let started = Family::<TenantLabel, Counter>::default();
        let ended = Family::<EndedLabel, Counter>::default();
        let restarts = Family::<TenantLabel, Counter>::default();
        let cpu = Family::<TenantLabel, Counter<f64, AtomicU64>>::default();
        let [queue_bytes, queue_items] =
            std::array::from_fn(|_| Family::<TenantLabel, Gauge>::default());
        let (passes, queued) = (Counter::default(), Gauge::default());
        let [live, sockets, memory, peak_memory] =
            std::array::from_fn(|_| Family::<TenantLabel, Gauge>::default());
        let host_live = Gauge::default();
        let [task_slots, memory_slots] =
            std::array::from_fn(|_| [Gauge::default(), Gauge::default()]);
        let wake_latency = WakeLatency::default();
        let mut registry = Registry::with_prefix("mtask");
        registry.register("tasks_started", "Tasks started", started.clone());
        registry.register("tasks_ended", "Tasks ended, by outcome", ended.clone());
        registry.register(
            "restarts",
            "Times the main task was started again (`restart`)",
            restarts.clone(),
        );
        registry.register(
            "cpu_seconds",
            "CPU time the tasks used, the live ones' so far included",
            cpu.clone(),
        );
        registry.register(
            "queue_bytes",
            "Bytes the queues hold now (items, and those of waiting putters)",
            queue_bytes.clone(),
        );
        registry.register(
            "queue_items",
            "Items the queues hold now",
            queue_items.clone(),
        );
        registry.register(
            "scheduler_passes",
            "Scheduler passes begun, over every shard",
            passes.clone(),
        );
        registry.register(
            "run_queue_tasks",
            "Tasks queued for their shard's next pass",
            queued.clone(),
        );
        registry.register("tasks_live", "Tasks alive now", live.clone());
        registry.register("sockets_open", "Sockets open now", sockets.clone());
        registry.register(
            "linear_memory_bytes",
            "Linear memory the live tasks hold",
            memory.clone(),
        );
        registry.register(
            "linear_memory_peak_bytes",
            "The most linear memory the live tasks held at once",
            peak_memory.clone(),
        );
        registry.register(
            "host_tasks_live",
            "Tasks alive now, every tenant's",
            host_live.clone(),
        );
        registry.register(
            "pool_task_slots_used",
            "Task slots of the pool taken (one per started task)",
            task_slots[0].clone(),
        );
        registry.register(
            "pool_task_slots",
            "Task slots the pool has (max_tasks, and a few for listing entries)",
            task_slots[1].clone(),
        );
        registry.register(
            "pool_memory_slots_used",
            "Linear-memory slots of the pool taken",
            memory_slots[0].clone(),
        );
        registry.register(
            "pool_memory_slots",
            "Linear-memory slots the pool has",
            memory_slots[1].clone(),
        );
        registry.register_with_unit(
            "wake_latency",
            "Time from a task's wake (or spawn) to its poll",
            Unit::Seconds,
            wake_latency.clone(),
        );
        Metrics {
            registry,
            started,
            ended,
            restarts,
            cpu,
            queue_bytes,
            queue_items,
            passes,
            queued,
            live,
            sockets,
            memory,
            peak_memory,
            host_live,
            task_slots,
            memory_slots,
            wake_latency,
            tenants,
            stats,
        }
    }

    /// Every series, read now, in the text format.
    fn render(&self) -> String {
        let tenants: Vec<(String, Program)> = lock(&self.tenants)
            .iter()
            .map(|s| (s.table.name.clone(), s.program.clone()))
            .collect();
        for (name, program) in &tenants {
            let s = self.stats.stats(program);
            let tenant = TenantLabel {
                tenant: name.clone(),
            };
            catch_up(&self.started.get_or_create(&tenant), s.started);
            catch_up(&self.restarts.get_or_create(&tenant), s.restarts);
            let cpu = self.cpu.get_or_create(&tenant);
            cpu.inc_by((s.cpu.as_secs_f64() - cpu.get()).max(0.0));
            for (outcome, count) in outcomes(&s) {
                let label = EndedLabel {
                    tenant: name.clone(),
                    outcome: outcome.to_string(),
                };
                catch_up(&self.ended.get_or_create(&label), count);
            }
            let gauge = |family: &Family<TenantLabel, Gauge>, value: u64| {
                family.get_or_create(&tenant).set(saturate(value));
            };
            gauge(&self.live, s.live);
            gauge(&self.sockets, s.sockets);
            gauge(&self.memory, s.memory);
            gauge(&self.peak_memory, s.peak_memory);
            gauge(&self.queue_bytes, s.queue_bytes);
            gauge(&self.queue_items, s.queue_items);
        }
        catch_up(&self.passes, self.stats.passes());
        self.queued.set(saturate(self.stats.queued_tasks() as u64));
        self.host_live.set(saturate(self.stats.live_tasks() as u64));
        let pool = self.stats.pool();
        let slots = |gauges: &[Gauge; 2], used: usize, all: usize| {
            gauges[0].set(saturate(used as u64));
            gauges[1].set(saturate(all as u64));
        };
        slots(&self.task_slots, pool.tasks, pool.task_slots);
        slots(&self.memory_slots, pool.memories, pool.memory_slots);
        *lock(&self.wake_latency.0) = self.stats.wake_latencies();
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The host's wake latencies as last read, encoded as a histogram.
#[derive(Clone, Debug, Default)]
struct WakeLatency(Arc<Mutex<Latencies>>);

impl TypedMetric for WakeLatency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for WakeLatency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let read = lock(&self.0).clone();
        let bounds = BOUNDS_MICROS.iter().map(|&b| b as f64 / 1e6);
        // The encoder adds the buckets up; the last bound is its +Inf.
        let buckets: Vec<(f64, u64)> = bounds
            .chain([f64::MAX])
            .zip(read.counts.iter().copied())
            .collect();
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            read.sum.as_secs_f64(),
            read.total(),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The ended tasks of `s` by outcome.
fn outcomes(s: &AppStats) -> [(&'static str, u64); 5] {
    [
        ("succeeded", s.succeeded),
        ("failed", s.failed),
        ("trapped", s.trapped),
        ("limit", s.limited),
        ("cancelled", s.cancelled),
    ]
}

/// Brings `counter` up to `total` (the host's counts only grow; only this
/// thread adds to the counter).
fn catch_up(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

fn saturate(value: u64) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// Serves the tenants' figures on `listener` until the process ends.
pub(super) fn serve(listener: TcpListener, stats: StatsHandle, tenants: Roster) {
    let metrics = Metrics::new(stats, tenants);
    std::thread::Builder::new()
        .name("mtask-metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                // A scraper that misbehaves loses its own request only.
                let _ = answer(conn, &metrics);
            }
        })
        .expect("cannot start the metrics thread");
}

/// Reads one request from `conn` and answers it.
fn answer(mut conn: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    conn.set_read_timeout(Some(PATIENCE))?;
    conn.set_write_timeout(Some(PATIENCE))?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let words: Vec<&str> = head.lines().next().unwrap_or("").split(' ').collect();
    let (status, kind, body) = match words[..] {
        ["GET", "/metrics", _] => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.render(),
        ),
        ["GET", _, _] => (
            "404 Not Found",
            "text/plain",
            "only /metrics is here\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics is answered\n".into(),
        ),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}
