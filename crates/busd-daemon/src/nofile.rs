//! The open-files limit. The daemon holds at least one fd per connection
//! (six for shm), and `busd bench` as many on the client side, so both
//! lift their soft `RLIMIT_NOFILE` to the hard limit at start: a soft limit
//! of 1024, still common, would otherwise refuse connections long before
//! memory runs short. Go programs, nats-server among them, do the same
//! since Go 1.19. The hard limit, the administrator's choice, is left alone.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// What raising the limit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    /// The soft limit went from `from` to `to`, the hard limit.
    To {
        /// The soft limit before.
        from: u64,
        /// The soft limit now: the hard limit.
        to: u64,
    },
    /// It already was the hard limit (or both are unlimited).
    Already(Option<u64>),
}

/// Raises the soft `RLIMIT_NOFILE` of this process to its hard limit.
///
/// # Errors
/// The `setrlimit` error, when the kernel refuses (e.g. a hard limit above
/// `fs.nr_open`); the soft limit is then unchanged.
pub fn raise_nofile_limit() -> std::io::Result<Raised> {
    let limit = getrlimit(Resource::Nofile);
    let (Some(from), Some(to)) = (limit.current, limit.maximum) else {
        // An unlimited hard limit: Linux caps NOFILE anyway, so leave it.
        return Ok(Raised::Already(limit.current));
    };
    if from >= to {
        return Ok(Raised::Already(Some(from)));
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(to),
            maximum: Some(to),
        },
    )?;
    Ok(Raised::To { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let raised = raise_nofile_limit().expect("raise the soft limit");
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(limit.current, limit.maximum, "{raised:?}");
    }
}
