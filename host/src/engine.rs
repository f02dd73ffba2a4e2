//! The wasmtime engine: limits that size the instance pool, and the
//! settings every task shares.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Engine, InstanceAllocationStrategy};

use crate::arena::{Memories, PoolUsage, Stacks};

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
    /// The cluster to join (docs/design.md §10): named queues shared with
    /// the other hosts of a tenant, and spawns that may run on any of them.
    /// `None` (the default): this host alone, and nothing of NATS runs.
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
    /// How a component missing from the cache is compiled the first time
    /// (docs/design.md §11). Default [`Tiering::Off`]: by Cranelift, before
    /// it runs.
    pub tiering: Tiering,
}

/// How a component missing from the compiled-code cache is compiled
/// (docs/design.md §11). Every mode but `Off` needs a usable cache.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tiering {
    /// Cranelift compiles it before it runs: a slow first start (≈ 10 s
    /// for a Python component), the fastest code from the first task.
    #[default]
    Off,
    /// Winch (wasmtime's baseline compiler, ≈ 5 times faster to compile,
    /// code ≈ 1.7 times slower) compiles it and it runs at once, while a
    /// low-priority thread of this process compiles it with Cranelift for
    /// the cache; tasks started after that run Cranelift's code. See
    /// `TaskManager::wait_for_background_compiles`.
    Background,
    /// As `Background`, but Cranelift compiles in a detached, low-priority
    /// `compile --background` run of this executable (the `mtask-host`
    /// binary), which outlives the process: what `mtask-host run` does, so
    /// that a short first run need not wait for the optimized code.
    Detached(PathBuf),
}

/// The most tasks alive at once unless told otherwise.
pub const DEFAULT_MAX_TASKS: u32 = 100_000;

/// [`DEFAULT_MAX_TASKS`], or fewer if tasks of `max_memory` each would not
/// fit in the address space the host may reserve.
pub fn default_max_tasks(max_memory: u64) -> u32 {
    let fits =
        (ADDRESS_BUDGET / task_reservation(max_memory)).saturating_sub(SPARE_INSTANCES.into());
    DEFAULT_MAX_TASKS
        .min(fits.try_into().unwrap_or(u32::MAX))
        .max(1)
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
            max_tasks: DEFAULT_MAX_TASKS,
            max_memory: 64 << 20,
            max_app_memory: physical_memory(),
            max_queue_bytes: 64 << 20,
            max_sockets: 10_000,
            time_slice: Duration::from_millis(10),
            preempt: true,
            cpu_budget: None,
            cache_dir: crate::cache::default_dir(),
            threads: default_threads(),
            cluster: None,
            tiering: Tiering::Off,
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
    /// How long one of its tasks runs before it is preempted; `None`: the
    /// host's [`Config::time_slice`].
    pub time_slice: Option<Duration>,
    /// Its weight when the tasks of several apps want CPU on a shard: CPU
    /// time is shared between them in proportion (docs/design.md §3).
    pub share: u32,
}

impl From<&Config> for AppLimits {
    fn from(config: &Config) -> Self {
        AppLimits {
            max_tasks: config.max_tasks as usize,
            max_sockets: config.max_sockets,
            max_queue_bytes: config.max_queue_bytes,
            max_app_memory: config.max_app_memory,
            cpu_budget: config.cpu_budget,
            time_slice: None,
            share: 1,
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

/// Core instances, memories and tables one task may have: a Rust or C
/// guest needs one to three of each; the slack covers other toolchains.
pub(crate) const CORE_INSTANCES_PER_TASK: usize = 16;
pub(crate) const MEMORIES_PER_TASK: usize = 2;
pub(crate) const TABLES_PER_TASK: usize = 4;

/// The most elements of a table.
pub(crate) const TABLE_ELEMENTS: usize = 10_000;

/// The unit of linear memory.
const WASM_PAGE: u64 = 64 << 10;

/// The largest linear memory a wasm32 task can address.
const MAX_LINEAR_MEMORY: u64 = 4 << 30;

/// The address space the pool may reserve: half of what x86-64 Linux gives
/// a process (128 TiB), leaving the rest to the host and the kernel's
/// fragmentation.
const ADDRESS_BUDGET: u128 = 64 << 40;

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
        check_mappings(self.max_tasks, crate::arena::mappings_per_task(), &name)?;
        if let Some(cluster) = &self.cluster
            && cluster.lease < std::time::Duration::from_millis(300)
        {
            return Err(format!(
                "{} {:?} is too short: progress acks go every third of it (at least 300ms)",
                name("cluster_lease"),
                cluster.lease
            ));
        }
        if self.cpu_budget.is_some() && !self.preempt {
            return Err(format!("{} needs preemption on", name("cpu_budget")));
        }
        Ok(())
    }
}

/// Mappings the host keeps besides its tasks': code, libraries, threads'
/// stacks, compiled components, a margin.
const HOST_MAPPINGS: u64 = 2_000;

/// Checks that `max_tasks` tasks of `per_task` memory mappings each fit
/// under the kernel's `vm.max_map_count`, so that the limit is met at start
/// with the `sysctl` that lifts it, not as a failed mmap under load.
fn check_mappings(
    max_tasks: u32,
    per_task: usize,
    name: &impl Fn(&str) -> String,
) -> Result<(), String> {
    let limit = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    let Some(limit) = limit else {
        return Ok(());
    };
    let needed = u64::from(max_tasks) * per_task as u64 + HOST_MAPPINGS;
    if needed <= limit {
        return Ok(());
    }
    Err(format!(
        "{} {max_tasks} needs about {needed} memory mappings ({per_task} per task: this \
         kernel has no MADV_GUARD_INSTALL, Linux 6.13+), more than vm.max_map_count = \
         {limit}: run `sysctl -w vm.max_map_count={}` as root, or lower it to {}",
        name("max_tasks"),
        needed.next_multiple_of(65_536),
        (limit.saturating_sub(HOST_MAPPINGS) / per_task.max(1) as u64),
    ))
}

/// The address space reserved for `max_tasks` tasks of `max_memory` each.
fn pool_reservation(max_tasks: u32, max_memory: u64) -> u128 {
    (u128::from(max_tasks) + u128::from(SPARE_INSTANCES)) * task_reservation(max_memory)
}

/// The address space one task of `max_memory` takes (`arena`): its linear
/// memories' slots, its fiber stack and the stack's guard page.
fn task_reservation(max_memory: u64) -> u128 {
    MEMORIES_PER_TASK as u128 * u128::from(max_memory) + FIBER_STACK as u128 + 4096
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

/// The memories and stacks tasks get: sized once for a host, and shared by
/// its engines (Cranelift's and Winch's), so that their tasks count against
/// the same slots.
#[derive(Clone)]
pub(crate) struct Arena {
    /// Linear-memory slots.
    memories: Arc<Memories>,
    /// Fiber stacks.
    stacks: Arc<Stacks>,
}

impl Arena {
    /// How much of it is taken now.
    pub(crate) fn usage(&self) -> PoolUsage {
        let (tasks, task_slots) = self.stacks.usage();
        let (memories, memory_slots) = self.memories.usage();
        PoolUsage {
            tasks,
            task_slots,
            memories,
            memory_slots,
        }
    }

    pub(crate) fn new(config: &Config) -> wasmtime::Result<Self> {
        let instances = config.max_tasks.saturating_add(SPARE_INSTANCES) as usize;
        let memories = Memories::new(instances * MEMORIES_PER_TASK, config.max_memory as usize)
            .map_err(wasmtime::Error::msg)?;
        let stacks = Stacks::new(instances, FIBER_STACK).map_err(wasmtime::Error::msg)?;
        Ok(Arena {
            memories: Arc::new(memories),
            stacks: Arc::new(stacks),
        })
    }
}

/// Which compiler an engine compiles with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compiler {
    /// Optimized code, slow to compile: what the cache keeps.
    Cranelift,
    /// Baseline code, fast to compile: a component's first run (§11).
    Winch,
}

/// Builds an engine for `config` that compiles with `compiler`, its
/// memories and stacks in `arena`.
pub(crate) fn new_engine(
    config: &Config,
    arena: &Arena,
    compiler: Compiler,
) -> wasmtime::Result<Engine> {
    let mut wasm = wasmtime::Config::new();
    if compiler == Compiler::Winch {
        wasm.strategy(wasmtime::Strategy::Winch)
            // Winch hands the trampolines between host and guest to
            // Cranelift: with Cranelift's defaults they are most of a big
            // component's compile (2.3 s of a Python one's; 1.7 s so).
            .cranelift_opt_level(wasmtime::OptLevel::None)
            .cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
    }
    wasm.concurrency_support(false)
        // Preemption: compiled code checks the epoch, which the ticker
        // below advances; see `Core::on_epoch`.
        .epoch_interruption(config.preempt)
        .async_stack_size(FIBER_STACK)
        .max_wasm_stack(MAX_WASM_STACK)
        // A memory's slot holds its whole reservation, and no guard pages
        // follow it: compiled code checks every access against the
        // memory's size, so nothing past it need fault (see `arena`).
        .memory_reservation(config.max_memory)
        .memory_guard_size(0)
        .memory_reservation_for_growth(0)
        .memory_may_move(false)
        // Copy-on-write images would map each task's data over its slot:
        // two more mappings per task (BENCHMARKS.md).
        .memory_init_cow(false)
        .with_host_memory(arena.memories.clone())
        .with_host_stack(arena.stacks.clone())
        // Instances, tables and their limits per task are the store's
        // (`MemoryWatch` in `program::task`); memories and stacks come
        // from the arena.
        .allocation_strategy(InstanceAllocationStrategy::OnDemand);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_mappings_are_refused_with_the_sysctl_that_lifts_the_limit() {
        let name = |key: &str| format!("--{key}");
        // No mapping per task (MADV_GUARD_INSTALL): any count fits.
        assert_eq!(check_mappings(u32::MAX, 0, &name), Ok(()));
        // Two per task (an older kernel): more than any default limit.
        let e = check_mappings(1 << 30, 2, &name).unwrap_err();
        assert!(
            e.starts_with(
                "--max_tasks 1073741824 needs about 2147485648 memory mappings (2 per task"
            ),
            "{e}"
        );
        assert!(
            e.contains("run `sysctl -w vm.max_map_count=2147549184` as root"),
            "{e}"
        );
    }

    #[test]
    fn the_default_task_count_shrinks_to_what_the_address_space_holds() {
        assert_eq!(default_max_tasks(64 << 20), DEFAULT_MAX_TASKS);
        let big = default_max_tasks(4 << 30);
        assert!(big < DEFAULT_MAX_TASKS, "{big}");
        assert!(pool_reservation(big, 4 << 30) <= ADDRESS_BUDGET);
        assert!(pool_reservation(big + 1, 4 << 30) > ADDRESS_BUDGET);
    }
}
