//! Which processes are the application's, known exactly without stopping it: the kernel's proc
//! connector (netlink `NETLINK_CONNECTOR`, group `CN_IDX_PROC`) reports every fork on the
//! system, and the application is its root process and every process forked from one of its
//! processes ([`Lineage`]).
//!
//! Why this is exact where reading `/proc/PID/cgroup` is not: the kernel queues a fork's notice
//! before the child first runs (`copy_process` sends it before `wake_up_new_task`), so by the
//! time a file event of the child is read from fanotify, its fork's notice is already queued
//! here. Reading the fanotify batch first and then every queued notice ([`Forks::read_into`])
//! therefore places every event of the batch, even of a process that has exited and been
//! reaped since. Lost notices (the socket's buffer overflowed) are reported by the kernel
//! (`ENOBUFS`) and counted; the caller then re-admits the processes its cgroup holds.
//!
//! A socket filter (classic BPF) passes only the forks that make a process (not a thread), so
//! the reader wakes for nothing else. Needs `CAP_NET_ADMIN` and the initial pid and user
//! namespaces (the kernel reports pids as the initial namespace numbers them, and ignores
//! listeners elsewhere: that is detected by waiting for its acknowledgement).

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{bind, recv, send, setsockopt, sockopt, MsgFlags, NetlinkAddr};

use crate::error::TraceError;

/// `struct nlmsghdr`: length, type, flags, sequence, port.
const NLMSG_HDR: usize = 16;
/// `struct cn_msg`: idx, val, seq, ack, len (u16), flags (u16).
const CN_MSG: usize = 20;
/// Where `struct proc_event` starts: `what`, `cpu`, `timestamp_ns`, then the event's data.
const EVENT: usize = NLMSG_HDR + CN_MSG;
/// Where a fork's `parent_pid, parent_tgid, child_pid, child_tgid` start.
const FORK_DATA: usize = EVENT + 16;
/// `NLMSG_DONE`: the connector sends each message as one.
const NLMSG_DONE: u16 = 3;
/// `struct proc_event`'s `what` for a fork, and for the acknowledgement of a subscription.
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_NONE: u32 = 0;
/// The kernel's receive buffer for the notices (`SO_RCVBUFFORCE`): room for tens of thousands
/// of forks while the reader is not scheduled.
const RECEIVE_BUFFER: usize = 16 << 20;

/// A new process: `child` was forked by a thread of process `parent` (thread group ids, as the
/// initial pid namespace numbers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fork {
    /// The forking process.
    pub parent: u32,
    /// The new process.
    pub child: u32,
}

/// What one datagram of the proc connector says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A process was forked.
    Fork(Fork),
    /// The acknowledgement of a (un)subscription: `ack` is the request's `ack` + 1, `err` an
    /// errno (0: done).
    Ack {
        /// The request's `ack` field plus one.
        ack: u32,
        /// 0, or why the request was refused.
        err: u32,
    },
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(word.try_into().ok()?))
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let word = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_ne_bytes(word.try_into().ok()?))
}

/// The notices in one datagram (netlink messages back to back, each 4-byte aligned). Bytes that
/// are not a well-formed proc connector message are skipped: a fork of a thread, another event
/// type, a truncated or malformed message.
pub fn parse(datagram: &[u8]) -> Vec<Notice> {
    let mut notices = Vec::new();
    let mut rest = datagram;
    while let Some(len) = u32_at(rest, 0) {
        let len = len as usize;
        let Some(message) = rest.get(..len).filter(|_| len >= NLMSG_HDR) else {
            break;
        };
        if let Some(notice) = notice(message) {
            notices.push(notice);
        }
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    notices
}

/// One netlink message, if it is a proc connector fork of a process or an acknowledgement.
fn notice(message: &[u8]) -> Option<Notice> {
    let is_proc = u16_at(message, 4)? == NLMSG_DONE
        && u32_at(message, NLMSG_HDR)? == libc::CN_IDX_PROC
        && u32_at(message, NLMSG_HDR + 4)? == libc::CN_VAL_PROC;
    if !is_proc {
        return None;
    }
    match u32_at(message, EVENT)? {
        PROC_EVENT_FORK => {
            let field = |i: usize| u32_at(message, FORK_DATA + 4 * i);
            let (parent, child_pid, child) = (field(1)?, field(2)?, field(3)?);
            (child_pid == child).then_some(Notice::Fork(Fork { parent, child }))
        }
        PROC_EVENT_NONE => Some(Notice::Ack {
            ack: u32_at(message, NLMSG_HDR + 12)?,
            err: u32_at(message, FORK_DATA)?,
        }),
        _ => None,
    }
}

/// The application's processes: its root and every process forked by one of them, exited or
/// not (a file event may be read after its process is gone).
#[derive(Debug, Clone, Default)]
pub struct Lineage {
    members: HashSet<u32>,
    /// The root, until the notice of its own fork (by us) is read.
    unborn: Option<u32>,
}

impl Lineage {
    /// The lineage of `root`, a process forked after the notices began to be queued.
    pub fn of(root: u32) -> Lineage {
        Lineage {
            members: HashSet::from([root]),
            unborn: Some(root),
        }
    }

    /// Counts `pid` in (a process found in the application's cgroup after notices were lost).
    pub fn admit(&mut self, pid: u32) {
        self.members.insert(pid);
    }

    /// Takes a fork into account. A child of an outsider that has a member's pid means that pid
    /// was freed and reused: it is no longer the application's.
    pub fn fork(&mut self, fork: Fork) {
        if self.unborn == Some(fork.child) {
            self.unborn = None;
        } else if self.members.contains(&fork.parent) {
            self.members.insert(fork.child);
        } else {
            self.members.remove(&fork.child);
        }
    }

    /// Whether process `pid` is (or was) the application's.
    pub fn contains(&self, pid: u32) -> bool {
        self.members.contains(&pid)
    }
}

/// Notices were lost: the socket's buffer overflowed (`ENOBUFS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost;

/// A subscription to the proc connector's fork notices.
#[derive(Debug)]
pub struct Forks {
    socket: OwnedFd,
    buffer: Vec<u8>,
}

/// Classic BPF: pass a fork whose child is a process (`child_pid == child_tgid`), drop the rest
/// (exec, exit, thread creation… of every process on the system). `BPF_ABS` loads are
/// big-endian: the event type is compared byte-swapped. Jumps count from the next instruction.
fn only_process_forks() -> [libc::sock_filter; 8] {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let jeq = libc::BPF_JMP | libc::BPF_JEQ;
    let ret = libc::BPF_RET | libc::BPF_K;
    [
        op(load, 0, 0, EVENT as u32),
        op(jeq | libc::BPF_K, 0, 4, PROC_EVENT_FORK.to_be()),
        op(load, 0, 0, (FORK_DATA + 12) as u32),
        op(libc::BPF_MISC | libc::BPF_TAX, 0, 0, 0),
        op(load, 0, 0, (FORK_DATA + 8) as u32),
        op(jeq | libc::BPF_X, 1, 0, 0),
        op(ret, 0, 0, 0),
        op(ret, 0, 0, u32::MAX),
    ]
}

impl Forks {
    /// Subscribes, and waits for the kernel to acknowledge it (sent while our request is
    /// handled): no acknowledgement means the kernel ignored us (not in the initial
    /// namespaces), a refusal that we lack `CAP_NET_ADMIN`.
    pub fn subscribe() -> Result<Forks, TraceError> {
        let fail = |what: &str, e: Errno| TraceError::ProcConnector(format!("{what}: {e}"));
        // SAFETY: socket(2) with constant arguments; the fd is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_CONNECTOR,
            )
        };
        if raw < 0 {
            return Err(fail("netlink socket", Errno::last()));
        }
        // SAFETY: a new descriptor nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(raw) };
        bind(raw, &NetlinkAddr::new(0, libc::CN_IDX_PROC)).map_err(|e| fail("bind", e))?;
        // Without the privilege to force it, the default buffer is what we get.
        if setsockopt(&socket, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
            let _ = setsockopt(&socket, sockopt::RcvBuf, &RECEIVE_BUFFER);
        }
        let mut forks = Forks {
            socket,
            buffer: vec![0; 4096],
        };
        let cookie = std::process::id();
        forks.request(libc::PROC_CN_MCAST_LISTEN, cookie)?;
        match forks.acknowledgement(cookie)? {
            Some(0) => {}
            Some(err) => {
                return Err(fail(
                    "subscribing (it needs CAP_NET_ADMIN)",
                    Errno::from_raw(err as i32),
                ))
            }
            None => {
                return Err(TraceError::ProcConnector(
                    "the kernel did not answer the subscription (it only serves the initial \
                     pid and user namespaces)"
                        .into(),
                ))
            }
        }
        forks.filter()?;
        Ok(forks)
    }

    /// Sends `op` (listen or ignore) with `ack` as the request's cookie.
    fn request(&self, op: libc::proc_cn_mcast_op, ack: u32) -> Result<(), TraceError> {
        let mut message = Vec::with_capacity(EVENT + 4);
        message.extend_from_slice(&((EVENT + 4) as u32).to_ne_bytes());
        message.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(&std::process::id().to_ne_bytes());
        message.extend_from_slice(&libc::CN_IDX_PROC.to_ne_bytes());
        message.extend_from_slice(&libc::CN_VAL_PROC.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(&ack.to_ne_bytes());
        message.extend_from_slice(&4u16.to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes());
        message.extend_from_slice(&op.to_ne_bytes());
        send(self.socket.as_raw_fd(), &message, MsgFlags::empty())
            .map(drop)
            .map_err(|e| TraceError::ProcConnector(format!("subscribing: {e}")))
    }

    /// The error code of the acknowledgement of the request with cookie `ack`, among what is
    /// queued now (the kernel answers before our `send` returns).
    fn acknowledgement(&mut self, ack: u32) -> Result<Option<u32>, TraceError> {
        loop {
            match recv(self.socket.as_raw_fd(), &mut self.buffer, MsgFlags::empty()) {
                Ok(n) => {
                    let answer = parse(&self.buffer[..n]).into_iter().find_map(|notice| {
                        matches!(notice, Notice::Ack { ack: a, .. } if a == ack.wrapping_add(1))
                            .then_some(notice)
                    });
                    if let Some(Notice::Ack { err, .. }) = answer {
                        return Ok(Some(err));
                    }
                }
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR | Errno::ENOBUFS) => {}
                Err(e) => return Err(TraceError::ProcConnector(format!("subscribing: {e}"))),
            }
        }
    }

    /// Attaches [`only_process_forks`].
    fn filter(&self) -> Result<(), TraceError> {
        let mut code = only_process_forks();
        let fprog = libc::sock_fprog {
            len: code.len() as u16,
            filter: code.as_mut_ptr(),
        };
        // SAFETY: setsockopt(2) reads `fprog` and the program it points to, both alive here.
        let done = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if done != 0 {
            return Err(TraceError::ProcConnector(format!(
                "socket filter: {}",
                Errno::last()
            )));
        }
        Ok(())
    }

    /// Applies every queued notice to `lineage`, in order. `Err(Lost)` if some were lost
    /// since the last read (the rest are applied all the same).
    pub fn read_into(&mut self, lineage: &mut Lineage) -> Result<(), Lost> {
        let mut lost = false;
        loop {
            match recv(self.socket.as_raw_fd(), &mut self.buffer, MsgFlags::empty()) {
                Ok(n) => {
                    for notice in parse(&self.buffer[..n]) {
                        if let Notice::Fork(fork) = notice {
                            lineage.fork(fork);
                        }
                    }
                }
                Err(Errno::ENOBUFS) => lost = true,
                Err(Errno::EINTR) => {}
                // EAGAIN: all read.
                Err(_) => break,
            }
        }
        if lost {
            Err(Lost)
        } else {
            Ok(())
        }
    }
}

impl AsFd for Forks {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl Drop for Forks {
    fn drop(&mut self) {
        // Older kernels count listeners, not sockets: say we are done, so forks stop being
        // reported to nobody.
        let _ = self.request(libc::PROC_CN_MCAST_IGNORE, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proc connector message as the kernel lays it out.
    fn message(what: u32, data: [u32; 4], ack: u32) -> Vec<u8> {
        let mut m = Vec::new();
        let len = (FORK_DATA + 16) as u32;
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&[0; 2]);
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&libc::CN_IDX_PROC.to_ne_bytes());
        m.extend_from_slice(&libc::CN_VAL_PROC.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&ack.to_ne_bytes());
        m.extend_from_slice(&((FORK_DATA + 16 - EVENT) as u16).to_ne_bytes());
        m.extend_from_slice(&[0; 2]);
        m.extend_from_slice(&what.to_ne_bytes());
        m.extend_from_slice(&[0; 12]);
        for word in data {
            m.extend_from_slice(&word.to_ne_bytes());
        }
        m
    }

    #[test]
    fn forks_of_processes_are_read_and_the_rest_skipped() {
        let mut datagram = message(PROC_EVENT_FORK, [10, 10, 11, 11], 0);
        // A thread of 10: not a new process.
        datagram.extend(message(PROC_EVENT_FORK, [10, 10, 12, 10], 0));
        // An exec.
        datagram.extend(message(2, [11, 11, 0, 0], 0));
        datagram.extend(message(PROC_EVENT_NONE, [7, 0, 0, 0], 43));
        assert_eq!(
            parse(&datagram),
            [
                Notice::Fork(Fork {
                    parent: 10,
                    child: 11
                }),
                Notice::Ack { ack: 43, err: 7 },
            ]
        );
    }

    #[test]
    fn malformed_bytes_are_skipped_without_panicking() {
        let whole = message(PROC_EVENT_FORK, [1, 1, 2, 2], 0);
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]), [], "cut at {cut}");
        }
        let mut zero_length = whole.clone();
        zero_length[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse(&zero_length), []);
        let mut huge = whole.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(parse(&huge), []);
        let mut other_connector = whole;
        other_connector[NLMSG_HDR] = 9;
        assert_eq!(parse(&other_connector), []);
    }

    proptest::proptest! {
        /// The kernel's bytes are parsed without trusting them: anything goes, nothing panics,
        /// and a fork message among garbage is still read when the garbage is framed.
        #[test]
        fn any_bytes_parse_without_panicking(bytes: Vec<u8>, parent: u32, child: u32) {
            parse(&bytes);
            let mut framed = message(PROC_EVENT_FORK, [parent, parent, child, child], 0);
            let mut junk = bytes.clone();
            junk.resize(junk.len().next_multiple_of(4).max(NLMSG_HDR), 0);
            let len = junk.len() as u32;
            junk[..4].copy_from_slice(&len.to_ne_bytes());
            framed.extend(junk);
            let notices = parse(&framed);
            proptest::prop_assert_eq!(&notices[0], &Notice::Fork(Fork { parent, child }));
        }
    }

    #[test]
    fn the_lineage_follows_forks_and_drops_reused_pids() {
        let mut lineage = Lineage::of(100);
        // The root's own fork, by whoever started it.
        lineage.fork(Fork {
            parent: 1,
            child: 100,
        });
        lineage.fork(Fork {
            parent: 100,
            child: 101,
        });
        lineage.fork(Fork {
            parent: 101,
            child: 102,
        });
        lineage.fork(Fork {
            parent: 7,
            child: 8,
        });
        assert!([100, 101, 102].iter().all(|&p| lineage.contains(p)));
        assert!(!lineage.contains(8) && !lineage.contains(7));
        // 101 exited long ago; an outsider's child got its pid.
        lineage.fork(Fork {
            parent: 7,
            child: 101,
        });
        assert!(!lineage.contains(101));
        assert!(lineage.contains(102), "its children stay the application's");
        lineage.fork(Fork {
            parent: 1,
            child: 100,
        });
        assert!(!lineage.contains(100), "the root's pid, reused");
    }
}
