//! Write [mtask](https://crates.io/crates/mtask-host) tasks in Rust.
//!
//! A task is plain blocking code: [`sleep`], [`yield_now`], [`Task::join`]
//! suspend only the calling task while the host runs the others. Each task
//! runs in its own instance of the component, so tasks share nothing but
//! what they pass each other: arguments, results, and handles.
//!
//! # Layout
//!
//! - entries: the [`entries!`] macro names the functions the host may run
//!   as tasks; arguments and results travel as bytes (serde + postcard).
//! - [`spawn`], [`call`] and [`Task`]: child tasks, joined with or without a
//!   timeout, or cancelled.
//! - [`yield_now`], [`sleep`], [`current_id`]: the scheduling calls.
//! - `queue`: [`Queue`], bounded FIFO queues between tasks, with timeouts,
//!   tags and selective get; named queues shared by the tasks of an app.
//! - `net`: [`TcpListener`], [`TcpStream`] (with `std::io::Read` and
//!   `Write`), [`UdpSocket`], as in `std::net`, plus `_timeout` variants.
//! - [`Handle`], [`spawn_with`], [`take_handles`]: moving tasks, queues and
//!   sockets to a child.
//! - [`Error`] and [`TaskError`]: what a call or a child can fail with.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! fn main() -> mtask::Result<()> {
//!     let child = mtask::spawn::<_, u32>("square", &7u32)?;
//!     mtask::sleep(Duration::from_millis(1));
//!     println!("7² = {}", child.join()?);
//!     Ok(())
//! }
//!
//! fn square(n: u32) -> mtask::Result<u32> {
//!     mtask::yield_now();
//!     Ok(n * n)
//! }
//!
//! mtask::entries!(main, square);
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "task",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "mtask::bindings",
    });
}

use bindings::mtask::task::{tasks as wit, types as wit_types};

mod entry;
mod monitor;
mod net;
mod queue;
#[doc(hidden)]
pub use entry::__private;
pub use entry::{EntryFn, EntryOutput};
pub use monitor::{TaskMonitor, link, monitor};
pub use net::{TcpListener, TcpStream, UdpSocket};
pub use queue::{Queue, RawQueue};

/// The result of an mtask call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The call's deadline passed; it had no effect.
    Timeout {
        /// What timed out: `Queue::put_timeout`, `Task::join_timeout`, ...
        call: &'static str,
        /// The timeout it was given.
        after: Duration,
    },
    /// The call was withdrawn because the task is being cancelled.
    Cancelled,
    /// The other side is closed.
    Closed,
    /// The sandbox refused it; the text says what.
    Denied(String),
    /// A limit was reached; the text names it.
    Limit(String),
    /// The call makes no sense (an unknown entry, a task joined twice, ...).
    Invalid(String),
    /// The host's operating system reported an error.
    Io(String),
    /// A child task ended without a value.
    Task {
        /// The entry the child ran.
        entry: String,
        /// How it ended.
        error: TaskError,
    },
    /// An argument or a result could not be encoded or decoded.
    Codec(String),
}

/// How a task ended when it did not return a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskError {
    /// Its entry returned an error with this message.
    Failed(String),
    /// It trapped (a panic, an out-of-bounds access, ...): the message and
    /// the wasm backtrace.
    Trapped(String),
    /// It was cancelled.
    Cancelled,
    /// It went over a limit of the sandbox.
    Limit(String),
}

impl TaskError {
    /// The message alone, without the kind of failure.
    pub fn message(&self) -> &str {
        match self {
            TaskError::Failed(m) | TaskError::Trapped(m) | TaskError::Limit(m) => m,
            TaskError::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Failed(m) => write!(f, "failed: {m}"),
            TaskError::Trapped(m) => write!(f, "trapped: {m}"),
            TaskError::Cancelled => write!(f, "was cancelled"),
            TaskError::Limit(m) => write!(f, "went over a limit: {m}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { call, after } if after.is_zero() => write!(f, "{call} timed out"),
            Error::Timeout { call, after } => write!(f, "{call} timed out after {after:?}"),
            Error::Cancelled => write!(f, "cancelled"),
            Error::Closed => write!(f, "closed"),
            Error::Denied(m) => write!(f, "denied: {m}"),
            Error::Limit(m) => write!(f, "limit reached: {m}"),
            Error::Invalid(m) => write!(f, "invalid: {m}"),
            Error::Io(m) => write!(f, "i/o error: {m}"),
            Error::Task { entry, error } => write!(f, "task `{entry}` {error}"),
            Error::Codec(m) => write!(f, "cannot encode or decode a value: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<wit_types::Error> for Error {
    fn from(e: wit_types::Error) -> Self {
        match e {
            // Only a call given a timeout can time out, and each of those
            // says which it is (`timed`).
            wit_types::Error::Timeout => Error::Timeout {
                call: "a call",
                after: Duration::ZERO,
            },
            wit_types::Error::Cancelled => Error::Cancelled,
            wit_types::Error::Closed => Error::Closed,
            wit_types::Error::Denied(m) => Error::Denied(m),
            wit_types::Error::Limit(m) => Error::Limit(m),
            wit_types::Error::Invalid(m) => Error::Invalid(m),
            wit_types::Error::Io(m) => Error::Io(m),
        }
    }
}

impl From<wit_types::TaskError> for TaskError {
    fn from(e: wit_types::TaskError) -> Self {
        match e {
            wit_types::TaskError::Failed(m) => TaskError::Failed(m),
            wit_types::TaskError::Trapped(m) => TaskError::Trapped(m),
            wit_types::TaskError::Cancelled => TaskError::Cancelled,
            wit_types::TaskError::Limit(m) => TaskError::Limit(m),
        }
    }
}

/// Lets every other runnable task run once, then continues: the plain
/// `yield` of multitask.
pub fn yield_now() {
    wit::yield_now();
}

/// Suspends this task for at least `duration`; other tasks run meanwhile.
pub fn sleep(duration: Duration) {
    wit::sleep(nanos(duration));
}

/// This task's id, unique within the host run.
pub fn current_id() -> u64 {
    wit::current_id()
}

/// The result of the host call behind `call`, which was given `timeout`:
/// a timeout names the call.
pub(crate) fn timed<T>(
    call: &'static str,
    timeout: Option<Duration>,
    result: std::result::Result<T, wit_types::Error>,
) -> Result<T> {
    result.map_err(|e| match e {
        wit_types::Error::Timeout => Error::Timeout {
            call,
            after: timeout.unwrap_or_default(),
        },
        e => e.into(),
    })
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Encodes a value as the bytes that travel between tasks.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Codec(e.to_string()))
}

/// Decodes bytes made by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Codec(e.to_string()))
}

/// A handle that can be handed to a child at spawn: ownership moves.
pub enum Handle {
    /// A child task, which the receiver may join or cancel.
    Task(RawTask),
    /// A queue, which the receiver may use as a [`Queue`] of any item type.
    Queue(RawQueue),
    /// A listening TCP socket.
    TcpListener(TcpListener),
    /// A TCP connection.
    TcpStream(TcpStream),
    /// A UDP socket.
    UdpSocket(UdpSocket),
}

impl Handle {
    fn into_wit(self) -> wit::Handle {
        match self {
            Handle::Task(raw) => wit::Handle::Task(raw.handle),
            Handle::Queue(raw) => wit::Handle::Queue(raw.0),
            Handle::TcpListener(l) => wit::Handle::TcpListener(l.0),
            Handle::TcpStream(s) => wit::Handle::TcpStream(s.0),
            Handle::UdpSocket(u) => wit::Handle::UdpSocket(u.0),
        }
    }

    fn from_wit(handle: wit::Handle) -> Self {
        match handle {
            wit::Handle::Task(handle) => Handle::Task(RawTask {
                entry: handle.entry(),
                handle,
            }),
            wit::Handle::Queue(queue) => Handle::Queue(RawQueue(queue)),
            wit::Handle::TcpListener(l) => Handle::TcpListener(TcpListener(l)),
            wit::Handle::TcpStream(s) => Handle::TcpStream(TcpStream(s)),
            wit::Handle::UdpSocket(u) => Handle::UdpSocket(UdpSocket(u)),
        }
    }
}

/// A child task without a result type: what travels in a [`Handle`].
pub struct RawTask {
    handle: wit::Task,
    entry: String,
}

/// A handle on a child task whose entry returns `R`.
///
/// Dropping it detaches the child: it runs on, and if it fails, the host
/// reports that on stderr.
pub struct Task<R> {
    raw: RawTask,
    result: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> Task<R> {
    /// The child's id.
    pub fn id(&self) -> u64 {
        self.raw.handle.id()
    }

    /// The entry the child runs.
    pub fn entry(&self) -> &str {
        &self.raw.entry
    }

    /// Waits for the child to end and returns its value, or
    /// [`Error::Task`] saying how it failed.
    pub fn join(self) -> Result<R> {
        self.join_inner(None)
    }

    /// Like [`join`](Self::join), but gives up with [`Error::Timeout`] after
    /// `timeout`; the child runs on and can be joined again.
    pub fn join_timeout(&self, timeout: Duration) -> Result<R> {
        self.join_inner(Some(timeout))
    }

    fn join_inner(&self, timeout: Option<Duration>) -> Result<R> {
        // A task handed over was not checked at its spawn against `R`.
        entry::check_result::<R>(&self.raw.entry)?;
        let joined = self.raw.handle.join(timeout.map(nanos));
        match timed("Task::join_timeout", timeout, joined)? {
            Ok(bytes) => decode(&bytes),
            Err(error) => Err(Error::Task {
                entry: self.raw.entry.clone(),
                error: error.into(),
            }),
        }
    }

    /// Ends the child now if it has not ended: it runs no further, and
    /// joining it gives [`TaskError::Cancelled`].
    pub fn cancel(&self) {
        self.raw.handle.cancel();
    }

    /// Like [`cancel`](Self::cancel), and also ends every task the child
    /// started that has not ended, and every task those started, down the
    /// tree. (`cancel` leaves them running, detached.)
    pub fn cancel_tree(&self) {
        self.raw.handle.cancel_tree();
    }

    /// Turns it into a [`Handle`] to give to another child.
    pub fn into_handle(self) -> Handle {
        Handle::Task(self.raw)
    }

    /// Takes a handle received with [`take_handles`] as a task returning
    /// `R`; its join checks that its entry returns an `R`.
    pub fn from_raw(raw: RawTask) -> Self {
        Task {
            raw,
            result: PhantomData,
        }
    }
}

/// Starts a child task running `entry` (a name given to [`entries!`]) with
/// `arg`. It first runs when this task yields or waits.
///
/// `A` and `R` must be the entry's own argument and result types (read as
/// [`entries!`] says: `&str` passes for `String`): otherwise nothing is
/// spawned, and the error is [`Error::Invalid`] naming the entry and both
/// types (`entry `square` takes u64, not String`).
pub fn spawn<A: Serialize + ?Sized, R: DeserializeOwned>(entry: &str, arg: &A) -> Result<Task<R>> {
    spawn_with(entry, arg, Vec::new())
}

/// Like [`spawn`], and hands `handles` to the child, which gets them from
/// [`take_handles`]. This task no longer holds them.
pub fn spawn_with<A: Serialize + ?Sized, R: DeserializeOwned>(
    entry: &str,
    arg: &A,
    handles: Vec<Handle>,
) -> Result<Task<R>> {
    spawn_at(Placement::Here, entry, arg, handles)
}

/// Where a child task may run: [`Placement::Here`], or
/// [`Placement::Anywhere`] in the host's cluster (this host outside one).
pub use wit::Placement;

/// Like [`spawn_with`], placed as `placement` says. A child placed
/// anywhere in a cluster runs on some host that runs this same component;
/// it runs at least once (again from its entry if its host dies: see
/// [`spawn_key`]), and only queues opened by name can be handed to it.
pub fn spawn_at<A: Serialize + ?Sized, R: DeserializeOwned>(
    placement: Placement,
    entry: &str,
    arg: &A,
    handles: Vec<Handle>,
) -> Result<Task<R>> {
    entry::check_spawn::<A, R>(entry)?;
    let payload = encode(arg)?;
    let handles: Vec<wit::Handle> = handles.into_iter().map(Handle::into_wit).collect();
    let handle = wit::spawn_at(entry, &payload, handles, placement)?;
    Ok(Task {
        raw: RawTask {
            handle,
            entry: entry.to_string(),
        },
        result: PhantomData,
    })
}

/// Runs `entry` as a child task and waits for its value: the `yield child()`
/// of multitask.
pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(entry: &str, arg: &A) -> Result<R> {
    spawn(entry, arg)?.join()
}

/// Starts a child task running the entry function `entry` itself, with the
/// argument and result types its signature gives, so that the compiler
/// checks them: `spawn_fn(square, &7u64)` for `fn square(n: u64) ->
/// Result<u64, E>` gives a `Task<u64>`; an entry without an argument takes
/// `&()`.
///
/// The entry's name is the function's own, which is how [`entries!`] names
/// it; a function renamed on import (`use a::f as g`) is not found by it.
/// A function that is not an entry is refused with [`Error::Invalid`] when
/// called; [`spawn_fn!`] refuses it at compile time.
pub fn spawn_fn<M, F>(entry: F, arg: &F::Arg) -> Result<Task<F::Value>>
where
    F: EntryFn<M>,
    F::Arg: Serialize,
    F::Value: DeserializeOwned,
{
    spawn_fn_with(entry, arg, Vec::new())
}

/// Like [`spawn_fn`], and hands `handles` to the child (see [`spawn_with`]).
pub fn spawn_fn_with<M, F>(_entry: F, arg: &F::Arg, handles: Vec<Handle>) -> Result<Task<F::Value>>
where
    F: EntryFn<M>,
    F::Arg: Serialize,
    F::Value: DeserializeOwned,
{
    spawn_with(fn_name::<F>(), arg, handles)
}

/// Like [`spawn_fn`], for a child that may run on any host of the
/// cluster (see [`spawn_at`]); on this host outside a cluster.
pub fn spawn_fn_anywhere<M, F>(entry: F, arg: &F::Arg) -> Result<Task<F::Value>>
where
    F: EntryFn<M>,
    F::Arg: Serialize,
    F::Value: DeserializeOwned,
{
    spawn_fn_anywhere_with(entry, arg, Vec::new())
}

/// Like [`spawn_fn_anywhere`], and hands `handles` (queues opened by
/// name) to the child.
pub fn spawn_fn_anywhere_with<M, F>(
    _entry: F,
    arg: &F::Arg,
    handles: Vec<Handle>,
) -> Result<Task<F::Value>>
where
    F: EntryFn<M>,
    F::Arg: Serialize,
    F::Value: DeserializeOwned,
{
    spawn_at(Placement::Anywhere, fn_name::<F>(), arg, handles)
}

/// The key of the spawn that started this task, if it was placed anywhere
/// in a cluster: the same each time that spawn runs (a host died and
/// another ran it again), to make the task's effects idempotent.
pub fn spawn_key() -> Option<String> {
    wit::spawn_key()
}

/// Runs the entry function `entry` as a child task and waits for its value,
/// with the types checked as for [`spawn_fn`].
pub fn call_fn<M, F>(entry: F, arg: &F::Arg) -> Result<F::Value>
where
    F: EntryFn<M>,
    F::Arg: Serialize,
    F::Value: DeserializeOwned,
{
    spawn_fn(entry, arg)?.join()
}

/// The name of the function item `F`: the last segment of its path, which
/// is what `stringify!` gives [`entries!`] for the same function.
fn fn_name<F>() -> &'static str {
    let path = std::any::type_name::<F>();
    path.rsplit("::").next().unwrap_or(path)
}

/// The handles the parent handed to this task at spawn (once; later calls
/// return none), in the order given. Typed handles are made from them:
///
/// ```no_run
/// use mtask::{Handle, Queue, Task};
///
/// fn worker() -> mtask::Result<()> {
///     for handle in mtask::take_handles() {
///         match handle {
///             Handle::Queue(raw) => Queue::<String>::from_raw(raw).put(&"hello".into())?,
///             Handle::Task(raw) => println!("{}", Task::<u64>::from_raw(raw).join()?),
///             _ => {}
///         }
///     }
///     Ok(())
/// }
/// # fn main() {}
/// # mtask::entries!(main, worker);
/// ```
pub fn take_handles() -> Vec<Handle> {
    wit::take_handles()
        .into_iter()
        .map(Handle::from_wit)
        .collect()
}
