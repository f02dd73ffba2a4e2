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
//! A digest stored beside the code detects corruption, not a forger: whoever
//! may write the directory may write a matching digest too. That is why the
//! directory's permissions are checked, and why the operator must keep it
//! private (README, "Security"). A bad entry is compiled again and replaced.

use std::fs::{DirBuilder, File};
use std::hash::Hasher;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component's code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeOrigin {
    /// Compiled in this run.
    Compiled,
    /// Loaded from the cache.
    Cached,
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

/// Feeds `Hash` output into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // unused: the digest is read from the inner state
    }
}

/// The cache file of `wasm` compiled by `engine`.
fn entry_path(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    let mut hasher = ShaHasher(Sha256::new());
    hasher.write(wasm);
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    let digest = hasher.0.finalize();
    let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.cwasm"))
}

/// A component's code, where it came from, and what a user may want to
/// hear about the cache.
pub(crate) struct Loaded {
    pub(crate) component: Component,
    pub(crate) origin: CodeOrigin,
    pub(crate) note: Option<CacheNote>,
}

/// Compiles `wasm`, or loads it from `dir` when it was compiled before.
///
/// A cache that cannot be used is skipped (the note says why): the run goes
/// on with freshly compiled code.
pub(crate) fn load_or_compile(
    engine: &Engine,
    wasm: &[u8],
    dir: Option<&Path>,
) -> wasmtime::Result<Loaded> {
    let compile = |note| -> wasmtime::Result<Loaded> {
        Ok(Loaded {
            component: Component::new(engine, wasm)?,
            origin: CodeOrigin::Compiled,
            note,
        })
    };
    let Some(dir) = dir else { return compile(None) };
    if let Err(why) = private_dir(dir) {
        return compile(Some(CacheNote::Unsafe(format!(
            "not using the cache directory {}: {why}",
            dir.display()
        ))));
    }
    let path = entry_path(dir, engine, wasm);
    let mut note = None;
    match open_entry(&path) {
        Ok(None) => {}
        Ok(Some(checked)) => {
            // SAFETY: the file is one `store` wrote from code this engine
            // configuration compiled: its digest matches, it sits in a
            // directory only this user can write, and wasmtime maps it
            // through the very descriptor that was checked. wasmtime checks
            // its header and settings as well.
            let mapped = format!("/proc/self/fd/{}", checked.as_raw_fd());
            match unsafe { Component::deserialize_file(engine, &mapped) } {
                Ok(component) => {
                    return Ok(Loaded {
                        component,
                        origin: CodeOrigin::Cached,
                        note: None,
                    });
                }
                Err(e) => note = Some(crate::error::one_line(&e)),
            }
        }
        Err(why) => note = Some(why),
    }
    let mut loaded = compile(note.map(|why| {
        CacheNote::Replaced(format!(
            "cache entry {} was not used ({why}); compiled again",
            path.display()
        ))
    }))?;
    if let Err(e) = loaded
        .component
        .serialize()
        .and_then(|code| store(&path, &code).map_err(wasmtime::Error::from))
    {
        loaded.note.get_or_insert(CacheNote::NotStored(format!(
            "cannot store the compiled code in {}: {e}",
            dir.display()
        )));
    }
    Ok(loaded)
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
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
    let mut hasher = blake3::Hasher::new();
    // Large entries (a Python component's is 40 MB) hash on every core.
    hasher.update_rayon(&map);
    if hasher.finalize() != blake3::Hash::from_bytes(stored) {
        return Err("its checksum does not match: it is corrupt".into());
    }
    Ok(Some(file))
}

/// Writes a cache entry and its digest atomically: each to a private
/// temporary file, renamed into place once whole.
fn store(path: &Path, code: &[u8]) -> std::io::Result<()> {
    write_atomically(path, code)?;
    write_atomically(&path.with_extension(DIGEST), blake3::hash(code).as_bytes())
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
