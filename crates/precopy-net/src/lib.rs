//! # precopy-net
//!
//! Real migration over TCP: everything `migrate-native send` and `receive` do besides parsing
//! arguments and printing. The pre-copy rounds are the core's [`precopy_core::engine::Engine`],
//! driven here by a clock, a write monitor, walks of the migrated trees and a transport.
//!
//! ```text
//!  send                                              receive
//!  Monitor ──counts──► migrate (core Policy) ──► Transport ═══TCP═══► receiver ──► Store (root)
//!  App (SIGSTOP/SIGCONT of the tree)                  wire: precopy-proto frames
//! ```
//!
//! - [`wire`]: framed connection, token bucket, handshake on both sides.
//! - [`store`]: the receiver's root: safe path resolution, atomic verified writes.
//! - [`mirror`]: the receiver's roots made equal to the stop-time tree, and checked.
//! - [`tree`]: the sender's roots, walked again whenever it needs to know what is there.
//! - [`session`]: one receiving session's sequencing, sans-IO (frames in, actions out).
//! - [`receiver`]: the daemon, one thread per connection: the IO edge of a session.
//! - [`stamp`]: what `stat` says a write would change, and when it proves a file unchanged.
//! - [`monitor`]: where per-period write counts come from (a trait; a stat-polling monitor now, the
//!   ptrace tracer later).
//! - [`app`]: the application's process tree.
//! - [`live`]: the identification step, live, when no file list is given.
//! - [`transport`]: the sender's connection: files out, acks in, reconnect and resume.
//! - [`delta`]: which blocks of a file changed since the version the receiver holds.
//! - [`link`], [`clock`]: what the sender asks of its connection and of time (traits), so the
//!   same loop runs over TCP with the monotonic clock, or in memory in simulated time.
//! - [`simulated`]: those edges in simulated time (a scripted monitor, an in-memory link), so a
//!   real migration can be held side by side with the core's simulator.
//! - [`migrate`]: the pre-copy loop, driven by the core's policy.
//! - [`restart`]: the application started again at the destination, as the user it ran as.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod clock;
pub mod delta;
pub mod link;
pub mod live;
pub mod migrate;
pub mod mirror;
pub mod monitor;
pub mod receiver;
pub mod restart;
pub mod session;
pub mod simulated;
pub mod stamp;
pub mod store;
pub mod transport;
pub mod tree;
pub mod wire;
