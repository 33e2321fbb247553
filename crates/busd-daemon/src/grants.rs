//! Expiring grants (`busd ctl grant|grants|revoke`): allowances an admin
//! adds on top of the file's rules. Each is part of the policy in force
//! (adding, revoking or expiring one swaps in a new policy, so cached
//! routes are rebuilt), is carried over a reload of the file, and is
//! audited when granted, first used, revoked and expired. They last over
//! a restart only with `[daemon] grants_file` (see `grants_file`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use busd_policy::{Grant, Identity, Policy};
use busd_proto::GrantRequest;
use serde::Serialize;

use crate::ctl_explain::identity;
use crate::grants_file;
use crate::shared::Shared;
use crate::sync::lock;

/// The longest grant: a temporary allowance, not a rule (those go in the
/// file).
const MAX_GRANT: Duration = Duration::from_secs(30 * 24 * 3600);

/// A grant as `busd ctl grants` lists it.
#[derive(Debug, Serialize)]
pub(crate) struct GrantDoc {
    id: u64,
    from: String,
    to: String,
    both_ways: bool,
    /// When it expires (RFC 3339).
    until: String,
    /// Seconds it has left.
    left_s: u64,
    reason: Option<String>,
}

/// Adds the grant `req` asks for, for the admin `by`; it is removed when
/// it expires (unless revoked first).
///
/// # Errors
/// A party that cannot be read or a client not connected, a duration of
/// zero or over 30 days.
pub(crate) fn grant(
    shared: &Arc<Shared>,
    req: &GrantRequest,
    by: &Identity,
) -> Result<GrantDoc, String> {
    let from = identity(shared, &req.from)?;
    let to = identity(shared, &req.to)?;
    let lasts = Duration::from_secs(req.seconds);
    if lasts.is_zero() || lasts > MAX_GRANT {
        return Err(format!(
            "a grant lasts 1 s to {} days; put a lasting rule in the file",
            MAX_GRANT.as_secs() / 86_400
        ));
    }
    let id = shared.next_grant.fetch_add(1, Ordering::Relaxed);
    let until = SystemTime::now() + lasts;
    let new = Arc::new(Grant::new(
        id,
        (from, to),
        req.both_ways,
        until,
        req.reason.clone(),
    ));
    let doc = doc_of(&new);
    swap(shared, |grants| grants.push(Arc::clone(&new)));
    tracing::info!(
        target: "busd::audit",
        grant = id, from = %new.from, to = %new.to, both_ways = new.both_ways,
        seconds = req.seconds, reason = new.reason.as_deref().unwrap_or(""), by = %by,
        "grant added"
    );
    expire_after(shared, id, lasts);
    save(shared);
    Ok(doc)
}

/// Removes grant `id` when `lasts` has passed (unless the daemon stops
/// first).
fn expire_after(shared: &Arc<Shared>, id: u64, lasts: Duration) {
    let deadline = tokio::time::Instant::now() + lasts;
    let stop = shared.shutdown.clone();
    let tracker = shared.tracker.clone();
    let shared = Arc::clone(shared);
    tracker.spawn(async move {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                if remove(&shared, id) {
                    tracing::info!(target: "busd::audit", grant = id, "grant expired");
                    save(&shared);
                }
            }
            () = stop.cancelled() => {}
        }
    });
}

/// Puts back the grants `[daemon] grants_file` kept, if it is set, as the
/// daemon starts (within its runtime); those expired meanwhile are gone.
pub(crate) fn restore(shared: &Arc<Shared>) {
    let Some(path) = &shared.config.grants_file else {
        return;
    };
    let kept = match grants_file::load(path) {
        Ok(kept) => kept,
        Err(e) => {
            tracing::error!(target: "busd::audit", file = %path.display(), cause = %e, "grants file unreadable: no grants restored");
            return;
        }
    };
    let mut restored = Vec::new();
    for k in &kept {
        match k.grant() {
            Ok(Some((grant, left))) => restored.push((Arc::new(grant), left)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "busd::audit", grant = k.id, cause = %e, "grant not restored")
            }
        }
    }
    let next = restored.iter().map(|(g, _)| g.id + 1).max().unwrap_or(1);
    shared.next_grant.fetch_max(next, Ordering::Relaxed);
    swap(shared, |grants| {
        grants.extend(restored.iter().map(|(g, _)| Arc::clone(g)))
    });
    for (g, left) in &restored {
        tracing::info!(target: "busd::audit", grant = g.id, from = %g.from, to = %g.to, "grant restored");
        expire_after(shared, g.id, *left);
    }
    save(shared);
}

/// Writes the grants in force to `[daemon] grants_file`, if it is set.
fn save(shared: &Shared) {
    let Some(path) = &shared.config.grants_file else {
        return;
    };
    // Concurrent saves (a grant and an expiry) would share the temporary
    // file; the last one in writes what is in force then.
    let _one_at_a_time = lock(&shared.grants_saving);
    let kept: Vec<grants_file::Kept> = shared
        .policy()
        .grants
        .iter()
        .map(|g| grants_file::Kept::of(g))
        .collect();
    if let Err(e) = grants_file::save(path, &kept) {
        tracing::error!(target: "busd::audit", file = %path.display(), cause = %e, "grants file not written: the grants in force are not kept over a restart");
    }
}

/// Removes the grant `id` for the admin `by`.
///
/// # Errors
/// No such grant (never made, revoked or expired already).
pub(crate) fn revoke(shared: &Shared, id: u64, by: &Identity) -> Result<(), String> {
    if !remove(shared, id) {
        return Err(format!(
            "no grant {id}: never made, or revoked or expired already"
        ));
    }
    tracing::info!(target: "busd::audit", grant = id, by = %by, "grant revoked");
    save(shared);
    Ok(())
}

/// The grants in force.
pub(crate) fn list(shared: &Shared) -> Vec<GrantDoc> {
    shared.policy().grants.iter().map(|g| doc_of(g)).collect()
}

/// `new` with the grants of the policy in force (a reload keeps them).
///
/// Call it under the router's lock that swaps `new` in, so that no grant
/// added, revoked or expired meanwhile is lost or brought back.
pub(crate) fn carried_over(in_force: &Policy, new: &Policy) -> Arc<Policy> {
    let mut new = new.clone();
    new.grants.clone_from(&in_force.grants);
    Arc::new(new)
}

/// Removes grant `id`; whether it was there.
fn remove(shared: &Shared, id: u64) -> bool {
    let mut found = false;
    swap(shared, |grants| {
        let before = grants.len();
        grants.retain(|g| g.id != id);
        found = grants.len() != before;
    });
    found
}

/// Swaps in the policy in force with its grants changed by `change`.
fn swap(shared: &Shared, change: impl FnOnce(&mut Vec<Arc<Grant>>)) {
    let mut router = lock(&shared.router);
    let mut policy = Policy::clone(router.policy());
    change(&mut policy.grants);
    // The packages are the same, so nobody is closed.
    let closed = router.set_policy(Arc::new(policy));
    debug_assert!(closed.is_empty(), "a grant closed connections");
}

fn doc_of(g: &Grant) -> GrantDoc {
    let left = g
        .until
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    GrantDoc {
        id: g.id,
        from: g.from.party(),
        to: g.to.party(),
        both_ways: g.both_ways,
        until: humantime_serde::re::humantime::format_rfc3339_seconds(g.until).to_string(),
        left_s: left.as_secs(),
        reason: g.reason.clone(),
    }
}
