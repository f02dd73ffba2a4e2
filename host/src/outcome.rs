//! How a task's end is told: from a wasmtime call result to an [`Outcome`],
//! and from a [`TaskError`] to a message for people.

use wasmtime::WasmBacktrace;

use crate::bindings::mtask::task::types::TaskError;
use crate::scheduler::Outcome;

/// The outcome of a task whose `run` call returned `result`.
///
/// `panic` is the message the guest reported just before trapping, if any.
pub(crate) fn from_call(result: wasmtime::Result<Result<Vec<u8>, String>>, panic: Option<String>) -> Outcome {
    match result {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(message)) => Err(TaskError::Failed(message)),
        Err(err) if err.is::<wasmtime::PoolConcurrencyLimitError>() => {
            Err(TaskError::Limit(format!("no instance slot is free: {}", err.root_cause())))
        }
        Err(err) => Err(TaskError::Trapped(trap_message(&err, panic))),
    }
}

/// The panic message (or else the trap's own), then the wasm backtrace.
fn trap_message(err: &wasmtime::Error, panic: Option<String>) -> String {
    let mut message = panic.unwrap_or_else(|| match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("wasm trap: {trap}"),
        None => format!("{:#}", err.root_cause()),
    });
    if let Some(backtrace) = err.downcast_ref::<WasmBacktrace>() {
        message.push_str("\nwasm backtrace:\n");
        message.push_str(backtrace.to_string().trim_end());
    }
    message
}

/// One phrase that completes "task N (`entry`) ...".
pub fn describe(error: &TaskError) -> String {
    match error {
        TaskError::Failed(message) => format!("failed: {message}"),
        TaskError::Trapped(message) => format!("trapped: {message}"),
        TaskError::Cancelled => "was cancelled".to_string(),
        TaskError::Limit(message) => format!("went over a limit: {message}"),
    }
}
