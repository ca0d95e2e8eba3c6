//! What the sender asks of its connection to the destination: a [`Link`]. A real migration uses
//! the TCP [`Transport`]; under test, `simulated::MemoryLink` keeps the destination in memory and
//! charges each transfer its time on a simulated link.

use std::path::Path;
use std::time::Duration;

use precopy_proto::{Entry, Identity, Node, RelPath};

use super::delta::ResendRates;
use super::transport::{Restarted, SendError, Sent, Transport, Verdict};
use super::wire::WireError;

/// The sender's side of a session with the destination. See [`Transport`] for what each call
/// means on the wire.
pub trait Link {
    /// Sends one file as it is now; `None` if it is no longer a regular file there.
    fn send_file(
        &mut self,
        file: usize,
        rel: &[u8],
        path: &Path,
    ) -> Result<Option<Sent>, SendError>;
    /// Handles what the destination said meanwhile, without waiting.
    fn drain(&mut self) -> Result<(), WireError>;
    /// Waits until every transfer is acknowledged.
    fn wait_acks(&mut self) -> Result<(), WireError>;
    /// The destination's copy at `from` is now at `to`, its content unchanged.
    fn rename(&mut self, from: RelPath<'_>, to: RelPath<'_>) -> Result<(), WireError>;
    /// Which of these files the destination holds, verified, with this size and hash.
    fn query(&mut self, entries: &[Entry<'_>]) -> Result<Vec<bool>, WireError>;
    /// Makes the destination's roots equal to the stop-time tree but for file contents; per
    /// node, whether the destination's copy is equal now.
    fn mirror(&mut self, roots: &[RelPath<'_>], nodes: &[Node<'_>])
        -> Result<Vec<bool>, WireError>;
    /// The destination's verdict on the stop-time tree.
    fn verify(&mut self, roots: &[RelPath<'_>], nodes: &[Node<'_>]) -> Result<Verdict, WireError>;
    /// Starts the application at the destination; its pid there, and how long it had run when
    /// the destination answered.
    fn restart(
        &mut self,
        cwd: RelPath<'_>,
        identity: Identity<'_>,
        argv: &[&[u8]],
    ) -> Result<Restarted, WireError>;
    /// Connects again, trying for up to `patience`; unacknowledged transfers are forgotten.
    fn reconnect(&mut self, patience: Duration) -> Result<(), WireError>;
    /// The destination's own reason for a failure, where it gave one.
    fn explain(&mut self, error: WireError) -> WireError;
    /// Ends the session.
    fn bye(&mut self);
    /// Bytes written to the link so far, framing included.
    fn written(&self) -> u64;
    /// Reconnections so far.
    fn reconnects(&self) -> u32;
    /// Files whose delta the destination could not apply since last asked: their copy there is
    /// as it was, and they have to go again (whole).
    fn take_refused(&mut self) -> Vec<usize>;
    /// Transfers sent as deltas so far, and how many of them the destination refused.
    fn deltas(&self) -> (u32, u32);
    /// The application is stopped: from now on each resend goes the way predicted to end
    /// sooner, not the way that sends fewer bytes.
    fn minimise_time(&mut self);
    /// How fast whole sends and deltas have moved files so far (file bytes per second).
    fn resend_rates(&self) -> ResendRates;
}

impl Link for Transport {
    fn send_file(
        &mut self,
        file: usize,
        rel: &[u8],
        path: &Path,
    ) -> Result<Option<Sent>, SendError> {
        Transport::send_file(self, file, rel, path)
    }

    fn drain(&mut self) -> Result<(), WireError> {
        Transport::drain(self)
    }

    fn wait_acks(&mut self) -> Result<(), WireError> {
        Transport::wait_acks(self)
    }

    fn rename(&mut self, from: RelPath<'_>, to: RelPath<'_>) -> Result<(), WireError> {
        Transport::rename(self, from, to)
    }

    fn query(&mut self, entries: &[Entry<'_>]) -> Result<Vec<bool>, WireError> {
        Transport::query(self, entries)
    }

    fn mirror(
        &mut self,
        roots: &[RelPath<'_>],
        nodes: &[Node<'_>],
    ) -> Result<Vec<bool>, WireError> {
        Transport::mirror(self, roots, nodes)
    }

    fn verify(&mut self, roots: &[RelPath<'_>], nodes: &[Node<'_>]) -> Result<Verdict, WireError> {
        Transport::verify(self, roots, nodes)
    }

    fn restart(
        &mut self,
        cwd: RelPath<'_>,
        identity: Identity<'_>,
        argv: &[&[u8]],
    ) -> Result<Restarted, WireError> {
        Transport::restart(self, cwd, identity, argv)
    }

    fn reconnect(&mut self, patience: Duration) -> Result<(), WireError> {
        Transport::reconnect(self, patience)
    }

    fn explain(&mut self, error: WireError) -> WireError {
        Transport::explain(self, error)
    }

    fn bye(&mut self) {
        Transport::bye(self)
    }

    fn written(&self) -> u64 {
        Transport::written(self)
    }

    fn reconnects(&self) -> u32 {
        self.reconnects
    }

    fn take_refused(&mut self) -> Vec<usize> {
        Transport::take_refused(self)
    }

    fn deltas(&self) -> (u32, u32) {
        (self.deltas, self.refused_deltas)
    }

    fn minimise_time(&mut self) {
        Transport::minimise_time(self)
    }

    fn resend_rates(&self) -> ResendRates {
        self.rates
    }
}
