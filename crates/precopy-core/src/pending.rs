//! The files that still have to go (unsent or dirty), kept by the engine as their status changes,
//! so that a plan costs what it sends rather than a pass over every file.

use alloc::vec::Vec;

use crate::dataset::Kind;
use crate::policy::FileView;

/// A set of small integers, one bit each: walking it costs a word per 64 ids.
#[derive(Debug, Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn grow(&mut self, len: usize) {
        self.0.resize(len.div_ceil(64), 0);
    }

    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }

    /// The members in ascending order.
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut word = word;
            core::iter::from_fn(move || {
                (word != 0).then(|| {
                    let bit = word.trailing_zeros() as usize;
                    word &= word - 1;
                    w * 64 + bit
                })
            })
        })
    }
}

/// See the module docs. The ReadWrite files are also kept in ascending (size, id), the order in
/// which a period-based plan takes those whose key is +0.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending {
    /// Every pending file, by id.
    all: Bits,
    /// The pending ReadOnly files, by id.
    read_only: Bits,
    /// The pending ReadWrite files, by rank in `by_size`.
    read_write: Bits,
    read_write_len: usize,
    /// ReadWrite ids in ascending (size, id), and each id's rank in it.
    by_size: Vec<u32>,
    rank: Vec<u32>,
    /// A size changed or a file joined since `by_size` was sorted; `read_write` waits for it.
    stale: bool,
}

impl Pending {
    /// The pending ones of `files`.
    pub(crate) fn new(files: &[FileView]) -> Pending {
        let mut pending = Pending::default();
        pending.grow(files.len());
        for (id, f) in files.iter().enumerate() {
            if f.status.needs_send() {
                pending.insert(id as u32, f.kind);
            }
        }
        pending.refresh(files);
        pending
    }

    /// Room for `len` files; the new ones are not pending until inserted.
    pub(crate) fn grow(&mut self, len: usize) {
        self.all.grow(len);
        self.read_only.grow(len);
        self.stale = true;
    }

    /// A file's size changed: the size order is re-sorted before the next plan.
    pub(crate) fn resized(&mut self) {
        self.stale = true;
    }

    /// The file has to go.
    pub(crate) fn insert(&mut self, id: u32, kind: Kind) {
        let i = id as usize;
        if self.all.get(i) {
            return;
        }
        self.all.set(i);
        match kind {
            Kind::ReadOnly => self.read_only.set(i),
            Kind::ReadWrite => {
                self.read_write_len += 1;
                if !self.stale {
                    self.read_write.set(self.rank[i] as usize);
                }
            }
        }
    }

    /// The file is cleanly at the destination (or gone).
    pub(crate) fn remove(&mut self, id: u32, kind: Kind) {
        let i = id as usize;
        if !self.all.get(i) {
            return;
        }
        self.all.clear(i);
        match kind {
            Kind::ReadOnly => self.read_only.clear(i),
            Kind::ReadWrite => {
                self.read_write_len -= 1;
                if !self.stale {
                    self.read_write.clear(self.rank[i] as usize);
                }
            }
        }
    }

    /// Re-sorts the size order if sizes changed (the live sender's files grow; simulated ones
    /// never do, so this sorts once per run).
    pub(crate) fn refresh(&mut self, files: &[FileView]) {
        if !self.stale {
            return;
        }
        self.by_size.clear();
        self.by_size.extend(
            (0..files.len() as u32).filter(|&id| files[id as usize].kind == Kind::ReadWrite),
        );
        self.by_size
            .sort_unstable_by_key(|&id| (files[id as usize].size, id));
        self.rank.clear();
        self.rank.resize(files.len(), u32::MAX);
        self.read_write = Bits::default();
        self.read_write.grow(self.by_size.len());
        for (rank, &id) in self.by_size.iter().enumerate() {
            self.rank[id as usize] = rank as u32;
            if self.all.get(id as usize) {
                self.read_write.set(rank);
            }
        }
        self.stale = false;
    }

    /// Whether the file has to go.
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.all.get(id as usize)
    }

    /// Every pending file, by id.
    pub(crate) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.all.iter().map(|i| i as u32)
    }

    /// How many files are pending.
    pub(crate) fn len(&self) -> usize {
        self.all
            .0
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    /// The pending ReadOnly files, by id.
    pub(crate) fn read_only(&self) -> impl Iterator<Item = u32> + '_ {
        self.read_only.iter().map(|i| i as u32)
    }

    /// The pending ReadWrite files in ascending (size, id).
    pub(crate) fn read_write_by_size(&self) -> impl Iterator<Item = u32> + '_ {
        debug_assert!(!self.stale, "refreshed before use");
        self.read_write.iter().map(|rank| self.by_size[rank])
    }

    /// How many ReadWrite files are pending.
    pub(crate) fn read_write_len(&self) -> usize {
        self.read_write_len
    }
}
