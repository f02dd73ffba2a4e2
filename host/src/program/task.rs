//! What one task owns: its store's data (WASI context, resource table) and
//! the future that instantiates its component and runs its entry.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::handles::{
    QueueHandle, TaskHandle, TcpListenerHandle, TcpStreamHandle, UdpSocketHandle,
};
use crate::ids::AppId;
use crate::program::Program;
use crate::scheduler::TaskFuture;
use crate::scheduler::try_with_core;

/// A host object on its way from a parent to a child at spawn.
pub(crate) enum Handover {
    Task(TaskHandle),
    Queue(QueueHandle),
    TcpListener(TcpListenerHandle),
    TcpStream(TcpStreamHandle),
    UdpSocket(UdpSocketHandle),
}

/// The data of a task's `Store`.
pub(crate) struct TaskState {
    /// stdio, clocks, random, args and env; no files, no network.
    wasi: WasiCtx,
    /// The task's resources: WASI's and its task handles.
    pub(crate) table: ResourceTable,
    /// The component it runs, to spawn children from.
    pub(crate) program: Program,
    /// Handles given at spawn that the task has not taken yet.
    pub(crate) handover: Vec<Handover>,
    /// The panic message the guest reported before trapping.
    pub(crate) panic: Option<String>,
    /// Notes refused memory growth, to tell a memory limit from other traps.
    memory: MemoryWatch,
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
    /// Bytes of linear memory counted so far.
    counted: usize,
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        let (app, counted) = (self.app, self.counted);
        try_with_core(|core| core.apps.free_memory(app, counted));
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
        // Counted only inside a pass: the instance that lists a program's
        // entries is nobody's task.
        match try_with_core(|core| core.apps.grow_memory(app, grown)) {
            Some(Ok(())) => self.counted += grown,
            Some(Err(why)) => {
                self.refused = Some(why);
                return Ok(false);
            }
            None => {}
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
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// Why a growth past a task's own limit of `max` bytes was refused.
fn task_limit(max: usize) -> String {
    format!("its linear memory may not grow past {} MiB", max >> 20)
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl TaskState {
    /// The state of a task of `program` that was handed nothing.
    pub(crate) fn new(program: &Program) -> Self {
        Self {
            wasi: program.wasi_ctx(),
            table: ResourceTable::new(),
            program: program.clone(),
            handover: Vec::new(),
            panic: None,
            memory: MemoryWatch {
                max: program.max_memory(),
                refused: None,
                app: program.app(),
                counted: 0,
            },
        }
    }
}

/// The future of a new task that runs `entry(payload)` of `program`.
pub(crate) fn task_future(
    program: &Program,
    entry: Arc<str>,
    payload: Vec<u8>,
    handover: Vec<Handover>,
) -> TaskFuture {
    let state = TaskState {
        handover,
        ..TaskState::new(program)
    };
    let program = program.clone();
    Box::pin(async move {
        let mut store = Store::new(program.engine(), state);
        store.limiter(|state| &mut state.memory);
        store.set_epoch_deadline(1);
        // A component's own start-up (a Python runtime's takes tens of ms)
        // runs to its end: preempting it would reorder the first steps of
        // tasks that yield in step with each other.
        store.epoch_deadline_callback(|_| Ok(wasmtime::UpdateDeadline::Continue(1)));
        let instance = match program.pre().instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(err) => {
                return crate::outcome::from_start(err, store.data_mut().memory.refused.take());
            }
        };
        store.epoch_deadline_callback(|_| crate::scheduler::with_core(|core| core.on_epoch()));
        crate::scheduler::with_core(|core| core.restart_slice());
        let result = instance.call_run(&mut store, &entry, &payload).await;
        let state = store.data_mut();
        crate::outcome::from_call(result, state.panic.take(), state.memory.refused.take())
    })
}
