//! What one task owns: its store's data (WASI context, resource table, the
//! way to its shard) and the future that instantiates its component and
//! runs its entry.

use std::sync::{Arc, MutexGuard};

use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::engine::{CORE_INSTANCES_PER_TASK, MEMORIES_PER_TASK, TABLE_ELEMENTS, TABLES_PER_TASK};
use crate::handles::{
    QueueHandle, TaskHandle, TcpListenerHandle, TcpStreamHandle, UdpSocketHandle, WasiSockets,
};
use crate::ids::{AppId, TaskCell, TaskKey};
use crate::outcome::Outcome;
use crate::program::{Code, Program, Typed};
use crate::shard::{Core, Holder, NewTask, Shard, TaskFuture};
use crate::shards::Shards;
use crate::watch::Lineage;

/// A host object on its way from a parent to a child at spawn.
pub(crate) enum Handover {
    Task(TaskHandle),
    Queue(QueueHandle),
    TcpListener(TcpListenerHandle),
    TcpStream(TcpStreamHandle),
    UdpSocket(UdpSocketHandle),
}

/// Where a task runs: what its host calls reach through `&mut self`.
pub(crate) struct TaskCtx {
    /// The host's shards and their shared state.
    pub(crate) shards: Arc<Shards>,
    /// Where the task is (it may move to another shard while runnable).
    pub(crate) cell: Arc<TaskCell>,
}

impl TaskCtx {
    /// The task's key now: its host calls run while it is polled, when it
    /// cannot move.
    pub(crate) fn me(&self) -> TaskKey {
        self.cell.key()
    }

    /// The shard that runs this task.
    pub(crate) fn shard(&self) -> &Shard {
        self.shards.of(self.me())
    }

    /// Its shard's scheduler state.
    pub(crate) fn core(&self) -> MutexGuard<'_, Core> {
        self.shard().core()
    }
}

/// The data of a task's `Store`.
pub(crate) struct TaskState {
    /// Its shard; `None` in the instance that lists a program's entries,
    /// which is nobody's task and may not use the scheduler.
    ctx: Option<TaskCtx>,
    /// stdio, clocks, random, args, env, directories and sockets (under the
    /// app's network rules). Made
    /// at the task's first WASI call: most tasks make none, and each costs
    /// memory and an open file per directory granted.
    wasi: Option<WasiCtx>,
    /// The task's resources: WASI's and its task handles.
    pub(crate) table: ResourceTable,
    /// The component it runs, to spawn children from.
    pub(crate) program: Program,
    /// Handles given at spawn that the task has not taken yet.
    pub(crate) handover: Vec<Handover>,
    /// Whether it reads the host's stdin (`Program::with_stdin`).
    stdin: bool,
    /// The panic message the guest reported before trapping.
    pub(crate) panic: Option<String>,
    /// The key of the remote spawn that started it, if one did.
    pub(crate) spawn_key: Option<Arc<str>>,
    /// Who started it, and who started them; a placeholder (id 0) in the
    /// instance that lists entries.
    pub(crate) lineage: Lineage,
    /// Notes refused memory growth, to tell a memory limit from other traps.
    memory: MemoryWatch,
    /// Its open WASI sockets, counted in its app's socket limit.
    pub(crate) wasi_sockets: WasiSockets,
}

/// A resource limiter that holds a task's linear memory to its limit and
/// its app's total to the app's, and remembers which limit refused a
/// growth (to tell a memory limit from other traps).
struct MemoryWatch {
    /// The most bytes of linear memory the task may have.
    max: usize,
    /// The limit a growth ran into.
    refused: Option<String>,
    /// The app whose total this memory counts in.
    app: AppId,
    /// Where the app's total is kept; `None` outside a task.
    shards: Option<Arc<Shards>>,
    /// Bytes of linear memory counted so far.
    counted: usize,
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        if let Some(shards) = &self.shards {
            shards.apps().free_memory(self.app, self.counted);
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryWatch {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let max = maximum.map_or(self.max, |m| m.min(self.max));
        if desired > max {
            self.refused = Some(task_limit(max));
            return Ok(false);
        }
        let (app, grown) = (self.app, desired.saturating_sub(current));
        // Counted only in a task: the instance that lists a program's
        // entries is nobody's.
        if let Some(shards) = &self.shards {
            if let Err(why) = shards.apps().grow_memory(app, grown) {
                self.refused = Some(why);
                return Ok(false);
            }
            self.counted += grown;
        }
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        let max = self.max;
        self.refused.get_or_insert_with(|| task_limit(max));
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables live on the host's heap: held to a size that any guest we
        // know of fits in.
        Ok(desired <= maximum.unwrap_or(usize::MAX).min(TABLE_ELEMENTS))
    }

    // What one task may instantiate: wasmtime asks before it allocates.
    fn instances(&self) -> usize {
        CORE_INSTANCES_PER_TASK
    }

    fn tables(&self) -> usize {
        TABLES_PER_TASK
    }

    fn memories(&self) -> usize {
        MEMORIES_PER_TASK
    }
}

/// Why a growth past a task's own limit of `max` bytes was refused.
fn task_limit(max: usize) -> String {
    format!("its linear memory may not grow past {} MiB", max >> 20)
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (program, stdin) = (&self.program, self.stdin);
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| program.wasi_ctx(stdin)),
            table: &mut self.table,
        }
    }
}

impl TaskState {
    /// The state of an instance of `program` that is no task (it lists the
    /// program's entries).
    pub(crate) fn new(program: &Program) -> Self {
        Self::of_task(program, None)
    }

    /// The state of a task of `program` that runs in `ctx`.
    fn of_task(program: &Program, ctx: Option<TaskCtx>) -> Self {
        let shards = ctx.as_ref().map(|ctx| ctx.shards.clone());
        Self {
            ctx,
            wasi: None,
            table: ResourceTable::new(),
            program: program.clone(),
            handover: Vec::new(),
            stdin: false,
            panic: None,
            spawn_key: None,
            lineage: Lineage::root(0),
            memory: MemoryWatch {
                max: program.max_memory(),
                refused: None,
                app: program.app(),
                shards: shards.clone(),
                counted: 0,
            },
            wasi_sockets: WasiSockets::new(shards, program.app()),
        }
    }

    /// A store for `state`, held to its limits.
    pub(crate) fn store(engine: &wasmtime::Engine, state: TaskState) -> Store<TaskState> {
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        store
    }

    /// Where this task runs and its table, borrowed apart (a wait holds
    /// the one while the other is used).
    pub(crate) fn parts(&mut self) -> wasmtime::Result<(&TaskCtx, &mut ResourceTable)> {
        let ctx = self.ctx.as_ref().ok_or_else(not_a_task)?;
        Ok((ctx, &mut self.table))
    }

    /// Where this task runs; an error (a trap for the guest) in the
    /// instance that lists entries: a component's start-up code may not
    /// use the scheduler.
    pub(crate) fn ctx(&self) -> wasmtime::Result<&TaskCtx> {
        self.ctx.as_ref().ok_or_else(not_a_task)
    }
}

/// Why a host call in the instance that lists entries traps.
fn not_a_task() -> wasmtime::Error {
    wasmtime::Error::msg("mtask calls are not available while a component starts")
}

/// What a new task runs, and who gets its outcome.
pub(crate) struct Start {
    /// The entry it runs.
    pub(crate) entry: Arc<str>,
    /// Its argument.
    pub(crate) payload: Payload,
    /// The handles it is handed.
    pub(crate) handover: Vec<Handover>,
    /// Who takes its outcome.
    pub(crate) holder: Holder,
    /// For a remote spawn this host runs: its spawn key (docs/design.md §10).
    pub(crate) spawn_key: Option<Arc<str>>,
    /// Where its outcome also goes when it ends (a remote spawn's host, a
    /// supervisor); dropped unsent if the task is dropped unended (the
    /// host is stopping).
    pub(crate) report: Option<oneshot::Sender<Outcome>>,
    /// The lineage of the task that started it; `None`: the embedder did.
    pub(crate) parent: Option<Lineage>,
}

impl Start {
    /// A start of `entry(payload)` whose outcome `holder` takes.
    pub(crate) fn new(entry: Arc<str>, payload: Payload, holder: Holder) -> Start {
        Start {
            entry,
            payload,
            handover: Vec::new(),
            holder,
            spawn_key: None,
            report: None,
            parent: None,
        }
    }
}

/// Starts a task of `program` on shard `shard` as `start` says; it first
/// runs in that shard's next pass. Its place among the app's tasks was
/// reserved (`Apps::reserve`).
pub(crate) fn spawn(
    shards: &Arc<Shards>,
    shard: usize,
    program: &Program,
    start: Start,
) -> Arc<TaskCell> {
    let app = program.app();
    let id = shards.next_id();
    let mut core = shards.all()[shard].core();
    let me = core.next_key(id);
    let cell = Arc::new(TaskCell::new(me));
    let ctx = TaskCtx {
        shards: shards.clone(),
        cell: cell.clone(),
    };
    let Start {
        entry,
        payload,
        handover,
        holder,
        spawn_key,
        report,
        parent,
    } = start;
    let lineage = match parent {
        Some(parent) => parent.child(id),
        None => Lineage::root(id),
    };
    let state = TaskState {
        handover,
        lineage: lineage.clone(),
        stdin: holder.is_main() && program.stdin(),
        spawn_key,
        ..TaskState::of_task(program, Some(ctx))
    };
    // A span costs about 0.6 µs a spawn (BENCHMARKS.md): made only for a
    // program whose log shows spans (`serve --log-format json`).
    let span = match program.log_span() {
        tenant if tenant.is_disabled() => tracing::Span::none(),
        tenant => tracing::info_span!(
            target: "mtask",
            parent: tenant,
            "task",
            task = id,
            entry = &*entry
        ),
    };
    let mut future = task_future(program, state, entry.clone(), payload);
    if !span.is_disabled() {
        // Each poll runs in the task's span; no span, no wrapper.
        future = Box::pin(tracing::Instrument::instrument(future, span.clone()));
    }
    if let Some(report) = report {
        future = Box::pin(async move {
            let outcome = future.await;
            let _ = report.send(outcome.clone());
            outcome
        });
    }
    shards.directory().insert(&cell);
    core.spawn(NewTask {
        cell: cell.clone(),
        app,
        entry,
        holder,
        future,
        lineage,
        span,
    });
    drop(core);
    // A shard asleep in its poll would not see the new task until then.
    shards.of(me).remote.nudge();
    cell
}

/// The future of a new task of `program`, with store data `state`, that
/// runs `entry(payload)`.
fn task_future(
    program: &Program,
    state: TaskState,
    entry: Arc<str>,
    payload: Payload,
) -> TaskFuture {
    // Made before the future, so the future holds the store (a pointer),
    // not the state moved into it: a smaller future for every live task.
    // The code is chosen once: a store and the instance made in it must
    // be of one engine, and Cranelift's code may arrive meanwhile (§11).
    let code = program.code().clone();
    let mut store = TaskState::store(code.engine(), state);
    Box::pin(async move {
        store.set_epoch_deadline(1);
        // A component's own start-up (a Python runtime's takes tens of ms)
        // runs to its end: preempting it would reorder the first steps of
        // tasks that yield in step with each other.
        store.epoch_deadline_callback(|_| Ok(wasmtime::UpdateDeadline::Continue(1)));
        let started = match (&code, payload) {
            // A spawned task's `run` was looked up once, in the `pre`; only
            // a task started on JSON (the main task) looks up `run-json`.
            (Code::Task(pre, _), Payload::Native(bytes)) => pre
                .instantiate_async(&mut store)
                .await
                .map(|task| Started::Task(task, bytes)),
            (Code::Task(pre, typed), Payload::Json(arg)) => pre
                .instance_pre()
                .instantiate_async(&mut store)
                .await
                .map(|instance| Started::Json(instance, *typed, arg)),
            (Code::Command(pre), _) => pre
                .instantiate_async(&mut store)
                .await
                .map(Started::Command),
        };
        let started = match started {
            Ok(started) => started,
            Err(err) => {
                return crate::outcome::from_start(err, store.data_mut().memory.refused.take());
            }
        };
        store.epoch_deadline_callback(|store| match &store.data().ctx {
            Some(ctx) => ctx.core().on_epoch(),
            None => Ok(wasmtime::UpdateDeadline::Continue(1)),
        });
        if let Some(ctx) = &store.data().ctx {
            ctx.core().restart_slice();
        }
        let result = match started {
            Started::Task(task, payload) => task.call_run(&mut store, &entry, &payload).await,
            Started::Json(instance, typed, arg) => {
                run_json(&mut store, &instance, typed, &entry, &arg).await
            }
            Started::Command(command) => {
                let ran = command.wasi_cli_run().call_run(&mut store).await;
                return crate::outcome::from_command(ran, store.data_mut().memory.refused.take());
            }
        };
        let state = store.data_mut();
        crate::outcome::from_call(result, state.panic.take(), state.memory.refused.take())
    })
}

/// A task's argument.
#[derive(Clone)]
pub(crate) enum Payload {
    /// Encoded by the component's SDK, for `run`.
    Native(Vec<u8>),
    /// JSON text from outside the component, for `run-json` (WIT 0.1.2).
    Json(String),
}

/// Runs `entry` with the JSON argument `arg` through `run-json`; the result
/// is the JSON text's bytes. A component without it was refused JSON when
/// the task was added (`Program::takes_json`).
async fn run_json(
    store: &mut Store<TaskState>,
    instance: &wasmtime::component::Instance,
    typed: Option<Typed>,
    entry: &str,
    arg: &str,
) -> wasmtime::Result<Result<Vec<u8>, String>> {
    let Some(typed) = typed else {
        wasmtime::bail!("it was built with an SDK older than WIT 0.1.2, which takes no JSON");
    };
    let run = instance
        .get_typed_func::<(&str, &str), (Result<String, String>,)>(&mut *store, typed.run_json)?;
    let (result,) = run.call_async(&mut *store, (entry, arg)).await?;
    Ok(result.map(String::into_bytes))
}

/// An instance ready to run its entry.
enum Started {
    /// An mtask task, and its argument for `run`.
    Task(crate::bindings::UntypedTask, Vec<u8>),
    /// An mtask task, where its `run-json` is, and its JSON argument.
    Json(wasmtime::component::Instance, Option<Typed>, String),
    Command(wasmtime_wasi::p2::bindings::Command),
}
