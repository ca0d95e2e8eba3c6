//! A [`Destination`] in memory, so that a [`super::Session`] is tested and fuzzed without a file
//! system. It keeps files' contents and checks what the [`Store`](crate::store::Store) checks
//! (a delta's base, sizes, hashes, patches inside the new size); it models files only:
//! directories and symlinks of a manifest are taken as equal.

use std::collections::BTreeMap;

use precopy_proto::{DeltaHeader, FileHeader, Reason, RelPath};

use super::Destination;
use crate::mirror::{Mirror, OwnedKind, TreeNode};
use crate::store::StoreError;

/// Files by path, and what happened to them.
#[derive(Debug, Default)]
pub struct Memory {
    /// Committed files' contents.
    pub files: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Every file committed, in order (a path once per commit of it).
    pub committed: Vec<Vec<u8>>,
    /// Commits fail (a full disk) while set.
    pub fail_commits: bool,
}

/// A file being received into [`Memory`].
#[derive(Debug)]
pub struct MemoryFile {
    rel: Vec<u8>,
    data: Vec<u8>,
}

impl Memory {
    fn holds(&self, rel: &[u8], size: u64, hash: &[u8; 32]) -> bool {
        self.files
            .get(rel)
            .is_some_and(|data| data.len() as u64 == size && blake3::hash(data).as_bytes() == hash)
    }
}

fn integrity(rel: &[u8], why: &str) -> StoreError {
    StoreError::Integrity {
        path: String::from_utf8_lossy(rel).into_owned(),
        why: why.into(),
    }
}

impl Destination for Memory {
    type Incoming = MemoryFile;
    type Sealed = MemoryFile;

    fn begin(&mut self, header: &FileHeader<'_>) -> Result<MemoryFile, StoreError> {
        Ok(MemoryFile {
            rel: header.path.as_bytes().to_vec(),
            data: Vec::new(),
        })
    }

    fn begin_delta(&mut self, header: &DeltaHeader<'_>) -> Result<Option<MemoryFile>, StoreError> {
        let rel = header.path.as_bytes();
        if !self.holds(rel, header.base_size, &header.base_hash) {
            return Ok(None);
        }
        let mut data = self.files[rel].clone();
        // Bounded by the base and a frame's worth of growth: a fuzzer's size is not allocated.
        let limit = data.len() + precopy_proto::limits::MAX_PAYLOAD;
        data.resize(header.size.min(limit as u64) as usize, 0);
        Ok(Some(MemoryFile {
            rel: rel.to_vec(),
            data,
        }))
    }

    fn write(&mut self, file: &mut MemoryFile, data: &[u8]) -> Result<(), StoreError> {
        file.data.extend_from_slice(data);
        Ok(())
    }

    fn patch(&mut self, file: &mut MemoryFile, offset: u64, data: &[u8]) -> Result<(), StoreError> {
        let end = offset.saturating_add(data.len() as u64);
        if end > file.data.len() as u64 {
            return Err(integrity(&file.rel, "a patch past the delta's size"));
        }
        file.data[offset as usize..end as usize].copy_from_slice(data);
        Ok(())
    }

    fn seal(
        &mut self,
        mut file: MemoryFile,
        size: u64,
        hash: &[u8; 32],
    ) -> Result<MemoryFile, StoreError> {
        // A delta's file may have shrunk while the sender read it, as at the store.
        if size < file.data.len() as u64 {
            file.data.truncate(size as usize);
        }
        if file.data.len() as u64 != size {
            return Err(integrity(&file.rel, "size differs from the sender's"));
        }
        if blake3::hash(&file.data).as_bytes() != hash {
            return Err(integrity(&file.rel, "hash differs from the sender's"));
        }
        Ok(file)
    }

    fn commit(&mut self, batch: Vec<MemoryFile>) -> Result<(), StoreError> {
        if self.fail_commits {
            return Err(StoreError::Io {
                path: "batch".into(),
                source: std::io::Error::other("no space left"),
            });
        }
        for file in batch {
            self.committed.push(file.rel.clone());
            self.files.insert(file.rel, file.data);
        }
        Ok(())
    }

    fn has(&mut self, rel: RelPath<'_>, size: u64, hash: &[u8; 32]) -> bool {
        self.holds(rel.as_bytes(), size, hash)
    }

    fn rename_verified(&mut self, from: RelPath<'_>, to: RelPath<'_>) -> Result<bool, StoreError> {
        let Some(data) = self.files.remove(from.as_bytes()) else {
            return Ok(false);
        };
        self.files.insert(to.as_bytes().to_vec(), data);
        Ok(true)
    }

    fn mirror(&mut self, _roots: &[Vec<u8>], nodes: &[TreeNode], verify: bool) -> Mirror {
        let mut mirror = Mirror::default();
        for node in nodes {
            let differs = match &node.kind {
                OwnedKind::File { size, hash } => match self.files.get(&node.rel) {
                    None => Some(Reason::Missing),
                    Some(data) if data.len() as u64 != *size => Some(Reason::Size),
                    Some(_) if !self.holds(&node.rel, *size, hash) => Some(Reason::Hash),
                    Some(_) => None,
                },
                OwnedKind::Dir | OwnedKind::Symlink(_) => None,
            };
            mirror.files.push(differs.is_none());
            if let Some(reason) = differs.filter(|_| verify) {
                mirror.differing.push((node.rel.clone(), reason));
            }
        }
        mirror
    }
}
