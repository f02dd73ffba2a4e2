//! A loaded component: compiled (or taken from the cache), linked once into
//! an `InstancePre`, its entries listed, and the WASI settings its tasks get.
//! `task`: the state of one of its tasks, and the future that runs it.

pub(crate) mod engines;
mod load;
pub(crate) mod task;

pub use load::MAX_COMPONENT_SIZE;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use wasmtime::Engine;
use wasmtime::component::ComponentExportIndex;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::bindings::UntypedTaskPre;
use crate::cache::{CacheNote, CodeOrigin};
use crate::engine::AppLimits;
pub use crate::entries::Entry;
use crate::error::{Error, one_line};
use crate::ids::AppId;
use crate::net_policy::NetPolicy;
use crate::say::say;
use crate::wit_types::mtask::task::types::EntryType;
use task::TaskState;
use wasmtime_wasi::p2::bindings::CommandPre;

/// A component ready to run as tasks. Cheap to clone.
#[derive(Clone)]
pub struct Program {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    /// The file name, for messages.
    name: String,
    /// Linked once; each task instantiates from it.
    code: Code,
    /// Cranelift's code, once compiled behind Winch's `code` (shared by
    /// every clone: tasks started after it is set run it).
    upgraded: Arc<OnceLock<Code>>,
    /// The entries `run` dispatches to, with their types.
    entries: Vec<Entry>,
    /// Where the compiled code came from.
    origin: CodeOrigin,
    /// What happened with the cache, if a user may want to hear of it.
    cache_note: Option<CacheNote>,
    /// `argv` of its tasks (the first is the program's name).
    args: Vec<String>,
    /// Environment variables of its tasks.
    env: Vec<(String, String)>,
    /// The app its tasks belong to: each load is an app of its own.
    app: AppId,
    /// What its tasks may bind and connect to.
    net: Arc<NetPolicy>,
    /// Whether a refused WASI socket address was reported on stderr (the
    /// first is; the guest sees only `access-denied`).
    refusal_told: Arc<AtomicBool>,
    /// The most linear memory each of its tasks may have.
    max_memory: usize,
    /// Host directories its tasks see.
    dirs: Vec<DirGrant>,
    /// Its own limits; `None`: the host's defaults.
    limits: Option<AppLimits>,
    /// Whether the tasks the embedder adds read the host's stdin.
    stdin: bool,
    /// The tenant whose named queues and remote spawns its tasks share in
    /// cluster mode (docs/design.md §10).
    tenant: Arc<str>,
    /// The label before each line its tasks write to stdout and stderr;
    /// `None`: their output goes out as written.
    output_label: Option<Arc<str>>,
    /// Its tasks' output lines are `tracing` events, not writes.
    output_events: bool,
    /// The span its tasks' spans are made in (a tenant's); disabled: none.
    span: tracing::Span,
    /// Names the component's bytes across hosts: remote spawns go to hosts
    /// that run the same component.
    digest: Arc<str>,
}

/// What kind of component a program is, linked once.
#[derive(Clone)]
pub(crate) enum Code {
    /// An mtask task: exports `entries` and `run`, and, if built by an SDK
    /// of WIT 0.1.2 or later, the typed exports.
    Task(UntypedTaskPre<TaskState>, Option<Typed>),
    /// A `wasi:cli` command: its one entry, `main`, is `wasi:cli/run`.
    Command(CommandPre<TaskState>),
}

impl Code {
    /// The engine its stores must come from.
    pub(crate) fn engine(&self) -> &Engine {
        match self {
            Code::Task(pre, _) => pre.engine(),
            Code::Command(pre) => pre.engine(),
        }
    }
}

/// Where the exports that WIT 0.1.2 added are in a component.
#[derive(Clone, Copy)]
pub(crate) struct Typed {
    /// `entry-types`: the entries with their types.
    pub(crate) entry_types: ComponentExportIndex,
    /// `run-json`: `run` with JSON in and out.
    pub(crate) run_json: ComponentExportIndex,
}

impl Typed {
    /// Where they are in `component`, if it has both.
    pub(crate) fn find(component: &wasmtime::component::Component) -> Option<Typed> {
        Some(Typed {
            entry_types: component.get_export_index(None, "entry-types")?,
            run_json: component.get_export_index(None, "run-json")?,
        })
    }
}

/// The one entry of a `wasi:cli` command.
const COMMAND_ENTRY: &str = "main";

/// A host directory that tasks see at a path of their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: std::path::PathBuf,
    /// Where tasks see it (`/data`, say).
    pub guest: String,
    /// Whether tasks may create, change and delete files in it.
    pub writable: bool,
}

impl std::str::FromStr for DirGrant {
    type Err = String;

    /// `HOST_PATH[::GUEST_PATH]`, read-only; the guest path defaults to the host path.
    fn from_str(text: &str) -> Result<Self, String> {
        let (host, guest) = text.split_once("::").unwrap_or((text, text));
        if host.is_empty() || guest.is_empty() {
            return Err(format!("`{text}` is not HOST_PATH[::GUEST_PATH]"));
        }
        Ok(DirGrant {
            host: host.into(),
            guest: guest.to_string(),
            writable: false,
        })
    }
}

/// How long a component may run while its entries are listed.
const STARTUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The tenant of a program not given one.
pub const DEFAULT_TENANT: &str = "default";

/// The id of the next app loaded.
static NEXT_APP: AtomicU64 = AtomicU64::new(1);

impl Program {
    /// The same program with `args` after the program name in its tasks' `argv`.
    pub fn with_args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.args.truncate(1);
        inner.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The same program with these environment variables in its tasks.
    pub fn with_env(
        mut self,
        env: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>,
    ) -> Self {
        Arc::make_mut(&mut self.inner).env =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self
    }

    /// The same program with network capabilities: its tasks may bind and
    /// connect to what `policy` grants, and nothing else (the default).
    pub fn with_network(mut self, policy: NetPolicy) -> Self {
        Arc::make_mut(&mut self.inner).net = Arc::new(policy);
        self
    }

    /// The same program with these directories visible to its tasks (cap-std
    /// keeps them inside: `..`, absolute paths and symlinks cannot escape).
    /// Fails if a host directory cannot be opened.
    pub fn with_dirs(mut self, dirs: Vec<DirGrant>) -> Result<Self, Error> {
        for dir in &dirs {
            if let Err(e) = std::fs::read_dir(&dir.host) {
                return Err(Error::Read {
                    path: dir.host.clone(),
                    source: e,
                });
            }
        }
        Arc::make_mut(&mut self.inner).dirs = dirs;
        Ok(self)
    }

    /// The same program with a lower (or, up to the engine's pool, higher)
    /// linear-memory limit per task.
    pub fn with_max_memory(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.inner).max_memory = bytes;
        self
    }

    /// The same program with limits of its own (a tenant's share of the
    /// host) instead of the host's defaults.
    pub fn with_limits(mut self, limits: AppLimits) -> Self {
        Arc::make_mut(&mut self.inner).limits = Some(limits);
        self
    }

    /// The same program with the host process's stdin given to the tasks
    /// added with [`TaskManager::add`](crate::TaskManager::add) (not to
    /// the children they spawn, which read nothing). A read waits in its
    /// own task only: the others keep running.
    pub fn with_stdin(mut self, stdin: bool) -> Self {
        Arc::make_mut(&mut self.inner).stdin = stdin;
        self
    }

    /// The same program in tenant `tenant`'s namespace: in cluster mode,
    /// its named queues and remote spawns are the tenant's, shared by every
    /// host that runs the tenant (default: `default`).
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).tenant = tenant.into().into();
        self
    }

    /// The same program with its tasks' stdout and stderr in whole lines,
    /// each after `[label] ` (`serve` labels a tenant's with its name): the
    /// lines of tasks writing at once then never mix within a line. A line
    /// waits for its newline (up to 64 KiB) or its task's end.
    pub fn with_output_label(mut self, label: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).output_label = Some(label.into().into());
        self
    }

    /// The same program with each line its tasks write to stdout or
    /// stderr made a `tracing` event (target `mtask::stdout` or
    /// `mtask::stderr`, level info, the line its message, in the task's
    /// span) instead of written: what `serve --log-format json` does. A
    /// line is whole, as with [`Program::with_output_label`].
    pub fn with_output_events(mut self) -> Self {
        Arc::make_mut(&mut self.inner).output_events = true;
        self
    }

    /// The same program with its tasks' spans made inside `span` (a span
    /// per tenant, in `serve`): each task runs in a span `task` with
    /// fields `task` (its id) and `entry`, whose parent this is.
    pub fn with_log_span(mut self, span: tracing::Span) -> Self {
        Arc::make_mut(&mut self.inner).span = span;
        self
    }

    /// The span its tasks' spans are made in.
    pub(crate) fn log_span(&self) -> &tracing::Span {
        &self.inner.span
    }

    /// Its tenant's name (docs/design.md §10).
    pub fn tenant(&self) -> &str {
        &self.inner.tenant
    }

    /// Its tenant's name, shared.
    pub(crate) fn tenant_name(&self) -> &Arc<str> {
        &self.inner.tenant
    }

    /// What names its component across hosts: a hash of its bytes.
    pub(crate) fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Whether the tasks the embedder adds read the host's stdin.
    pub(crate) fn stdin(&self) -> bool {
        self.inner.stdin
    }

    pub(crate) fn limits(&self) -> Option<AppLimits> {
        self.inner.limits
    }

    pub(crate) fn max_memory(&self) -> usize {
        self.inner.max_memory
    }

    pub(crate) fn net(&self) -> &NetPolicy {
        &self.inner.net
    }

    /// The same program under another name, for messages and listings.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).name = name.into();
        self
    }

    /// The file name it was loaded from (or the name given with `with_name`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The entries its tasks can run, with their types.
    pub fn entries(&self) -> &[Entry] {
        &self.inner.entries
    }

    /// Whether its tasks can be started with a JSON argument
    /// ([`TaskManager::add_json`](crate::TaskManager::add_json)): built by
    /// an SDK of WIT 0.1.2 or later.
    pub fn takes_json(&self) -> bool {
        matches!(self.code(), Code::Task(_, Some(_)))
    }

    /// Whether it is a `wasi:cli` command (run as one task, `main`).
    pub(crate) fn is_command(&self) -> bool {
        matches!(self.code(), Code::Command(_))
    }

    /// Whether its code was compiled in this run or taken from the cache.
    pub fn origin(&self) -> CodeOrigin {
        self.inner.origin
    }

    /// What happened with the cache while loading, if anything needs
    /// saying: a directory not private enough to use, a bad entry replaced,
    /// code that could not be stored.
    pub fn cache_note(&self) -> Option<&CacheNote> {
        self.inner.cache_note.as_ref()
    }

    pub(crate) fn app(&self) -> AppId {
        self.inner.app
    }

    pub(crate) fn has_entry(&self, entry: &str) -> bool {
        self.inner.entries.iter().any(|e| e.name == entry)
    }

    /// Whether its tasks run Cranelift's code: loaded from the cache,
    /// compiled by Cranelift, or compiled by Winch and since by Cranelift
    /// behind it (docs/design.md §11).
    pub fn optimized(&self) -> bool {
        self.inner.origin != CodeOrigin::Baseline || self.inner.upgraded.get().is_some()
    }

    /// The code a task started now runs: Cranelift's once there is some.
    pub(crate) fn code(&self) -> &Code {
        self.inner.upgraded.get().unwrap_or(&self.inner.code)
    }

    /// A fresh WASI context: stdout and stderr inherited (or labelled, a
    /// line at a time: [`Program::with_output_label`]), args, env and
    /// directories as configured, the host's stdin if `stdin` (else none:
    /// a read finds its end), TCP and UDP sockets under the app's network
    /// rules (`iface::wasi_sockets`).
    pub(crate) fn wasi_ctx(&self, stdin: bool) -> WasiCtx {
        let mut builder = WasiCtxBuilder::new();
        if stdin {
            builder.inherit_stdin();
        }
        let (net, told, name) = (
            self.inner.net.clone(),
            self.inner.refusal_told.clone(),
            self.inner.name.clone(),
        );
        use crate::output::{Labelled, Sink};
        match &self.inner.output_label {
            _ if self.inner.output_events => {
                builder.stdout(Labelled::new("", Sink::Events { stderr: false }));
                builder.stderr(Labelled::new("", Sink::Events { stderr: true }));
            }
            Some(label) => {
                builder.stdout(Labelled::new(label, Sink::Stdout));
                builder.stderr(Labelled::new(label, Sink::Stderr));
            }
            None => {
                builder.inherit_stdout().inherit_stderr();
            }
        }
        builder
            .args(&self.inner.args)
            .envs(&self.inner.env)
            .allow_tcp(true)
            .allow_udp(true)
            // Names are checked per call (`iface::wasi_sockets`).
            .allow_ip_name_lookup(true)
            .socket_addr_check(move |addr, used| {
                let checked = net.check_wasi(addr, used);
                // The first refusal is a warning; the rest are debug
                // events, one each.
                match &checked {
                    Err(why) if !told.swap(true, Ordering::Relaxed) => say!(
                        warn,
                        { target: "mtask::denied", %addr, },
                        "{name}: a WASI socket was refused: {why} \
                         (further refusals are not shown)"
                    ),
                    Err(why) => tracing::debug!(
                        target: "mtask::denied",
                        %addr,
                        "{name}: a WASI socket was refused: {why}"
                    ),
                    Ok(()) => {}
                }
                Box::pin(std::future::ready(checked.is_ok()))
            });
        for dir in &self.inner.dirs {
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            // Checked when granted; a directory removed since is left out
            // (the task then finds no such path).
            let _ = builder.preopened_dir(&dir.host, &dir.guest, perms);
        }
        builder.build()
    }

    /// Instantiates once, outside any scheduler, to ask for the entry
    /// names; a command has one, `main`, and is not started here.
    fn list_entries(&self) -> Result<Vec<Entry>, Error> {
        let (pre, typed) = match &self.inner.code {
            Code::Task(pre, typed) => (pre, *typed),
            Code::Command(_) => return Ok(vec![Entry::untyped(COMMAND_ENTRY.to_string())]),
        };
        let mut store = TaskState::store(pre.engine(), TaskState::new(self));
        // No scheduler runs here to preempt it: a start-up that loops is
        // stopped after a while instead of hanging the load.
        let started = std::time::Instant::now();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if started.elapsed() > STARTUP_LIMIT {
                wasmtime::bail!(
                    "it ran for more than {} s while starting",
                    STARTUP_LIMIT.as_secs()
                );
            }
            Ok(wasmtime::UpdateDeadline::Continue(1))
        });
        // WASI calls made at start-up (a sleep, say) need Tokio's context.
        let _tokio = crate::engine::tokio_runtime().enter();
        let listed = block_on(async {
            let instance = pre.instance_pre().instantiate_async(&mut store).await?;
            let Some(typed) = typed else {
                let names = crate::bindings::UntypedTask::new(&mut store, &instance)?
                    .call_entries(&mut store)
                    .await?;
                return Ok(names.into_iter().map(Entry::untyped).collect());
            };
            let list = instance
                .get_typed_func::<(), (Vec<EntryType>,)>(&mut store, typed.entry_types)?
                .call_async(&mut store, ())
                .await?
                .0;
            Ok(list
                .into_iter()
                .map(|e| Entry {
                    name: e.name,
                    arg: e.arg,
                    result: e.result,
                })
                .collect())
        });
        listed.map_err(|e| Error::Startup {
            name: self.inner.name.clone(),
            message: one_line(&e),
        })
    }
}

/// Drives a future that never waits on the scheduler (instantiation and
/// `entries`) to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
