//! Host bindings generated from `wit/`: the traits that `iface::tasks`
//! implements and the typed `run`/`entries` exports.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "task",
    imports: {
        "mtask:task/tasks.yield-now": async | trappable,
        "mtask:task/tasks.sleep": async | trappable,
        "mtask:task/tasks.[method]task.join": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "mtask:task/tasks.task": crate::iface::tasks::TaskHandle,
    },
});
