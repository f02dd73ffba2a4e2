//! Each tenant's share of what the host has: task slots, open files,
//! memory. A tenant's own limit is reserved for it, and those without one
//! share what the others leave, so that no tenant can make another's
//! spawn, bind or growth fail.

use super::tenant::Tenant;

/// Tasks a tenant may have alive when neither it nor `[host]` says.
const DEFAULT_TENANT_TASKS: usize = 1000;

/// `` `a` 10, `b` 500 ``: what each tenant takes.
fn list(tenants: &[Tenant], amounts: impl Iterator<Item = impl std::fmt::Display>) -> String {
    let items: Vec<String> = tenants
        .iter()
        .zip(amounts)
        .map(|(t, n)| format!("`{}` {n}", t.table.name))
        .collect();
    items.join(", ")
}

/// Gives each tenant its own share of the task pool and sizes the pool to
/// their sum, so that a tenant's spawns within its share always find a
/// free slot, whatever the others do. A tenant's `max_tasks` is reserved
/// for it; tenants without one share what `[host] max_tasks` leaves, or
/// get [`DEFAULT_TENANT_TASKS`] each where `[host]` does not set it.
pub(super) fn reserve_tasks(host: Option<u32>, tenants: &mut [Tenant]) -> Result<u32, String> {
    let reserved: usize = tenants.iter().filter_map(|t| t.table.max_tasks).sum();
    let sharing = tenants.iter().filter(|t| t.table.max_tasks.is_none());
    let share = match host {
        None => DEFAULT_TENANT_TASKS,
        Some(pool) => {
            let pool = pool as usize;
            if reserved > pool {
                return Err(format!(
                    "[host]: `max_tasks` = {pool} is less than the {reserved} tasks the \
                     tenants reserve ({})",
                    list(
                        tenants,
                        tenants.iter().map(|t| t.table.max_tasks.unwrap_or(0))
                    )
                ));
            }
            let count = sharing.clone().count();
            let share = (pool - reserved) / count.max(1);
            if let Some(first) = sharing.clone().next()
                && share == 0
            {
                return Err(format!(
                    "[host]: `max_tasks` = {pool} leaves no task for {} (the others \
                     reserve {reserved}): raise it, or give each tenant a `max_tasks`",
                    first.label()
                ));
            }
            share
        }
    };
    for tenant in tenants.iter_mut() {
        tenant.limits.max_tasks = tenant.table.max_tasks.unwrap_or(share);
    }
    let total: usize = tenants.iter().map(|t| t.limits.max_tasks).sum();
    let pool = match host {
        Some(pool) => pool as usize,
        None => total,
    };
    u32::try_from(pool).map_err(|_| {
        format!("the tenants' `max_tasks` add up to {pool}, more than one host can hold")
    })
}

/// The most sockets a tenant gets when neither it nor `[host]` says, if
/// the open-file limit allows as many.
const DEFAULT_TENANT_SOCKETS: u64 = 10_000;

/// Why a budget cannot be shared out.
enum Shortfall {
    /// The claims add up to more than the budget.
    Over(u64),
    /// Tenant N would get nothing of what the others leave (they claim this much).
    Nothing(usize, u64),
}

/// Shares `budget` out among tenants, each claiming `(own, extra)`: `own`
/// its own amount, or `None` for an even share of what the others leave
/// (at most `cap`); `extra` a fixed amount it needs besides. Gives each
/// tenant's own amount or share.
fn share_out(budget: u64, claims: &[(Option<u64>, u64)], cap: u64) -> Result<Vec<u64>, Shortfall> {
    let claimed = claims
        .iter()
        .map(|(own, extra)| own.unwrap_or(0).saturating_add(*extra))
        .fold(0, u64::saturating_add);
    if claimed > budget {
        return Err(Shortfall::Over(claimed));
    }
    let sharing = claims.iter().filter(|(own, _)| own.is_none()).count() as u64;
    let share = ((budget - claimed) / sharing.max(1)).min(cap);
    claims
        .iter()
        .enumerate()
        .map(|(i, (own, _))| match own {
            Some(n) => Ok(*n),
            None if share == 0 => Err(Shortfall::Nothing(i, claimed)),
            None => Ok(share),
        })
        .collect()
}

/// Gives each tenant its own share of the process's open files: its
/// sockets (`max_sockets`, its own or `[host]`'s) and one per granted
/// directory per task (each task holds its own handle on each). Tenants
/// with no socket limit share what the others leave, up to
/// [`DEFAULT_TENANT_SOCKETS`] each. A file whose tenants could hold more
/// than the limit allows is refused: one tenant could then make another's
/// binds fail.
pub(super) fn reserve_files(
    host_sockets: Option<usize>,
    tenants: &mut [Tenant],
    open_files: u64,
) -> Result<(), String> {
    let claims: Vec<(Option<u64>, u64)> = tenants
        .iter()
        .map(|t| {
            let own = t.table.max_sockets.or(host_sockets).map(|n| n as u64);
            (own, t.dir_files())
        })
        .collect();
    let budget = crate::files::for_apps(open_files) as u64;
    let too_many = |what: String| {
        format!(
            "{what}, more than the open-file limit allows ({open_files}, less {} for the \
             host): lower their `max_sockets` or `max_tasks`, or raise the limit (ulimit -Hn)",
            crate::files::HOST_FILES
        )
    };
    match share_out(budget, &claims, DEFAULT_TENANT_SOCKETS) {
        Ok(shares) => {
            for (tenant, share) in tenants.iter_mut().zip(shares) {
                tenant.limits.max_sockets = share as usize;
            }
            Ok(())
        }
        Err(Shortfall::Over(claimed)) => {
            let listed = claims.iter().map(|(own, extra)| own.unwrap_or(0) + extra);
            Err(too_many(format!(
                "the tenants may hold {claimed} open files (sockets, and a handle per granted \
                 directory per task: {})",
                list(tenants, listed)
            )))
        }
        Err(Shortfall::Nothing(i, claimed)) => Err(too_many(format!(
            "{} gets no sockets: the others may hold {claimed} open files",
            tenants[i].label()
        ))),
    }
}

/// Gives each tenant its own share of the machine's memory: what it can
/// make the host hold is its tasks' linear memory (`max_app_memory`, its
/// own or `[host]`'s, or an even share of what the others leave) and its
/// queues' bytes (`max_queue_bytes`).
pub(super) fn reserve_memory(
    host: Option<u64>,
    tenants: &mut [Tenant],
    memory: u64,
) -> Result<(), String> {
    let claims: Vec<(Option<u64>, u64)> = tenants
        .iter()
        .map(|t| {
            let queues = t.limits.max_queue_bytes as u64;
            (t.max_app_memory.or(host), queues)
        })
        .collect();
    let mib = |n: u64| n >> 20;
    match share_out(memory, &claims, u64::MAX) {
        Ok(shares) => {
            for (tenant, share) in tenants.iter_mut().zip(shares) {
                tenant.limits.max_app_memory = share;
            }
            Ok(())
        }
        Err(Shortfall::Over(claimed)) => Err(format!(
            "the tenants' `max_app_memory` and `max_queue_bytes` add up to {} MiB ({}), more \
             than the machine's {} MiB: lower them",
            mib(claimed),
            list(
                tenants,
                claims
                    .iter()
                    .map(|(own, queues)| mib(own.unwrap_or(0) + queues))
            ),
            mib(memory)
        )),
        Err(Shortfall::Nothing(i, claimed)) => Err(format!(
            "{} gets no memory: the others' `max_app_memory` and every tenant's \
             `max_queue_bytes` take {} of the machine's {} MiB",
            tenants[i].label(),
            mib(claimed),
            mib(memory)
        )),
    }
}
