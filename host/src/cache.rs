//! The compiled-code cache: a component compiled once is kept on disk,
//! keyed by its bytes and the engine's settings, and loaded back on the next
//! run instead of compiled again.
//!
//! Loading compiled code means running native code that wasmtime does not
//! check, so nothing in the cache is trusted blindly:
//! - the directory is created private (0700) and is used only while nobody
//!   but its owner (or root) can write it or any folder above it, short of
//!   a sticky one like `/tmp`; otherwise the run compiles and keeps nothing;
//! - an entry (`NAME.cwasm`) has the BLAKE3 digest of its bytes beside it
//!   (`NAME.blake3`), checked before it is deserialized; the check reads the
//!   file through the descriptor that wasmtime then maps (by its
//!   `/proc/self/fd` path), so what was checked is what runs;
//! - both files are written to temporary files and renamed into place, so
//!   a reader sees whole files; one that sees a digest of another version
//!   (a writer racing it) finds a mismatch and compiles again.
//!
//! Beside an entry are its entry list (`NAME.entries`, with its own digest:
//! a cached start need not instantiate the component to ask for it) and a
//! lock (`NAME.lock`, `flock`ed by whoever compiles the entry, so that two
//! runs of a new component compile it once: docs/design.md §11).
//!
//! A digest stored beside the code detects corruption, not a forger: whoever
//! may write the directory may write a matching digest too. That is why the
//! directory's permissions are checked, and why the operator must keep it
//! private (README, "Security"). A bad entry is compiled again and replaced.

use std::fs::{DirBuilder, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::entries::{self, Entry};

/// Where a component's code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeOrigin {
    /// Compiled in this run.
    Compiled,
    /// Loaded from the cache.
    Cached,
    /// Compiled in this run by Winch, the baseline compiler, while
    /// Cranelift compiles it for the cache (docs/design.md §11).
    Baseline,
}

/// Something about the cache that a user may want to hear of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheNote {
    /// The directory is not private: the cache was not used at all.
    Unsafe(String),
    /// An entry was unreadable or corrupt; it was compiled again and replaced.
    Replaced(String),
    /// The compiled code could not be stored.
    NotStored(String),
}

impl std::fmt::Display for CacheNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheNote::Unsafe(m) | CacheNote::Replaced(m) | CacheNote::NotStored(m) => {
                f.write_str(m)
            }
        }
    }
}

/// `$MTASK_CACHE_DIR`, else `$XDG_CACHE_HOME/mtask`, else `~/.cache/mtask`.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("MTASK_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("mtask")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("mtask")))
}

/// The extension of an entry's digest file.
const DIGEST: &str = "blake3";

/// The extension of the file that lists an entry's task entries.
const ENTRIES: &str = "entries";

/// The extension of the file an entry's compiler locks.
const LOCK: &str = "lock";

/// The BLAKE3 digest of a component's bytes: it names the component in the
/// cache and across the hosts of a cluster. Big ones hash on every core.
pub(crate) fn wasm_digest(wasm: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    if wasm.len() > 1 << 20 {
        hasher.update_rayon(wasm);
    } else {
        hasher.update(wasm);
    }
    hasher.finalize()
}

/// The cache file of the component whose digest is `wasm` compiled by `engine`.
pub(crate) fn entry_path(dir: &Path, engine: &Engine, wasm: &blake3::Hash) -> PathBuf {
    let mut hasher = Blake3Hasher(blake3::Hasher::new());
    hasher.0.update(wasm.as_bytes());
    // Settings that shape the code (memory bounds, epoch checks, the
    // compiler and its version).
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    dir.join(format!("{}.cwasm", hasher.0.finalize().to_hex()))
}

/// Feeds `Hash` output into BLAKE3 (a hash stable across builds, unlike
/// std's).
struct Blake3Hasher(blake3::Hasher);

impl std::hash::Hasher for Blake3Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // unused: the digest is read from the inner state
    }
}

/// What the cache has of a component.
pub(crate) enum Lookup {
    /// No cache to use: none configured, or one not private (the note).
    NoCache(Option<CacheNote>),
    /// Not in the cache, or not usable (the note says why): compile it,
    /// and [`store`] it at `path`.
    Miss {
        path: PathBuf,
        note: Option<CacheNote>,
    },
    /// Compiled before: its code, and its entry list if that was kept.
    Hit {
        path: PathBuf,
        component: Component,
        entries: Option<Vec<Entry>>,
    },
}

/// Looks the component whose digest is `wasm` up in `dir`, for `engine`.
pub(crate) fn lookup(engine: &Engine, dir: Option<&Path>, wasm: &blake3::Hash) -> Lookup {
    let Some(dir) = dir else {
        return Lookup::NoCache(None);
    };
    if let Err(why) = private_dir(dir) {
        return Lookup::NoCache(Some(CacheNote::Unsafe(format!(
            "not using the cache directory {}: {why}",
            dir.display()
        ))));
    }
    let path = entry_path(dir, engine, wasm);
    let why = match open_entry(&path) {
        Ok(None) => return Lookup::Miss { path, note: None },
        Ok(Some(checked)) => {
            // SAFETY: the file is one `store` wrote from code this engine
            // configuration compiled: its digest matches, it sits in a
            // directory only this user can write, and wasmtime maps it
            // through the very descriptor that was checked. wasmtime checks
            // its header and settings as well.
            let mapped = format!("/proc/self/fd/{}", checked.as_raw_fd());
            match unsafe { Component::deserialize_file(engine, &mapped) } {
                Ok(component) => {
                    let entries = read_entries(&path);
                    return Lookup::Hit {
                        path,
                        component,
                        entries,
                    };
                }
                Err(e) => crate::error::one_line(&e),
            }
        }
        Err(why) => why,
    };
    let note = CacheNote::Replaced(format!(
        "cache entry {} was not used ({why}); compiled again",
        path.display()
    ));
    Lookup::Miss {
        path,
        note: Some(note),
    }
}

/// Stores `component`'s code at `path`, and its entry list beside it.
pub(crate) fn store(path: &Path, component: &Component, entries: &[Entry]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(path).display();
    let code = component
        .serialize()
        .map_err(|e| format!("cannot store the compiled code in {dir}: {e}"))?;
    write_atomically(path, &code)
        .and_then(|()| {
            write_atomically(&path.with_extension(DIGEST), blake3::hash(&code).as_bytes())
        })
        .map_err(|e| format!("cannot store the compiled code in {dir}: {e}"))?;
    store_entries(path, entries);
    Ok(())
}

/// Keeps the entry list of the entry at `path` beside it: the digest of the
/// list on the first line, an entry on each line after
/// (`entries::to_lines`). A list that cannot be kept is listed again next
/// time.
pub(crate) fn store_entries(path: &Path, entries: &[Entry]) {
    let Some(list) = entries::to_lines(entries) else {
        return;
    };
    let text = format!("{}\n{list}", blake3::hash(list.as_bytes()).to_hex());
    let _ = write_atomically(&path.with_extension(ENTRIES), text.as_bytes());
}

/// The entry list kept beside the entry at `path`, if whole.
fn read_entries(path: &Path) -> Option<Vec<Entry>> {
    let text = std::fs::read_to_string(path.with_extension(ENTRIES)).ok()?;
    let (digest, list) = text.split_once('\n')?;
    if blake3::hash(list.as_bytes()).to_hex().as_str() != digest {
        return None;
    }
    entries::from_lines(list)
}

/// Locks the entry at `path` for compiling it: waits for another compiler
/// of it when `wait`, else gives `None` while one holds it. The lock lasts
/// as long as the file returned, or the process that holds it.
pub(crate) fn lock(path: &Path, wait: bool) -> std::io::Result<Option<File>> {
    use rustix::fs::{FlockOperation, flock};
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path.with_extension(LOCK))?;
    let how = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match flock(&file, how) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The entry at `path`, open, once its digest checks out; `None` when there
/// is no entry, an error saying what is wrong with a bad one.
fn open_entry(path: &Path) -> Result<Option<File>, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let stored = std::fs::read(path.with_extension(DIGEST))
        .ok()
        .and_then(|bytes| <[u8; blake3::OUT_LEN]>::try_from(bytes).ok())
        .ok_or("it has no checksum beside it")?;
    // SAFETY: a read-only mapping of a file in a directory only this user
    // can write; if it changed under the mapping, the digest would not
    // match (or the code would be refused by wasmtime's own checks).
    // Populated at once: one call instead of a fault per page.
    let map =
        unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(|e| e.to_string())?;
    let mut hasher = blake3::Hasher::new();
    // Large entries (a Python component's is 40 MB) hash on every core.
    hasher.update_rayon(&map);
    if hasher.finalize() != blake3::Hash::from_bytes(stored) {
        return Err("its checksum does not match: it is corrupt".into());
    }
    Ok(Some(file))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("an entry is inside the directory");
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let written = (|| {
        let mut file = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Creates `dir` private to this user if it is missing, then checks that
/// nobody else can write it, or swap it by writing a folder above it.
fn private_dir(dir: &Path) -> Result<(), String> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create it: {e}"))?;
    let real = dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve it: {e}"))?;
    let me = rustix::process::geteuid().as_raw();
    for (depth, folder) in real.ancestors().enumerate() {
        let meta = folder
            .metadata()
            .map_err(|e| format!("cannot inspect {}: {e}", folder.display()))?;
        let (owner, mode) = (meta.uid(), meta.mode());
        let name = folder.display();
        if owner != me && owner != 0 {
            return Err(format!("{name} belongs to another user (uid {owner})"));
        }
        // In a sticky folder (like /tmp) others may add entries, but not
        // rename or remove ours; the cache directory itself must be private.
        let sticky = mode & 0o1000 != 0 && depth > 0;
        if mode & 0o022 != 0 && !sticky {
            return Err(format!(
                "others may write {name} (mode {:o}); make it private with chmod go-w",
                mode & 0o7777
            ));
        }
    }
    Ok(())
}
