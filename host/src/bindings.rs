//! Host bindings generated from `wit/`: the traits that `iface::tasks`
//! implements and the typed `run`/`entries` exports.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "task",
    imports: {
        "mtask:task/tasks.yield-now": async | trappable,
        "mtask:task/tasks.sleep": async | trappable,
        "mtask:task/tasks.[method]task.join": async | trappable,
        "mtask:task/queues.[method]queue.put": async | trappable,
        "mtask:task/queues.[method]queue.get": async | trappable,
        "mtask:task/queues.[method]queue.get-tagged": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "mtask:task/tasks.task": crate::iface::tasks::TaskHandle,
        "mtask:task/queues.queue": crate::iface::queues::QueueHandle,
    },
});
