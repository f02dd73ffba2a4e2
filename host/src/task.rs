//! What one task owns: its store's data (WASI context, resource table) and
//! the future that instantiates its component and runs its entry.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::iface::net::{TcpListenerHandle, TcpStreamHandle, UdpSocketHandle};
use crate::iface::queues::QueueHandle;
use crate::iface::tasks::TaskHandle;
use crate::program::Program;
use crate::scheduler::TaskFuture;

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
        let instance = match program.pre().instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(err) => return crate::outcome::from_start(err),
        };
        let result = instance.call_run(&mut store, &entry, &payload).await;
        let panic = store.data_mut().panic.take();
        crate::outcome::from_call(result, panic)
    })
}
