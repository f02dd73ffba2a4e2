//! The errors of the embedding API, each a one-line message that names
//! what is wrong.

use std::fmt;
use std::path::PathBuf;

/// A component that cannot be used, or a task that cannot be added.
#[derive(Debug)]
pub enum Error {
    /// The file cannot be read.
    Read {
        /// The path given.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The path is not a regular file (a directory, a device, a pipe).
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// The file is larger than any component mtask loads.
    TooBig {
        /// The path given.
        path: PathBuf,
        /// Its size in bytes (at least; it may still grow).
        size: u64,
        /// The most a component may be.
        max: u64,
    },
    /// The bytes are not WebAssembly.
    NotWasm {
        /// The file name.
        name: String,
    },
    /// A core module where a component is needed.
    CoreModule {
        /// The file name.
        name: String,
    },
    /// WebAssembly that wasmtime rejects.
    Invalid {
        /// The file name.
        name: String,
        /// What wasmtime said.
        message: String,
    },
    /// The component imports something the host does not provide.
    MissingImport {
        /// The file name.
        name: String,
        /// What wasmtime said.
        message: String,
    },
    /// The component is neither an mtask task (exports `entries` and
    /// `run`) nor a `wasi:cli` command (exports `wasi:cli/run`).
    NotATask {
        /// The file name.
        name: String,
        /// What wasmtime said.
        message: String,
    },
    /// The component traps while starting or listing its entries.
    Startup {
        /// The file name.
        name: String,
        /// What wasmtime said.
        message: String,
    },
    /// `add` named an entry the component does not have.
    UnknownEntry {
        /// The file name.
        name: String,
        /// The entry asked for.
        entry: String,
        /// The entries the component has, with their types.
        entries: Vec<String>,
    },
    /// A JSON argument for a component that takes none: built by an SDK
    /// older than WIT 0.1.2.
    NoJson {
        /// The file name.
        name: String,
        /// Whether it is a `wasi:cli` command, which takes only its `argv`.
        command: bool,
    },
    /// A setting that cannot be honoured.
    Config(String),
    /// As many tasks are alive as allowed.
    Limit(String),
    /// The engine or the event loop failed.
    Host(String),
    /// The host cannot join its cluster (docs/design.md §10): the NATS
    /// server cannot be reached, refuses the credentials, or has no JetStream.
    Cluster(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Error::NotAFile { path } => write!(
                f,
                "{} is not a regular file (a component is a .wasm file)",
                path.display()
            ),
            Error::TooBig { path, size, max } => write!(
                f,
                "{} is {} MiB; a component may be at most {} MiB",
                path.display(),
                size >> 20,
                max >> 20
            ),
            Error::NotWasm { name } => write!(f, "{name} is not a WebAssembly file"),
            Error::CoreModule { name } => write!(
                f,
                "{name} is a core WebAssembly module, not a component: build it for \
                 wasm32-wasip2, or wrap it with `wasm-tools component new`"
            ),
            Error::Invalid { name, message } => {
                write!(f, "{name} is not a valid component: {message}")
            }
            Error::MissingImport { name, message } => {
                write!(
                    f,
                    "{name} needs an import that mtask-host does not provide: {message}"
                )
            }
            Error::NotATask { name, message } => {
                write!(f, "{name} cannot run: {message}")
            }
            Error::Startup { name, message } => write!(f, "{name} failed to start: {message}"),
            Error::UnknownEntry {
                name,
                entry,
                entries,
            } => {
                write!(
                    f,
                    "{name} has no entry `{entry}` (its entries: {})",
                    entries.join(", ")
                )
            }
            Error::NoJson {
                name,
                command: true,
            } => write!(
                f,
                "{name} is a `wasi:cli` command, which takes no JSON argument: give it \
                 arguments after `--` instead"
            ),
            Error::NoJson {
                name,
                command: false,
            } => write!(
                f,
                "{name} takes no JSON argument: it was built by an mtask SDK older than \
                 WIT 0.1.2 (rebuild it with the current SDK)"
            ),
            Error::Config(message) => f.write_str(message),
            Error::Limit(message) => write!(f, "limit reached: {message}"),
            Error::Host(message) => write!(f, "host error: {message}"),
            Error::Cluster(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

/// An error and its causes on one line, outermost first, without the wasm
/// backtrace that wasmtime attaches as a cause of its own.
pub(crate) fn one_line(err: &wasmtime::Error) -> String {
    err.chain()
        .map(|cause| cause.to_string())
        .filter(|text| !text.starts_with("error while executing at wasm backtrace"))
        .map(|text| text.lines().next().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
