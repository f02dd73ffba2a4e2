//! Loading a tenant's app as its table says, and starting its main task:
//! at start and on reload.

use std::path::{Path, PathBuf};

use super::tenant::{Served, Tenant};
use crate::{Control, Program};

/// A tenant loaded and checked, not yet started.
pub(super) struct Prepared {
    /// Its table, checked.
    pub(super) tenant: Tenant,
    /// Its app, configured as the table says.
    pub(super) program: Program,
    /// The hash of the app's bytes.
    pub(super) app_hash: blake3::Hash,
}

/// What loads and starts tenants, at start and on reload.
pub(super) struct Launcher {
    /// Loads apps and adds their main tasks while the host runs.
    pub(super) control: Control,
    /// The tenants file's folder: apps' paths are relative to it.
    pub(super) dir: PathBuf,
    /// Tenants' output lines are log events (`--log-format json`).
    pub(super) output_events: bool,
}

impl Launcher {
    /// Loads the app of a checked tenant and configures it as its table says.
    pub(super) fn prepare(&self, tenant: Tenant) -> Result<Prepared, String> {
        let control = &self.control;
        let label = tenant.label();
        let path = self.dir.join(&tenant.table.app);
        let loading = format!("{label}: compiling {}", tenant.table.app.display());
        let program = crate::cli::progress::while_slow(&loading, || control.load(&path))
            .map_err(|e| format!("{label}: {e}"))?;
        // What a reload compares, to tell a changed app.
        let app_hash = app_hash(&path).map_err(|e| format!("{label}: {e}"))?;
        let name = tenant.table.name.clone();
        let mut program = program
            .with_name(name.clone())
            .with_args(tenant.table.args.clone())
            .with_env(tenant.table.env.clone())
            .with_network(tenant.net.clone())
            .with_dirs(tenant.dirs.clone())
            .map_err(|e| format!("{label}: {e}"))?
            .with_limits(tenant.limits)
            .with_tenant(name.clone())
            .with_output_label(name.clone());
        if self.output_events {
            // Spans are for JSON: the text log shows none.
            let span = tracing::info_span!(target: "mtask", "tenant", tenant = %name);
            program = program.with_output_events().with_log_span(span);
        }
        if let Some(max) = tenant.max_memory {
            program = program.with_max_memory(max as usize);
        }
        if !program.has_entry(&tenant.table.entry) {
            let unknown = crate::Error::UnknownEntry {
                name: program.name().to_string(),
                entry: tenant.table.entry.clone(),
                entries: program.entries().iter().map(ToString::to_string).collect(),
            };
            return Err(format!("{label}: {unknown}"));
        }
        Ok(Prepared {
            tenant,
            program,
            app_hash,
        })
    }

    /// Starts the main task of a prepared tenant.
    pub(super) fn launch(&self, prepared: Prepared) -> Result<Served, String> {
        let control = &self.control;
        let Prepared {
            tenant,
            program,
            app_hash,
        } = prepared;
        let label = tenant.label();
        let main = control
            .add_supervised(
                &program,
                &tenant.table.entry,
                Vec::new(),
                &label,
                tenant.restart,
            )
            .map_err(|e| format!("{label}: {e}"))?;
        Ok(Served {
            table: tenant.table,
            app_hash,
            program,
            main,
            grace: tenant.grace,
            removed: false,
        })
    }
}

/// The BLAKE3 hash of the bytes of the app at `path`.
pub(super) fn app_hash(path: &Path) -> Result<blake3::Hash, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(blake3::hash(&bytes))
}
