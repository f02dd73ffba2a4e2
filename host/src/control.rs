//! [`Control`]: changes what a host runs while it runs (docs/design.md
//! §13). `serve`'s reload is made of these steps: load a component, add a
//! supervised main task, hand a tenant's app over to a new version, or
//! retire one and drain it.
//!
//! Retiring an app stops its supervisor from starting it again and its
//! listeners from accepting (`listeners`); its tasks run on, so the
//! connections they serve finish, until none is left or the grace period
//! ends, when the rest are cancelled.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::{AppLimits, Config, tokio_runtime};
use crate::error::Error;
use crate::program::Program;
use crate::program::engines::Engines;
use crate::program::task::Payload;
use crate::say::say;
use crate::shards::Shards;
use crate::supervise::{self, Plan, RestartPolicy, Supervised};

/// How often a drain looks whether the old version's tasks have ended.
const DRAIN_LOOK: Duration = Duration::from_millis(20);

/// Loads components and adds, replaces and drains apps from any thread,
/// while [`TaskManager::run`](crate::TaskManager::run) runs; see
/// [`TaskManager::control`](crate::TaskManager::control).
#[derive(Clone)]
pub struct Control {
    /// Compile components, with the host's imports linked.
    pub(crate) engines: Arc<Engines>,
    /// The shards the tasks run on.
    pub(crate) shards: Arc<Shards>,
}

/// What becomes of the listeners of an app that is retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retire {
    /// The app's next version takes them over, with the connections
    /// queued meanwhile: none is refused.
    HandOver,
    /// They are shut: connecting is refused from now on.
    Shut,
}

impl Control {
    /// Loads the component at `path`, as [`TaskManager::load`](crate::TaskManager::load).
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Program, Error> {
        Program::from_file(&self.engines, path.as_ref())
    }

    /// Adds a supervised main task, as
    /// [`TaskManager::add_supervised`](crate::TaskManager::add_supervised).
    pub fn add_supervised(
        &self,
        program: &Program,
        entry: &str,
        payload: Vec<u8>,
        label: &str,
        policy: RestartPolicy,
    ) -> Result<Supervised, Error> {
        self.register(program, entry)?;
        let plan = Plan {
            program: program.clone(),
            entry: entry.into(),
            payload: Payload::Native(payload),
            label: label.to_string(),
            policy,
        };
        let _tokio = tokio_runtime().enter();
        supervise::start(&self.shards, plan)
    }

    /// Counts `new` as the next version of `old`, before any task of `new`
    /// is added: both count against one set of limits (the last
    /// registered) and one set of figures, so a tenant's old version
    /// draining beside its new one cannot take more of the host than the
    /// tenant may.
    pub fn succeed(&self, new: &Program, old: &Program) {
        self.shards.apps().succeed(new.app(), old.app());
    }

    /// Retires `program`, whose main task `main` supervises: no restart
    /// from now on, no accept on its listeners (handed over or shut, as
    /// `listeners` says). Its tasks run on until none is left or `grace`
    /// has passed; then the rest are cancelled, and, with `label`, a line
    /// on stderr says how many.
    pub fn retire(
        &self,
        program: &Program,
        main: &Supervised,
        listeners: Retire,
        grace: Duration,
        label: &str,
    ) {
        main.retire();
        let tenant = program.tenant();
        let sockets = self.shards.listeners();
        // Pinned first, so a socket the old version lets go of now stays.
        let pin = (listeners == Retire::HandOver).then(|| sockets.pin(tenant));
        sockets.retire(tenant, program.app(), listeners == Retire::Shut);
        let (shards, app, label) = (self.shards.clone(), program.app(), label.to_string());
        tokio_runtime().spawn(async move {
            drain(&shards, app, grace, &label).await;
            drop(pin);
            shards.listeners().forget(app);
        });
    }

    /// Checks that `program` has `entry`, and registers its app (its name
    /// for listings, its limits).
    pub(crate) fn register(&self, program: &Program, entry: &str) -> Result<(), Error> {
        if !program.has_entry(entry) {
            return Err(Error::UnknownEntry {
                name: program.name().to_string(),
                entry: entry.to_string(),
                entries: program.entries().iter().map(ToString::to_string).collect(),
            });
        }
        self.register_app(program);
        Ok(())
    }

    /// Registers the app of `program`: its name, and its own limits or the
    /// host's.
    pub(crate) fn register_app(&self, program: &Program) {
        self.shards
            .names()
            .entry(program.app())
            .or_insert_with(|| program.name().to_string());
        let config: &Config = self.engines.config();
        let limits = program.limits().unwrap_or(AppLimits::from(config));
        self.shards.register_app(program.app(), limits);
    }
}

/// Waits until `app` has no task left, or `grace` has passed: then
/// cancels the rest.
async fn drain(shards: &Shards, app: crate::ids::AppId, grace: Duration, label: &str) {
    let end = Instant::now() + grace;
    loop {
        let live = shards.app_live(app);
        if live == 0 || shards.stop_requested() {
            return;
        }
        if Instant::now() >= end {
            shards.cancel_app(app);
            say!(
                warn,
                { cancelled = live, },
                "{label}: {live} tasks of the old version cancelled after the {grace:?} grace period"
            );
            return;
        }
        tokio::time::sleep(DRAIN_LOOK).await;
    }
}
