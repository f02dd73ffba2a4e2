//! How a task ends: from a wasmtime call result to an [`Outcome`], and the
//! [`TaskError`] that tells people why.

use wasmtime::WasmBacktrace;

/// What a task ends with: the bytes its entry returned, or how it failed.
pub type Outcome = Result<Vec<u8>, TaskError>;

/// How a task ended when it did not return a value (`task-error` in WIT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskError {
    /// The entry returned an error; its message carries the causes that
    /// came up from the task's own children.
    Failed(String),
    /// The task trapped: the panic or trap message, then the wasm backtrace.
    Trapped(String),
    /// The task was cancelled.
    Cancelled,
    /// The task went over a limit; the text names it.
    Limit(String),
    /// A `wasi:cli` command ended with this exit status (not 0).
    Exited(i32),
}

/// One phrase that completes "task N (`entry`) ...".
impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::Failed(message) => write!(f, "failed: {message}"),
            TaskError::Trapped(message) => write!(f, "trapped: {message}"),
            TaskError::Cancelled => write!(f, "was cancelled"),
            TaskError::Limit(message) => write!(f, "went over a limit: {message}"),
            TaskError::Exited(status) => write!(f, "exited with status {status}"),
        }
    }
}

impl std::error::Error for TaskError {}

impl TaskError {
    /// One word for the kind of end, as logs and metrics name it.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskError::Failed(_) => "failed",
            TaskError::Trapped(_) => "trapped",
            TaskError::Cancelled => "cancelled",
            TaskError::Limit(_) => "limit",
            TaskError::Exited(_) => "exited",
        }
    }
}

/// The error that ends a task for going over a limit it has no error value
/// for (its CPU budget, a handle past its app's bytes); the text names it.
#[derive(Debug)]
pub(crate) struct OverLimit(pub(crate) String);

impl OverLimit {
    /// The task used up `budget` of CPU time.
    pub(crate) fn cpu_budget(budget: std::time::Duration) -> Self {
        OverLimit(format!(
            "it used up its CPU budget of {} ms",
            budget.as_millis()
        ))
    }
}

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OverLimit {}

/// The outcome of a task whose `run` call returned `result`.
///
/// `panic` is the message the guest reported just before trapping, if any;
/// `memory_limit` says which limit refused a memory growth, which is most
/// likely why a trap followed (an allocator that gives up aborts).
pub(crate) fn from_call(
    result: wasmtime::Result<Result<Vec<u8>, String>>,
    panic: Option<String>,
    memory_limit: Option<String>,
) -> Outcome {
    match result {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(message)) => Err(TaskError::Failed(message)),
        Err(err) => {
            if let Some(over) = err.downcast_ref::<OverLimit>() {
                return Err(TaskError::Limit(over.to_string()));
            }
            let trap = trap_message(&err, panic);
            match memory_limit {
                Some(limit) => Err(TaskError::Limit(format!("{limit} ({trap})"))),
                None => Err(TaskError::Trapped(trap)),
            }
        }
    }
}

/// The outcome of a `wasi:cli` command whose `run` returned `result`: its
/// exit status (`exit(0)` and an `Ok` return are success, an `Err` return
/// is status 1), or how it trapped.
pub(crate) fn from_command(
    result: wasmtime::Result<Result<(), ()>>,
    memory_limit: Option<String>,
) -> Outcome {
    let status = match &result {
        Ok(Ok(())) => 0,
        Ok(Err(())) => 1,
        Err(err) => match err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => exit.0,
            None => return from_call(result.map(|_| Ok(Vec::new())), None, memory_limit),
        },
    };
    match status {
        0 => Ok(Vec::new()),
        status => Err(TaskError::Exited(status)),
    }
}

/// The outcome of a task whose instance could not be created: a trap in
/// the component's start function, or (most often) the host running out of
/// instance slots, memory or memory mappings. `memory_limit` says which
/// limit refused its initial memory, if one did.
pub(crate) fn from_start(err: wasmtime::Error, memory_limit: Option<String>) -> Outcome {
    if let Some(limit) = memory_limit {
        return Err(TaskError::Limit(format!(
            "the task could not start: {limit}"
        )));
    }
    if err.is::<wasmtime::Trap>() {
        return Err(TaskError::Trapped(trap_message(&err, None)));
    }
    Err(TaskError::Limit(format!(
        "the task could not start: {}",
        err.root_cause()
    )))
}

/// The panic message (or else the trap's own), then the wasm backtrace.
fn trap_message(err: &wasmtime::Error, panic: Option<String>) -> String {
    let mut message = panic.unwrap_or_else(|| match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{:#}", err.root_cause()),
    });
    if let Some(backtrace) = err.downcast_ref::<WasmBacktrace>() {
        // Its first line is a heading of wasmtime's; ours replaces it.
        message.push_str("\nwasm backtrace:");
        for frame in backtrace.to_string().lines().skip(1) {
            message.push('\n');
            message.push_str(frame);
        }
    }
    message
}
