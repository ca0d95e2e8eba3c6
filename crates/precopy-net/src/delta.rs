//! Deltas, the sender's half: which fixed blocks of a file changed since the version the
//! destination holds, told by comparing each block's digest with the digest of the same block
//! when that version was sent.
//!
//! The digests decide only what is sent, never what is accepted: the destination builds the new
//! version from its copy and the patches, and keeps it only if the whole file's BLAKE3 equals the
//! sender's. A wrong "unchanged" (a stale base, a collision) costs a whole resend, not a wrong
//! file.

/// Bytes per block. PostgreSQL writes 8 KiB pages and appends WAL in 8 KiB pages, SQLite's
/// default page is 4 KiB; smaller blocks cost more digests for little: see BENCHMARKS.md.
pub const BLOCK: usize = 8192;

/// A block's digest: BLAKE3 cut to 128 bits (a collision only costs a resend, see above).
pub type Digest = [u8; 16];

/// A delta whose share of changed blocks was above this predicts that the file's next resend
/// goes whole: building it at the destination from its copy would cost more than it saves.
pub const WHOLE_ABOVE: f64 = 0.5;

/// How fast resends have moved files, from their acknowledgements: file bytes per second of the
/// pipeline's time (reading at the source, the wire, building and syncing at the destination),
/// for whole sends and for deltas. A delta reads and rebuilds the whole file to send little; on
/// a fast link that can take longer than sending it whole, which matters once the application
/// is stopped.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ResendRates {
    whole: Moved,
    delta: Moved,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Moved {
    bytes: u64,
    seconds: f64,
}

/// The smallest file whose transfer counts towards the rates: deltas go to files sent before,
/// and the ones that matter at the stop are large.
pub const COMPARED_FROM: u64 = 1 << 20;

impl Moved {
    fn rate(self) -> Option<f64> {
        // Only files of COMPARED_FROM bytes or more are counted: one is enough to trust.
        (self.bytes > 0 && self.seconds > 0.0).then(|| self.bytes as f64 / self.seconds)
    }
}

impl ResendRates {
    /// A transfer of a `file_bytes` file, whole or as a delta, took `seconds` of the pipeline.
    /// Files under [`COMPARED_FROM`] are left out: their time is mostly per-file work (creating
    /// the file at the destination), which would make whole sends look slow next to deltas.
    pub fn record(&mut self, as_delta: bool, file_bytes: u64, seconds: f64) {
        if file_bytes < COMPARED_FROM {
            return;
        }
        let moved = if as_delta {
            &mut self.delta
        } else {
            &mut self.whole
        };
        moved.bytes += file_bytes;
        moved.seconds += seconds;
    }

    /// File bytes per second moved by whole sends and by deltas, where measured.
    pub fn rates(&self) -> (Option<f64>, Option<f64>) {
        (self.whole.rate(), self.delta.rate())
    }

    /// Whether deltas have moved files more slowly than whole sends. Until both are measured,
    /// no: a delta is the default.
    pub fn delta_is_slower(&self) -> bool {
        matches!(self.rates(), (Some(whole), Some(delta)) if delta < whole)
    }
}

/// The digest of one block.
pub fn digest(block: &[u8]) -> Digest {
    let mut out = [0u8; 16];
    out.copy_from_slice(&blake3::hash(block).as_bytes()[..16]);
    out
}

/// Digests the blocks of `data`, which starts at block `first` of its file, appending them to
/// `digests`; returns the byte ranges of `data` (runs of whole blocks, coalesced) whose digest
/// differs from `old`'s at the same index, or that `old` does not have unless they are zeros
/// (the destination extends its copy with zeros). `data` holds whole blocks but for the file's
/// last one.
pub fn changed_runs(
    old: &[Digest],
    first: usize,
    data: &[u8],
    digests: &mut Vec<Digest>,
) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, block) in data.chunks(BLOCK).enumerate() {
        let d = digest(block);
        digests.push(d);
        let unchanged = match old.get(first + i) {
            Some(before) => *before == d,
            None => block.iter().all(|&b| b == 0),
        };
        if unchanged {
            continue;
        }
        let (start, end) = (i * BLOCK, i * BLOCK + block.len());
        match runs.last_mut() {
            Some(run) if run.1 == start => run.1 = end,
            _ => runs.push((start, end)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_is_slower_only_once_both_kinds_moved_enough_and_it_was() {
        let mut rates = ResendRates::default();
        rates.record(false, 64 << 10, 1e-6); // a small file: not counted
        assert_eq!(rates.rates(), (None, None));
        rates.record(true, 4 << 20, 2.0); // 2 MiB/s
        assert!(!rates.delta_is_slower(), "whole sends not measured yet");
        rates.record(false, 1 << 20, 0.02); // 1 MiB in 0.02 s: 50 MiB/s
        assert!(rates.delta_is_slower());
        rates.record(true, 400 << 20, 1.0); // 404 MiB in 3 s: ~135 MiB/s
        assert!(!rates.delta_is_slower());
    }

    fn digests_of(data: &[u8]) -> Vec<Digest> {
        data.chunks(BLOCK).map(digest).collect()
    }

    #[test]
    fn only_changed_blocks_are_named_and_neighbours_coalesce() {
        let old_file = vec![1u8; 5 * BLOCK];
        let old = digests_of(&old_file);
        let mut new_file = old_file.clone();
        new_file[BLOCK + 3] = 9; // block 1
        new_file[2 * BLOCK] = 9; // block 2, next to 1
        new_file[4 * BLOCK + 100] = 9; // block 4
        let mut digests = Vec::new();
        let runs = changed_runs(&old, 0, &new_file, &mut digests);
        assert_eq!(runs, [(BLOCK, 3 * BLOCK), (4 * BLOCK, 5 * BLOCK)]);
        assert_eq!(digests, digests_of(&new_file));
    }

    #[test]
    fn an_append_sends_the_grown_last_block_and_the_new_ones() {
        let old_file = vec![7u8; 2 * BLOCK + 10];
        let old = digests_of(&old_file);
        let mut new_file = old_file.clone();
        new_file.extend_from_slice(&[8u8; BLOCK]);
        let mut digests = Vec::new();
        // In two reads, as the sender does: the second starts at block 2.
        assert!(changed_runs(&old, 0, &new_file[..2 * BLOCK], &mut digests).is_empty());
        let runs = changed_runs(&old, 2, &new_file[2 * BLOCK..], &mut digests);
        assert_eq!(runs, [(0, BLOCK + 10)]);
        assert_eq!(digests, digests_of(&new_file));
    }

    #[test]
    fn zeros_past_the_old_end_are_not_sent() {
        let old_file = vec![7u8; BLOCK];
        let old = digests_of(&old_file);
        let mut new_file = old_file.clone();
        new_file.resize(4 * BLOCK, 0);
        new_file[3 * BLOCK] = 1;
        let runs = changed_runs(&old, 0, &new_file, &mut Vec::new());
        assert_eq!(runs, [(3 * BLOCK, 4 * BLOCK)]);
    }

    #[test]
    fn a_truncation_to_a_block_boundary_sends_nothing() {
        let old_file: Vec<u8> = (0..4 * BLOCK).map(|i| i as u8).collect();
        let old = digests_of(&old_file);
        let mut digests = Vec::new();
        assert!(changed_runs(&old, 0, &old_file[..2 * BLOCK], &mut digests).is_empty());
        // Cut inside a block: that block's digest differs.
        let runs = changed_runs(&old, 0, &old_file[..BLOCK + 5], &mut Vec::new());
        assert_eq!(runs, [(BLOCK, BLOCK + 5)]);
    }
}
