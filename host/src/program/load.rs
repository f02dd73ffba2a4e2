//! Loading a component (docs/design.md §11): read, checked, its code taken
//! from the cache or compiled, linked, its entries listed.
//!
//! A component missing from the cache is compiled by Cranelift before it
//! runs, unless the host tiers: then Winch compiles it (several times
//! faster) and it runs at once, while Cranelift compiles it behind for the
//! cache, in a thread or in a detached process; when that is done, the
//! tasks started afterwards run Cranelift's code (`Program::code`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use wasmtime::component::{Component, Linker};

use super::engines::{Engines, Tier};
use super::task::TaskState;
use super::{Code, DEFAULT_TENANT, Entry, Inner, NEXT_APP, Program};
use crate::bindings::UntypedTaskPre;
use crate::cache::{self, CacheNote, CodeOrigin, Lookup};
use crate::engine::Tiering;
use crate::error::{Error, one_line};
use crate::say::say;
use wasmtime_wasi::p2::bindings::CommandPre;

impl Program {
    /// Reads, compiles (or loads from the cache) and links the component at `path`.
    pub(crate) fn from_file(engines: &Engines, path: &Path) -> Result<Self, Error> {
        let bytes = map_app(path)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self::load(engines, &name, &bytes, Some(path))
    }

    /// Like [`Program::from_file`] for bytes already in memory; `name` is used in messages.
    pub(crate) fn from_bytes(engines: &Engines, name: &str, bytes: &[u8]) -> Result<Self, Error> {
        Self::load(engines, name, bytes, None)
    }

    /// Loads `bytes`, read from `source` if from a file.
    fn load(
        engines: &Engines,
        name: &str,
        bytes: &[u8],
        source: Option<&Path>,
    ) -> Result<Self, Error> {
        let name = name.to_string();
        check_header(&name, bytes)?;
        let invalid = |e: wasmtime::Error| Error::Invalid {
            name: name.clone(),
            message: one_line(&e),
        };
        let digest = cache::wasm_digest(bytes);
        let optimized = &engines.optimized;
        let cache_dir = engines.config().cache_dir.as_deref();
        let lookup = cache::lookup(&optimized.engine, cache_dir, &digest);
        // What compiles must not change under the compiler, nor differ
        // from what its digest names: a miss is copied first (a mapped
        // file's copy hashed again), and a compile behind Winch's takes
        // that copy. A hit needs no copy: its code is compiled already.
        let owned: Option<Arc<[u8]>> =
            matches!(lookup, Lookup::Miss { .. } | Lookup::NoCache(_)).then(|| bytes.into());
        let (bytes, digest, lookup) = match &owned {
            Some(copy) => {
                let copied = match source {
                    Some(_) => cache::wasm_digest(copy),
                    None => digest,
                };
                let lookup = if copied == digest {
                    lookup
                } else {
                    cache::lookup(&optimized.engine, cache_dir, &copied)
                };
                (&copy[..], copied, lookup)
            }
            None => (bytes, digest, lookup),
        };
        let (loaded, path) = match lookup {
            Lookup::Hit {
                path,
                component,
                entries,
            } => (
                Loaded::new(component, optimized, CodeOrigin::Cached, None, entries),
                Some(path),
            ),
            Lookup::NoCache(note) => {
                let component = Component::new(&optimized.engine, bytes).map_err(invalid)?;
                let loaded = Loaded::new(component, optimized, CodeOrigin::Compiled, note, None);
                (loaded, None)
            }
            Lookup::Miss { path, note } => {
                let loaded = match baseline(engines, bytes) {
                    Some((component, tier)) => {
                        Loaded::new(component, tier, CodeOrigin::Baseline, note, None)
                    }
                    None => {
                        compile_locked(optimized, bytes, &digest, &path, note).map_err(invalid)?
                    }
                };
                (loaded, Some(path))
            }
        };
        let code = link(&name, &loaded.tier.linker, &loaded.component)?;
        let mut inner = Inner {
            name,
            code,
            upgraded: Arc::default(),
            entries: Vec::new(),
            origin: loaded.origin,
            cache_note: loaded.note,
            args: Vec::new(),
            env: Vec::new(),
            app: NEXT_APP.fetch_add(1, Ordering::Relaxed),
            net: Arc::default(),
            refusal_told: Arc::default(),
            max_memory: engines.config().max_memory as usize,
            dirs: Vec::new(),
            limits: None,
            stdin: false,
            tenant: DEFAULT_TENANT.into(),
            output_label: None,
            output_events: false,
            span: tracing::Span::none(),
            digest: crate::cluster::short_hash(&[&digest.to_hex()]).into(),
        };
        inner.args = vec![inner.name.clone()];
        let mut program = Program {
            inner: Arc::new(inner),
        };
        let listed = loaded.entries.is_none();
        let entries = match loaded.entries {
            Some(entries) => entries,
            None => program.list_entries()?,
        };
        let inner = Arc::make_mut(&mut program.inner);
        inner.entries = entries;
        let Some(path) = path else { return Ok(program) };
        match loaded.origin {
            CodeOrigin::Cached if !listed => {}
            CodeOrigin::Cached => cache::store_entries(&path, &program.inner.entries),
            CodeOrigin::Compiled => {
                if let Err(e) = cache::store(&path, &loaded.component, &inner.entries) {
                    inner.cache_note.get_or_insert(CacheNote::NotStored(e));
                }
            }
            // Only a miss compiles, and a miss was copied.
            CodeOrigin::Baseline => {
                if let Some(copy) = owned.clone() {
                    program.compile_behind(engines, copy, digest, path, source)
                }
            }
        }
        Ok(program)
    }

    /// Has Cranelift compile this program, which runs on Winch's code, for
    /// the cache at `path`, and hand the code to its later tasks.
    fn compile_behind(
        &self,
        engines: &Engines,
        bytes: Arc<[u8]>,
        digest: blake3::Hash,
        path: std::path::PathBuf,
        source: Option<&Path>,
    ) {
        let optimized = &engines.optimized;
        let (engine, linker) = (optimized.engine.clone(), optimized.linker.clone());
        let (name, entries) = (self.inner.name.clone(), self.inner.entries.clone());
        let upgraded = self.inner.upgraded.clone();
        let upgrade = move |component: &Component| {
            if let Ok(code) = link(&name, &linker, component) {
                let _ = upgraded.set(code);
            }
        };
        let detach = match (
            engines.tiering(),
            source,
            engines.config().cache_dir.as_deref(),
        ) {
            (Tiering::Detached(exe), Some(app), Some(dir)) => Some((exe, app, dir)),
            _ => None,
        };
        let Some((exe, app, dir)) = detach else {
            engines.background.submit(Box::new(move || {
                // Another process may be compiling it: wait for it, then
                // take its code rather than compile it twice.
                let _lock = cache::lock(&path, true);
                if let Lookup::Hit { component, .. } =
                    cache::lookup(&engine, path.parent(), &digest)
                {
                    return upgrade(&component);
                }
                if let Ok(component) = Component::new(&engine, &bytes)
                    && cache::store(&path, &component, &entries).is_ok()
                {
                    upgrade(&component);
                }
            }));
            return;
        };
        // While another process compiles it (its lock held), start none.
        let free = matches!(cache::lock(&path, false), Ok(Some(_)));
        let child = free
            .then(|| crate::tier::spawn_detached(exe, app, dir, engines.config()))
            .and_then(|spawned| {
                spawned
                    .map_err(|e| {
                        say!(
                            warn,
                            {},
                            "cannot compile {} in the background: {e}",
                            app.display()
                        )
                    })
                    .ok()
            });
        engines.background.submit(Box::new(move || {
            match child {
                Some(mut child) => {
                    let _ = child.wait();
                }
                // Someone else compiles it: its lock says when it is done.
                None => drop(cache::lock(&path, true)),
            }
            if let Lookup::Hit { component, .. } = cache::lookup(&engine, path.parent(), &digest) {
                upgrade(&component);
            }
        }));
    }
}

/// A component's code, whose engine made it, and what the cache said.
struct Loaded<'a> {
    component: Component,
    tier: &'a Tier,
    origin: CodeOrigin,
    note: Option<CacheNote>,
    /// Its entries, when the cache kept them.
    entries: Option<Vec<Entry>>,
}

impl<'a> Loaded<'a> {
    fn new(
        component: Component,
        tier: &'a Tier,
        origin: CodeOrigin,
        note: Option<CacheNote>,
        entries: Option<Vec<Entry>>,
    ) -> Self {
        Loaded {
            component,
            tier,
            origin,
            note,
            entries,
        }
    }
}

/// `bytes` compiled by Winch, when the host tiers and Winch can compile it
/// (it cannot compile tail calls, GC or exceptions, say).
fn baseline<'a>(engines: &'a Engines, bytes: &[u8]) -> Option<(Component, &'a Tier)> {
    if *engines.tiering() == Tiering::Off {
        return None;
    }
    let tier = engines.baseline()?;
    Component::new(&tier.engine, bytes).ok().map(|c| (c, tier))
}

/// `bytes` compiled by Cranelift, under the entry's lock: if another
/// process compiles it already, its code once it is done.
fn compile_locked<'a>(
    tier: &'a Tier,
    bytes: &[u8],
    digest: &blake3::Hash,
    path: &Path,
    note: Option<CacheNote>,
) -> wasmtime::Result<Loaded<'a>> {
    let _lock = cache::lock(path, true);
    if note.is_none()
        && let Lookup::Hit {
            component, entries, ..
        } = cache::lookup(&tier.engine, path.parent(), digest)
    {
        return Ok(Loaded::new(
            component,
            tier,
            CodeOrigin::Cached,
            None,
            entries,
        ));
    }
    let component = Component::new(&tier.engine, bytes)?;
    Ok(Loaded::new(
        component,
        tier,
        CodeOrigin::Compiled,
        note,
        None,
    ))
}

/// The largest component file mtask loads: ten times the largest one we
/// know of (a Python component, ≈ 40 MB), far below what could exhaust the
/// host's memory.
pub const MAX_COMPONENT_SIZE: u64 = 512 << 20;

/// Maps a component file, refusing what is not a regular file (a device
/// like `/dev/zero` never ends) or is larger than [`MAX_COMPONENT_SIZE`].
///
/// Mapped rather than read: a fresh process pays a page fault per 4 KiB
/// of a new buffer (≈ 20 ms for a 19 MB Python component here), while
/// the mapping shares the pages of the file's cache. The mapping lives
/// only while the component is hashed and looked up in the cache;
/// truncating the file in that time, like truncating a cache entry that
/// wasmtime has mapped, is the operator's to avoid. (What compiles is a copy: `Program::load`.)
fn map_app(path: &Path) -> Result<AppBytes, Error> {
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let not_a_file = || Error::NotAFile {
        path: path.to_owned(),
    };
    // Looked at before opening: opening a named pipe waits for a writer.
    if !std::fs::metadata(path).map_err(read_error)?.is_file() {
        return Err(not_a_file());
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    if meta.len() > MAX_COMPONENT_SIZE {
        return Err(Error::TooBig {
            path: path.to_owned(),
            size: meta.len(),
            max: MAX_COMPONENT_SIZE,
        });
    }
    if meta.len() == 0 {
        return Ok(AppBytes::Empty);
    }
    // SAFETY: a private, read-only mapping of a regular file, dropped once
    // the load is done (see above).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .len(meta.len() as usize)
            .populate()
            .map_copy_read_only(&file)
    }
    .map_err(read_error)?;
    Ok(AppBytes::Mapped(map))
}

/// A component file's bytes, mapped.
enum AppBytes {
    /// An empty file (which cannot be mapped).
    Empty,
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for AppBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            AppBytes::Empty => &[],
            AppBytes::Mapped(map) => map,
        }
    }
}

/// Rejects what is not a component before handing it to the compiler, so
/// that the message says what the file is.
fn check_header(name: &str, bytes: &[u8]) -> Result<(), Error> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        // The text format is WebAssembly too, but tasks ship as binaries.
        return Err(Error::NotWasm {
            name: name.to_string(),
        });
    }
    // Bytes 6..8 are the layer: 0 for a core module, 1 for a component.
    if bytes[6..8] == [0, 0] {
        return Err(Error::CoreModule {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// Links `component` against the host's imports and tells what it is by
/// its exports: an mtask task, a `wasi:cli` command, or neither (an error
/// that says which of the likely cases it is).
fn link(name: &str, linker: &Linker<TaskState>, component: &Component) -> Result<Code, Error> {
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| Error::MissingImport {
            name: name.to_string(),
            message: one_line(&e),
        })?;
    let as_task = match UntypedTaskPre::new(pre.clone()) {
        Ok(task) => return Ok(Code::Task(task, super::Typed::find(component))),
        Err(e) => e,
    };
    if let Ok(command) = CommandPre::new(pre) {
        return Ok(Code::Command(command));
    }
    let engine = component.engine();
    let exports = component.component_type().exports(engine).count();
    let message = if exports == 0 {
        // What a Rust guest built with the SDK looks like without
        // `mtask::entries!`: the macro is what exports anything.
        "it exports nothing: a task built with the mtask SDK lists its entry functions \
         with `mtask::entries!(...)`, and a program with a `main` is built as a \
         wasm32-wasip2 binary (a `wasi:cli` command)"
            .to_string()
    } else {
        format!(
            "it is neither an mtask task (exports `entries` and `run`) nor a `wasi:cli` \
             command (exports `wasi:cli/run`): {}",
            one_line(&as_task)
        )
    };
    Err(Error::NotATask {
        name: name.to_string(),
        message,
    })
}
