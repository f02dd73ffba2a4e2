//! The compiled-code cache: a component compiled once is kept on disk,
//! keyed by its bytes and the engine's settings, and mapped back in on the
//! next run instead of compiled again.

use std::hash::Hasher;
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

/// Compiles `wasm`, or loads it from `dir` when it was compiled before.
///
/// A cache that cannot be read or written is skipped: the run goes on with
/// freshly compiled code.
pub(crate) fn load_or_compile(
    engine: &Engine,
    wasm: &[u8],
    dir: Option<&Path>,
) -> wasmtime::Result<(Component, CodeOrigin)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, wasm)?, CodeOrigin::Compiled));
    };
    let path = entry_path(dir, engine, wasm);
    if path.exists() {
        // SAFETY: the file was written by `store` below from code this same
        // engine configuration compiled, into the user's own cache directory;
        // wasmtime checks its header and settings before using it.
        if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
            return Ok((component, CodeOrigin::Cached));
        }
    }
    let component = Component::new(engine, wasm)?;
    if let Ok(code) = component.serialize() {
        store(&path, &code);
    }
    Ok((component, CodeOrigin::Compiled))
}

/// Writes a cache entry atomically (temp file + rename), ignoring failures.
fn store(path: &Path, code: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, code).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
