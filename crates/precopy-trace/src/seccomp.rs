//! The seccomp filter installed in a spawned application: `SECCOMP_RET_TRACE` for the calls the
//! decoder needs, `SECCOMP_RET_ALLOW` for everything else, so the application only stops when a
//! stop can change what we record (strace's `--seccomp-bpf` idea).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::arch;
use crate::error::TraceError;
use crate::syscall::Sys;

fn eq(arg: u8, value: u64) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
}

fn has_bits(arg: u8, bits: u64) -> Result<SeccompCondition, seccompiler::BackendError> {
    SeccompCondition::new(
        arg,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(bits),
        bits,
    )
}

fn rules(sys: Sys) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    Ok(match sys {
        // Only the fcntl commands that change the fd table.
        Sys::Fcntl => [libc::F_DUPFD, libc::F_DUPFD_CLOEXEC, libc::F_SETFD]
            .into_iter()
            .map(|cmd| SeccompRule::new(vec![eq(1, cmd as u64)?]))
            .collect::<Result<_, _>>()?,
        // Only shared, writable mappings: malloc's anonymous mmaps must not stop.
        Sys::Mmap => vec![SeccompRule::new(vec![
            has_bits(2, libc::PROT_WRITE as u64)?,
            has_bits(3, libc::MAP_SHARED as u64)?,
        ])?],
        // An empty rule list matches every call.
        _ => Vec::new(),
    })
}

/// Compiles the filter for this architecture. With `stop_on_writes` false (the fanotify write
/// monitor), the calls only the exact mode needs ([`Sys::exact_mode_only`]) run without
/// stopping.
pub fn program(stop_on_writes: bool) -> Result<BpfProgram, TraceError> {
    let filter_error = |e: seccompiler::BackendError| TraceError::Filter(e.to_string());
    let mut map = BTreeMap::new();
    for (sys, nr) in arch::SYSCALLS
        .iter()
        .filter(|(s, _)| s.traced() && (stop_on_writes || !s.exact_mode_only()))
    {
        map.insert(*nr, rules(*sys).map_err(filter_error)?);
    }
    let filter = SeccompFilter::new(
        map,
        SeccompAction::Allow,
        SeccompAction::Trace(0),
        arch::TARGET_ARCH,
    )
    .map_err(filter_error)?;
    filter.try_into().map_err(filter_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles() {
        let exact = program(true).unwrap();
        assert!(exact.len() > 20, "{} instructions", exact.len());
        let opens_only = program(false).unwrap();
        assert!(opens_only.len() < exact.len());
    }
}
