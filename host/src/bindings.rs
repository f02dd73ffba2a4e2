//! Host bindings generated from `wit/`: the traits that `iface::tasks`
//! implements and the typed `run`/`entries` exports.

wasmtime::component::bindgen!({
    path: "../wit",
    // The exports every version of 0.1 has; those of 0.1.2 are looked up
    // by name (`program::Typed`), so that older components run too.
    world: "untyped-task",
    imports: {
        "mtask:task/tasks.yield-now": async | trappable,
        "mtask:task/tasks.sleep": async | trappable,
        "mtask:task/tasks.[method]task.join": async | trappable,
        "mtask:task/tasks.[method]task-monitor.wait": async | trappable,
        "mtask:task/tasks.spawn-at": async | trappable,
        "mtask:task/queues.[method]queue.put": async | trappable,
        "mtask:task/queues.[method]queue.get": async | trappable,
        "mtask:task/queues.[method]queue.get-tagged": async | trappable,
        // Async for cluster queues (docs/design.md §10), which ask NATS.
        "mtask:task/queues.[static]queue.open": async | trappable,
        "mtask:task/queues.[method]queue.try-put": async | trappable,
        "mtask:task/queues.[method]queue.try-get": async | trappable,
        "mtask:task/queues.[method]queue.len": async | trappable,
        "mtask:task/queues.[method]queue.is-empty": async | trappable,
        "mtask:task/queues.[method]queue.is-full": async | trappable,
        "mtask:task/queues.[method]queue.close": async | trappable,
        "mtask:task/net.[method]tcp-listener.accept": async | trappable,
        "mtask:task/net.[static]tcp-stream.connect": async | trappable,
        "mtask:task/net.[method]tcp-stream.recv": async | trappable,
        "mtask:task/net.[method]tcp-stream.send": async | trappable,
        "mtask:task/net.[method]tcp-stream.send-all": async | trappable,
        "mtask:task/net.[method]udp-socket.recv-from": async | trappable,
        "mtask:task/net.[method]udp-socket.send-to": async | trappable,
        "mtask:task/net.[method]udp-socket.send": async | trappable,
        "mtask:task/net.[method]udp-socket.recv": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    with: {
        "mtask:task/types": crate::wit_types::mtask::task::types,
        "mtask:task/tasks.task": crate::handles::TaskHandle,
        "mtask:task/tasks.task-monitor": crate::handles::MonitorHandle,
        "mtask:task/queues.queue": crate::handles::QueueHandle,
        "mtask:task/net.tcp-listener": crate::handles::TcpListenerHandle,
        "mtask:task/net.tcp-stream": crate::handles::TcpStreamHandle,
        "mtask:task/net.udp-socket": crate::handles::UdpSocketHandle,
    },
});
