//! Per-architecture register access and system call numbers. Only x86-64 is implemented; the
//! rest of the crate sees [`Regs`] and [`Sys`](crate::syscall::Sys), never a raw register.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;
