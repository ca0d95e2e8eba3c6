//! Deltas, the sender's half: which fixed blocks of a file changed since the version the
//! destination holds, told by comparing each block's digest with the digest of the same block
//! when that version was sent.
//!
//! The digests decide only what is sent, never what is accepted: the destination builds the new
//! version from its copy and the patches, and keeps it only if the whole file's BLAKE3 equals the
//! sender's. A wrong "unchanged" (a stale base, a collision) costs a whole resend, not a wrong
//! file.

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};
use blake3::Hasher;

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

/// The sender's one pass over a file's bytes: each block's digest and the whole file's BLAKE3.
/// A block is 8 of BLAKE3's chunks at a multiple of its own size, a whole subtree of BLAKE3's
/// tree, so its chaining value serves as its digest and the file's hash merges them as BLAKE3's
/// own incremental hasher merges chunks: each byte is hashed once. (Hashing the file, then each
/// block apart, hashed every byte twice: a third of `send`'s CPU on a large tree.)
pub struct FileHasher {
    /// Chaining values of complete subtrees of 2^k blocks, left to right, all but the last
    /// finished block: BLAKE3's chaining-value stack, at block granularity.
    stack: Vec<ChainingValue>,
    /// The last finished block's chaining value, merged once more bytes come (so that the
    /// file's last subtree is merged into the root, not into a non-root parent).
    finished: Option<ChainingValue>,
    /// The block being filled (or, once full, the last block until more bytes come).
    block: Hasher,
    filled: usize,
    blocks: u64,
    digests: Vec<Digest>,
}

impl Default for FileHasher {
    fn default() -> Self {
        FileHasher {
            stack: Vec::new(),
            finished: None,
            block: Hasher::new(),
            filled: 0,
            blocks: 0,
            digests: Vec::new(),
        }
    }
}

fn digest_of(cv: &ChainingValue) -> Digest {
    let mut out = [0u8; 16];
    out.copy_from_slice(&cv[..16]);
    out
}

impl FileHasher {
    /// Takes the file's next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.filled == 0 && self.blocks > 0 {
                if let Some(cv) = self.finished.take() {
                    self.push(cv);
                }
                self.block = Hasher::new();
                self.block.set_input_offset(self.blocks * BLOCK as u64);
            }
            let n = (BLOCK - self.filled).min(data.len());
            self.block.update(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == BLOCK {
                let cv = self.block.finalize_non_root();
                self.digests.push(digest_of(&cv));
                self.finished = Some(cv);
                self.blocks += 1;
                self.filled = 0;
            }
        }
    }

    /// The digests of the blocks finished so far (all whole blocks).
    pub fn digests(&self) -> &[Digest] {
        &self.digests
    }

    /// The file's BLAKE3 and every block's digest, the last (short) block's included.
    pub fn finish(mut self) -> ([u8; 32], Vec<Digest>) {
        let last = if self.filled > 0 {
            let cv = self.block.finalize_non_root();
            self.digests.push(digest_of(&cv));
            if self.blocks == 0 {
                return (*self.block.finalize().as_bytes(), self.digests);
            }
            cv
        } else {
            match (self.blocks, self.finished) {
                // One whole block: the block's hasher is the whole file's.
                (1, _) => return (*self.block.finalize().as_bytes(), self.digests),
                (_, Some(cv)) => cv,
                _ => return (*blake3::hash(&[]).as_bytes(), self.digests),
            }
        };
        // Two blocks or more: the stack holds the subtrees left of the last block, merged from
        // the right; the leftmost merge is the root.
        let (first, rest) =
            (self.stack.split_first()).expect("block 0 is on the stack once block 1 began");
        let right = (rest.iter().rev()).fold(last, |right, left| {
            merge_subtrees_non_root(left, &right, Mode::Hash)
        });
        let hash = merge_subtrees_root(first, &right, Mode::Hash);
        (*hash.as_bytes(), self.digests)
    }

    /// Pushes block `self.blocks - 1`'s chaining value, merging the subtrees it completes (as
    /// many as the trailing zero bits of the block count).
    fn push(&mut self, mut cv: ChainingValue) {
        let mut count = self.blocks;
        while count & 1 == 0 {
            let left = self
                .stack
                .pop()
                .expect("a completed subtree has a left half");
            cv = merge_subtrees_non_root(&left, &cv, Mode::Hash);
            count >>= 1;
        }
        self.stack.push(cv);
    }
}

/// The byte ranges of `data` (runs of whole blocks, coalesced) whose digest in `digests` (the
/// new version's, from a [`FileHasher`]) differs from `old`'s at the same index, or that `old`
/// does not have unless they are zeros (the destination extends its copy with zeros). `data`
/// starts at block `first` of its file and holds whole blocks but for the file's last one.
pub fn changed_runs(
    old: &[Digest],
    first: usize,
    data: &[u8],
    digests: &[Digest],
) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, block) in data.chunks(BLOCK).enumerate() {
        let unchanged = match old.get(first + i) {
            Some(before) => *before == digests[first + i],
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
        let mut hasher = FileHasher::default();
        hasher.update(data);
        hasher.finish().1
    }

    /// BLAKE3's own hash of the file, and the digests of blocks hashed on their own as subtrees
    /// at their offsets: what `FileHasher` must give in one pass, however the bytes arrive.
    #[test]
    fn one_pass_gives_blake3s_hash_and_each_blocks_own_digest() {
        let data: Vec<u8> = (0..40 * BLOCK + 17).map(|i| (i * 31 % 251) as u8).collect();
        let lengths = [
            0,
            1,
            1023,
            1024,
            1025,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK,
            3 * BLOCK,
            3 * BLOCK + 5,
            4 * BLOCK,
            7 * BLOCK + 100,
            8 * BLOCK,
            9 * BLOCK,
            33 * BLOCK,
            data.len(),
        ];
        for len in lengths {
            let file = &data[..len];
            let alone: Vec<Digest> = file
                .chunks(BLOCK)
                .enumerate()
                .map(|(i, block)| {
                    let mut h = Hasher::new();
                    h.set_input_offset((i * BLOCK) as u64).update(block);
                    digest_of(&h.finalize_non_root())
                })
                .collect();
            for piece in [1000, BLOCK, 3 * BLOCK + 7, usize::MAX] {
                let mut hasher = FileHasher::default();
                for part in file.chunks(piece.min(file.len()).max(1)) {
                    hasher.update(part);
                }
                let (hash, digests) = hasher.finish();
                assert_eq!(
                    hash,
                    *blake3::hash(file).as_bytes(),
                    "{len} bytes in {piece}s"
                );
                assert_eq!(digests, alone, "{len} bytes in {piece}s");
            }
        }
    }

    #[test]
    fn only_changed_blocks_are_named_and_neighbours_coalesce() {
        let old_file = vec![1u8; 5 * BLOCK];
        let old = digests_of(&old_file);
        let mut new_file = old_file.clone();
        new_file[BLOCK + 3] = 9; // block 1
        new_file[2 * BLOCK] = 9; // block 2, next to 1
        new_file[4 * BLOCK + 100] = 9; // block 4
        let runs = changed_runs(&old, 0, &new_file, &digests_of(&new_file));
        assert_eq!(runs, [(BLOCK, 3 * BLOCK), (4 * BLOCK, 5 * BLOCK)]);
    }

    #[test]
    fn an_append_sends_the_grown_last_block_and_the_new_ones() {
        let old_file = vec![7u8; 2 * BLOCK + 10];
        let old = digests_of(&old_file);
        let mut new_file = old_file.clone();
        new_file.extend_from_slice(&[8u8; BLOCK]);
        let digests = digests_of(&new_file);
        // In two reads, as the sender does: the second starts at block 2.
        assert!(changed_runs(&old, 0, &new_file[..2 * BLOCK], &digests).is_empty());
        let runs = changed_runs(&old, 2, &new_file[2 * BLOCK..], &digests);
        assert_eq!(runs, [(0, BLOCK + 10)]);
    }

    #[test]
    fn zeros_past_the_old_end_are_not_sent() {
        let old_file = vec![7u8; BLOCK];
        let old = digests_of(&old_file);
        let mut new_file = old_file.clone();
        new_file.resize(4 * BLOCK, 0);
        new_file[3 * BLOCK] = 1;
        let runs = changed_runs(&old, 0, &new_file, &digests_of(&new_file));
        assert_eq!(runs, [(3 * BLOCK, 4 * BLOCK)]);
    }

    #[test]
    fn a_truncation_to_a_block_boundary_sends_nothing() {
        let old_file: Vec<u8> = (0..4 * BLOCK).map(|i| i as u8).collect();
        let old = digests_of(&old_file);
        let cut = &old_file[..2 * BLOCK];
        assert!(changed_runs(&old, 0, cut, &digests_of(cut)).is_empty());
        // Cut inside a block: that block's digest differs.
        let cut = &old_file[..BLOCK + 5];
        let runs = changed_runs(&old, 0, cut, &digests_of(cut));
        assert_eq!(runs, [(BLOCK, BLOCK + 5)]);
    }
}
