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
    /// The most linear memory the tasks of one app may have in all, in
    /// bytes (the size of their memories: an upper bound of what they keep
    /// resident). Defaults to the machine's physical memory.
    pub max_app_memory: u64,
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
    /// How many scheduler shards (threads) run the tasks, at most
    /// [`MAX_THREADS`]. With one, tasks step in multitask's exact order
    /// (docs/design.md §4); with more, the orders of docs/design.md §3
    /// hold. Defaults to [`default_threads`]: one per available core.
    pub threads: usize,
}

/// The most scheduler threads a host may have.
pub const MAX_THREADS: usize = 256;

/// One scheduler thread per core this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_tasks: 10_000,
            max_memory: 64 << 20,
            max_app_memory: physical_memory(),
            max_queue_bytes: 64 << 20,
            max_sockets: 10_000,
            time_slice: Duration::from_millis(10),
            preempt: true,
            cpu_budget: None,
            cache_dir: crate::cache::default_dir(),
            threads: default_threads(),
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
    /// The most linear memory its tasks may have in all, in bytes.
    pub max_app_memory: u64,
    /// The most CPU time one of its tasks may use (needs preemption on).
    pub cpu_budget: Option<Duration>,
}

impl From<&Config> for AppLimits {
    fn from(config: &Config) -> Self {
        AppLimits {
            max_tasks: config.max_tasks as usize,
            max_sockets: config.max_sockets,
            max_queue_bytes: config.max_queue_bytes,
            max_app_memory: config.max_app_memory,
            cpu_budget: config.cpu_budget,
        }
    }
}

/// The machine's physical memory, in bytes.
pub fn physical_memory() -> u64 {
    let info = rustix::system::sysinfo();
    (info.totalram as u64)
        .saturating_mul(u64::from(info.mem_unit.max(1)))
        .max(WASM_PAGE)
}

/// Instances that are not tasks: the one that lists a component's entries.
const SPARE_INSTANCES: u32 = 4;

/// Core instances, memories and tables one component may have: a Rust or C
/// guest needs one to three of each; the slack covers other toolchains.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;

/// The most elements of a table.
const TABLE_ELEMENTS: usize = 10_000;

/// The guard after each linear memory.
const MEMORY_GUARD: u64 = 64 << 10;

/// The unit of linear memory.
const WASM_PAGE: u64 = 64 << 10;

/// The largest linear memory a wasm32 task can address.
const MAX_LINEAR_MEMORY: u64 = 4 << 30;

/// The address space the pool may reserve: half of what x86-64 Linux gives
/// a process (128 TiB), leaving the rest to the host and the kernel's
/// fragmentation.
const ADDRESS_BUDGET: u128 = 64 << 40;

/// Dirty linear memory zeroed in place, rather than released, when a task ends.
const KEEP_RESIDENT: usize = 256 << 10;

/// Host stack of a task's fiber, and how much of it wasm may use.
const FIBER_STACK: usize = 1 << 20;
const MAX_WASM_STACK: usize = 512 << 10;

impl Config {
    /// Checks that the settings can be honoured, before anything is
    /// reserved; an error names the settings through `name` (a flag of the
    /// command line, a key of a tenants file).
    pub fn check(&self, name: impl Fn(&str) -> String) -> Result<(), String> {
        if self.max_memory < WASM_PAGE {
            return Err(format!(
                "{} {} is less than one wasm page (64 KiB)",
                name("max_memory"),
                show_size(self.max_memory as u128)
            ));
        }
        if self.max_memory > MAX_LINEAR_MEMORY {
            return Err(format!(
                "{} {} is more than a wasm32 task can address (4 GiB)",
                name("max_memory"),
                show_size(self.max_memory as u128)
            ));
        }
        if self.max_tasks == 0 {
            return Err(format!("{} must be at least 1", name("max_tasks")));
        }
        let reserved = pool_reservation(self.max_tasks, self.max_memory);
        if reserved > ADDRESS_BUDGET {
            return Err(format!(
                "{} {} tasks with {} {} each need {} of address space; the pool may \
                 reserve at most {}: lower one of them",
                name("max_tasks"),
                self.max_tasks,
                name("max_memory"),
                show_size(self.max_memory as u128),
                show_size(reserved),
                show_size(ADDRESS_BUDGET)
            ));
        }
        if !(1..=MAX_THREADS).contains(&self.threads) {
            return Err(format!(
                "{} {} is not between 1 and {MAX_THREADS}",
                name("threads"),
                self.threads
            ));
        }
        if self.cpu_budget.is_some() && !self.preempt {
            return Err(format!("{} needs preemption on", name("cpu_budget")));
        }
        Ok(())
    }
}

/// The address space the pool reserves for `max_tasks` tasks of
/// `max_memory` each: linear memories, tables and fiber stacks.
fn pool_reservation(max_tasks: u32, max_memory: u64) -> u128 {
    let slots = u128::from(max_tasks) + u128::from(SPARE_INSTANCES);
    let memory = u128::from(MEMORIES_PER_COMPONENT) * u128::from(max_memory + MEMORY_GUARD);
    let tables = u128::from(TABLES_PER_COMPONENT) * TABLE_ELEMENTS as u128 * 8;
    slots * (memory + tables + FIBER_STACK as u128)
}

/// `123 MiB`, `64 TiB`: a size in the largest unit it fills.
fn show_size(bytes: u128) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut shown = bytes;
    let mut unit = 0;
    while unit + 1 < units.len()
        && (shown >= 1024 && shown.is_multiple_of(1024) || shown >= 10 << 10)
    {
        shown /= 1024;
        unit += 1;
    }
    format!("{shown} {}", units[unit])
}

/// Builds the engine for `config`.
pub(crate) fn new_engine(config: &Config) -> wasmtime::Result<Engine> {
    let instances = config.max_tasks.saturating_add(SPARE_INSTANCES);
    let mut pool = PoolingAllocationConfig::new();
    // Every task may use as many core instances, memories and tables as any
    // component may have: then the only shared resource a task can take is
    // its one instance slot, which its app's `max_tasks` reserves, and no
    // app can run the pool out of memories for another (core instances are
    // only counted; memories and tables cost address space, not memory).
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(instances.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(instances)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(config.max_memory as usize)
        .table_elements(TABLE_ELEMENTS)
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
        .memory_guard_size(MEMORY_GUARD)
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

/// The Tokio runtime that wasmtime-wasi's own host calls (clock pollables,
/// for one) need; its one worker thread drives their timers and wakes our
/// tasks through their wakers.
pub(crate) fn tokio_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mtask-wasi")
            .enable_all()
            .build()
            .expect("cannot start the Tokio runtime")
    })
}
