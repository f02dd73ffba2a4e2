//! Supervision (docs/design.md §12): a main task started again when it
//! ends, as its [`RestartPolicy`] says, after a back-off that doubles with
//! each restart close to the last, until too many restarts come too close
//! together; then the supervisor gives up and the app stays down, as an
//! Erlang/OTP supervisor does past its restart intensity.
//!
//! A supervisor is a future on the host's Tokio runtime that waits for
//! the outcome of each run of the task (sent from the task's future, as a
//! remote spawn's is). It holds the run open (`Shards::hold`) until it is
//! done, so that a host with no task alive during a back-off goes on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::Error;
use crate::outcome::{Outcome, TaskError};
use crate::program::Program;
use crate::program::task::{Payload, Start, spawn};
use crate::say::say;
use crate::shard::{Holder, lock};
use crate::shards::Shards;

/// When a supervised task is started again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    /// Never: it runs once.
    #[default]
    Never,
    /// When it fails, traps or goes over a limit; not when it succeeds.
    OnFailure,
    /// Whenever it ends, however.
    Always,
}

/// How a supervisor restarts its task. A task cancelled (the host
/// stopping) is never started again.
#[derive(Clone, Copy, Debug)]
pub struct RestartPolicy {
    /// When the task is started again.
    pub restart: Restart,
    /// The most restarts within [`within`](Self::within): the next one is
    /// not made, and the supervisor gives up.
    pub max_restarts: u32,
    /// The window [`max_restarts`](Self::max_restarts) counts in.
    pub within: Duration,
    /// The wait before a restart with none other within the window; each
    /// restart in the window waits twice as long as the one before.
    pub backoff: Duration,
    /// The longest wait before a restart.
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    /// Never; and when restarting: at most 5 restarts in 60 s, waiting
    /// 100 ms, then twice as long each time, up to 30 s.
    fn default() -> Self {
        RestartPolicy {
            restart: Restart::Never,
            max_restarts: 5,
            within: Duration::from_secs(60),
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// How a supervised task ended for good.
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    /// The outcome of its last run.
    pub outcome: Outcome,
    /// Whether the supervisor gave up: it would have restarted the task,
    /// but too many restarts came within the window.
    pub gave_up: bool,
}

/// A handle on a supervised task: see
/// [`TaskManager::add_supervised`](crate::TaskManager::add_supervised).
#[derive(Clone, Debug, Default)]
pub struct Supervised(Arc<Mutex<Status>>);

/// What a supervisor has done so far.
#[derive(Debug, Default)]
struct Status {
    /// Times it started the task again.
    restarts: u32,
    /// How it ended for good, once it has.
    finish: Option<Finish>,
    /// No more restarts: its app is retired (docs/design.md §13).
    retired: bool,
}

impl Supervised {
    /// Times the task was started again so far.
    pub fn restarts(&self) -> u32 {
        lock(&self.0).restarts
    }

    /// How the task ended for good, once it has (none while it runs or
    /// waits to be started again).
    pub fn finish(&self) -> Option<Finish> {
        lock(&self.0).finish.clone()
    }

    /// Starts the task no more: the run under way runs on, and when it
    /// ends, it ends for good (an app retired, or replaced by a new
    /// version; see [`Control::retire`](crate::Control::retire)).
    pub fn retire(&self) {
        lock(&self.0).retired = true;
    }

    /// Whether [`retire`](Self::retire) was called.
    pub fn is_retired(&self) -> bool {
        lock(&self.0).retired
    }
}

/// The longest a supervisor sleeps at once during a back-off: it looks
/// between naps whether it was retired or the host is stopping.
const NAP: Duration = Duration::from_millis(50);

/// What a supervisor starts, and how.
pub(crate) struct Plan {
    /// The component.
    pub(crate) program: Program,
    /// The entry each run runs.
    pub(crate) entry: Arc<str>,
    /// Its argument, the same each run.
    pub(crate) payload: Payload,
    /// Names the task in messages (`tenant `echo``).
    pub(crate) label: String,
    /// When to start it again.
    pub(crate) policy: RestartPolicy,
}

/// Starts the first run of `plan` now (an error, such as the app's task
/// limit, is the caller's), and a supervisor for the next.
pub(crate) fn start(shards: &Arc<Shards>, plan: Plan) -> Result<Supervised, Error> {
    let first = run_once(shards, &plan)?;
    let supervised = Supervised::default();
    shards.hold();
    let (shards, status) = (shards.clone(), supervised.clone());
    crate::engine::tokio_runtime().spawn(async move {
        supervise(&shards, &plan, first, &status).await;
        shards.release();
    });
    Ok(supervised)
}

/// Waits for each run of `plan` to end and starts the next, until one
/// ends for good.
async fn supervise(
    shards: &Arc<Shards>,
    plan: &Plan,
    mut running: oneshot::Receiver<Outcome>,
    status: &Supervised,
) {
    let policy = &plan.policy;
    // When each restart within the window was made.
    let mut recent: VecDeque<Instant> = VecDeque::new();
    loop {
        // Dropped unsent: the task was dropped unended, the host stopping.
        let outcome = running.await.unwrap_or(Err(TaskError::Cancelled));
        let finish = |gave_up| {
            lock(&status.0).finish = Some(Finish {
                outcome: outcome.clone(),
                gave_up,
            });
        };
        if !again(policy.restart, &outcome) || shards.stop_requested() || status.is_retired() {
            return finish(false);
        }
        let now = Instant::now();
        while recent.front().is_some_and(|&t| now - t > policy.within) {
            recent.pop_front();
        }
        let how = match &outcome {
            Ok(_) => "ended".to_string(),
            Err(error) => error.to_string(),
        };
        if recent.len() >= policy.max_restarts as usize {
            say!(
                error,
                in plan.program.log_span(),
                { restarts = recent.len(), },
                "{}: main task {how}; {} restarts within {:?} already: given up, it \
                 stays down",
                plan.label,
                recent.len(),
                policy.within
            );
            return finish(true);
        }
        let doubled = policy.backoff.saturating_mul(1 << recent.len().min(31));
        let wait = doubled.min(policy.max_backoff);
        say!(
            warn,
            in plan.program.log_span(),
            { restart_in = ?wait, },
            "{}: main task {how}; starting it again in {wait:?}",
            plan.label
        );
        let end = Instant::now() + wait;
        while Instant::now() < end {
            if shards.stop_requested() || status.is_retired() {
                return finish(false);
            }
            tokio::time::sleep(NAP.min(end - Instant::now())).await;
        }
        if shards.stop_requested() || status.is_retired() {
            return finish(false);
        }
        recent.push_back(Instant::now());
        lock(&status.0).restarts += 1;
        shards.apps().restarted(plan.program.app());
        running = match run_once(shards, plan) {
            Ok(running) => running,
            // Its place is taken (by children of the last run still
            // alive): a failed run, as far as the policy goes.
            Err(e) => {
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(Err(TaskError::Limit(e.to_string())));
                rx
            }
        };
    }
}

/// Whether a run that ended with `outcome` is followed by another.
fn again(restart: Restart, outcome: &Outcome) -> bool {
    match (restart, outcome) {
        (_, Err(TaskError::Cancelled)) | (Restart::Never, _) => false,
        (Restart::OnFailure, outcome) => outcome.is_err(),
        (Restart::Always, _) => true,
    }
}

/// Starts one run of `plan`; its outcome will come on the receiver.
fn run_once(shards: &Arc<Shards>, plan: &Plan) -> Result<oneshot::Receiver<Outcome>, Error> {
    let app = plan.program.app();
    shards.apps().reserve(app).map_err(Error::Limit)?;
    let (tx, rx) = oneshot::channel();
    let start = Start {
        report: Some(tx),
        ..Start::new(plan.entry.clone(), plan.payload.clone(), Holder::Supervisor)
    };
    shards.apps().main_added();
    spawn(shards, shards.place_new(), &plan.program, start);
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_ends_are_followed_by_a_run() {
        let ok: Outcome = Ok(Vec::new());
        let failed: Outcome = Err(TaskError::Failed("x".into()));
        let cancelled: Outcome = Err(TaskError::Cancelled);
        let table = [
            (Restart::Never, [false, false, false]),
            (Restart::OnFailure, [false, true, false]),
            (Restart::Always, [true, true, false]),
        ];
        for (restart, expected) in table {
            let got = [&ok, &failed, &cancelled].map(|o| again(restart, o));
            assert_eq!(got, expected, "{restart:?}");
        }
    }
}
