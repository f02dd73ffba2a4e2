//! The wasmtime engine: limits that size the instance pool, and the
//! settings every task shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Limits and settings of a host. `Config::default()` suits a command-line run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The most tasks alive at once. The instance pool is sized for it up
    /// front (address space only: memory is touched as tasks use it).
    pub max_tasks: u32,
    /// The most linear memory one task may have, in bytes.
    pub max_memory: u64,
    /// The most bytes the queues of one app may hold (items queued, and
    /// items waiting to be put).
    pub max_queue_bytes: usize,
    /// The most sockets the tasks of one app may have open at once.
    pub max_sockets: usize,
    /// How long a task may run without waiting before it is preempted
    /// (sent to the back of the run queue), so the others keep their latency.
    pub time_slice: Duration,
    /// Whether tasks are preempted at all. Off, compiled code has no epoch
    /// checks (a little faster), and a task that never waits holds the
    /// scheduler; a CPU budget then cannot be enforced.
    pub preempt: bool,
    /// The most CPU time one task may use in all; past it the task ends
    /// with a `limit` error. `None`: no budget.
    pub cpu_budget: Option<Duration>,
    /// Where compiled components are kept between runs; `None` compiles
    /// every time. Defaults to [`crate::cache::default_dir`].
    pub cache_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_tasks: 10_000,
            max_memory: 64 << 20,
            max_queue_bytes: 64 << 20,
            max_sockets: 10_000,
            time_slice: Duration::from_millis(10),
            preempt: true,
            cpu_budget: None,
            cache_dir: crate::cache::default_dir(),
        }
    }
}

/// The limits of one app (a tenant): its share of the host. A host's
/// [`Config`] gives the defaults; `Program::with_limits` overrides them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppLimits {
    /// The most live tasks the app may have.
    pub max_tasks: usize,
    /// The most sockets its tasks may have open at once.
    pub max_sockets: usize,
    /// The most bytes its queues may hold.
    pub max_queue_bytes: usize,
    /// The most CPU time one of its tasks may use (needs preemption on).
    pub cpu_budget: Option<Duration>,
}

impl From<&Config> for AppLimits {
    fn from(config: &Config) -> Self {
        AppLimits {
            max_tasks: config.max_tasks as usize,
            max_sockets: config.max_sockets,
            max_queue_bytes: config.max_queue_bytes,
            cpu_budget: config.cpu_budget,
        }
    }
}

/// Instances that are not tasks: the one that lists a component's entries.
const SPARE_INSTANCES: u32 = 4;

/// Core instances, memories and tables one component may have: a Rust or C
/// guest needs one to three of each; the slack covers other toolchains.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;

/// Dirty linear memory zeroed in place, rather than released, when a task ends.
const KEEP_RESIDENT: usize = 256 << 10;

/// Host stack of a task's fiber, and how much of it wasm may use.
const FIBER_STACK: usize = 1 << 20;
const MAX_WASM_STACK: usize = 512 << 10;

/// Builds the engine for `config`.
pub(crate) fn new_engine(config: &Config) -> wasmtime::Result<Engine> {
    let instances = config.max_tasks.saturating_add(SPARE_INSTANCES);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(4))
        .total_memories(instances)
        .total_tables(instances.saturating_mul(2))
        .total_stacks(instances)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(config.max_memory as usize)
        .table_elements(10_000)
        // A finished task's dirty pages (found with the PAGEMAP_SCAN ioctl on
        // Linux 6.7+) are zeroed in place rather than unmapped, so the next
        // task does not fault them in again: spawn + join takes half the time.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(4 << 10)
        .pagemap_scan(Enabled::Auto);

    let mut wasm = wasmtime::Config::new();
    wasm.concurrency_support(false)
        // Preemption: compiled code checks the epoch, which the ticker
        // below advances; see `Core::on_epoch`.
        .epoch_interruption(config.preempt)
        .async_stack_size(FIBER_STACK)
        .max_wasm_stack(MAX_WASM_STACK)
        // Small reservations let 100k memories fit in the address space;
        // bounds checks are then explicit instead of guard-page based.
        .memory_reservation(config.max_memory)
        .memory_guard_size(64 << 10)
        .memory_reservation_for_growth(0)
        // Copy-on-write images map each task's data segment separately: two
        // more memory mappings per task, against Linux's default limit of
        // 65530, for no measurable gain on small guests (BENCHMARKS.md).
        .memory_init_cow(false)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm)
}

/// How often the epoch advances: the granularity of time slices and budgets.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// A thread that advances the engine's epoch every [`TICK`] until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    pub(crate) fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, stopped) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("mtask-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })
            .expect("cannot start the epoch thread");
        Ticker { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
