//! File-descriptor headroom (issue 13 item 4): at start the soft `RLIMIT_NOFILE` is raised to
//! the hard limit, and the connections of all listeners together are kept [`FD_RESERVE`]
//! below it, so the store, the spool and `accept` itself always find a descriptor.

use crate::limits::FdBudget;

/// Descriptors kept free of connections: the database (SQLite WAL and journal files, or the
/// PostgreSQL pool), spool and blob files, logs, the listeners themselves.
pub const FD_RESERVE: usize = 256;

/// The soft and hard `RLIMIT_NOFILE` after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft descriptor limit to the hard one (an unprivileged process may).
#[cfg(unix)]
// `rlim_t` is `u64` on Linux but not on every Unix.
#[allow(clippy::unnecessary_cast)]
#[allow(unsafe_code)] // FFI: see the SAFETY comments inside
pub fn raise_nofile_limit() -> std::io::Result<NofileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                soft = lim.rlim_cur,
                hard = lim.rlim_max,
                "cannot raise the open-file limit"
            );
        }
    }
    Ok(NofileLimit {
        soft: lim.rlim_cur as u64,
        hard: lim.rlim_max as u64,
    })
}

#[cfg(not(unix))]
pub fn raise_nofile_limit() -> std::io::Result<NofileLimit> {
    Ok(NofileLimit {
        soft: u64::MAX,
        hard: u64::MAX,
    })
}

/// Connections all listeners may hold together under a soft limit of `soft` descriptors.
pub fn connection_budget(soft: u64) -> usize {
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    // Even a tiny limit leaves a few connections (and the reserve shrinks to half of it).
    soft.saturating_sub(FD_RESERVE.min(soft / 2)).max(1)
}

/// Raises the limit and sets the process-wide [`FdBudget`]; returns the limit and budget.
pub fn install_fd_budget() -> std::io::Result<(NofileLimit, usize)> {
    let limit = raise_nofile_limit()?;
    let budget = connection_budget(limit.soft);
    FdBudget::process().set_limit(budget);
    Ok((limit, budget))
}

/// Per-listener connection cap so that `listeners` listeners at their cap fit in the budget
/// together: one listener full of idle connections cannot take the others' descriptors.
pub fn fair_share(max_connections: usize, listeners: usize, budget: usize) -> usize {
    if listeners == 0 {
        return max_connections;
    }
    max_connections.min((budget / listeners).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_the_reserve_and_shares_are_fair() {
        assert_eq!(connection_budget(20_000), 20_000 - FD_RESERVE);
        assert_eq!(connection_budget(256), 128);
        assert_eq!(connection_budget(0), 1);
        assert_eq!(fair_share(1000, 6, 20_000), 1000);
        assert_eq!(fair_share(1000, 6, 768), 128);
        assert_eq!(fair_share(1000, 0, 768), 1000);
    }

    #[cfg(unix)]
    #[test]
    fn soft_limit_is_raised_to_the_hard_limit() {
        let l = raise_nofile_limit().unwrap();
        assert_eq!(l.soft, l.hard);
    }
}
