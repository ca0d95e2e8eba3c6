//! Normalised relative paths: the only form in which a path crosses the wire.
//!
//! The sender strips the leading `/` of a source path; the receiver joins what it gets under its
//! root. Whatever the peer sends, a [`RelPath`] has no absolute form, no `..` or `.` component, no
//! empty component (`a//b`, trailing `/`) and no NUL, so joining it cannot climb out of the root
//! (symlinks already under the root are the receiver's to check).

use thiserror::Error;

/// Longest path accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is empty.
    #[error("empty path")]
    Empty,
    /// Longer than [`MAX_PATH`] bytes.
    #[error("path longer than {MAX_PATH} bytes")]
    TooLong,
    /// Starts with `/`.
    #[error("absolute path")]
    Absolute,
    /// Contains a NUL byte.
    #[error("path contains NUL")]
    Nul,
    /// `a//b` or a trailing `/`.
    #[error("empty path component")]
    EmptyComponent,
    /// A `.` component.
    #[error("`.` path component")]
    Dot,
    /// A `..` component.
    #[error("`..` path component")]
    Parent,
    /// A source path that does not start with `/`.
    #[error("source path is not absolute")]
    NotAbsolute,
}

/// A checked relative path, borrowed from its bytes (Linux paths are bytes, not UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath<'a>(&'a [u8]);

impl<'a> RelPath<'a> {
    /// Checks `bytes`.
    pub fn new(bytes: &'a [u8]) -> Result<RelPath<'a>, PathError> {
        if bytes.is_empty() {
            return Err(PathError::Empty);
        }
        if bytes.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        if bytes[0] == b'/' {
            return Err(PathError::Absolute);
        }
        if bytes.contains(&0) {
            return Err(PathError::Nul);
        }
        for component in bytes.split(|&b| b == b'/') {
            match component {
                b"" => return Err(PathError::EmptyComponent),
                b"." => return Err(PathError::Dot),
                b".." => return Err(PathError::Parent),
                _ => {}
            }
        }
        Ok(RelPath(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The components, none empty, `.` or `..`.
    pub fn components(&self) -> impl Iterator<Item = &'a [u8]> {
        self.0.split(|&b| b == b'/')
    }
}

/// Turns an absolute source path into its wire form: `/var/app/db` → `var/app/db`. Repeated
/// slashes and `.` components are dropped; `..` is refused (the sender must resolve it first).
pub fn relative_of_absolute(path: &[u8]) -> Result<Vec<u8>, PathError> {
    if path.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut out = Vec::with_capacity(path.len());
    for component in path.split(|&b| b == b'/') {
        match component {
            b"" | b"." => continue,
            b".." => return Err(PathError::Parent),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(component);
            }
        }
    }
    RelPath::new(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        for ok in [
            &b"a"[..],
            b"a/b/c",
            b"var/app/db.sqlite",
            b"..a/b..",
            b".hidden/x",
        ] {
            assert!(
                RelPath::new(ok).is_ok(),
                "{:?}",
                String::from_utf8_lossy(ok)
            );
        }
    }

    #[test]
    fn refuses_escapes_and_odd_forms() {
        let cases: [(&[u8], PathError); 9] = [
            (b"", PathError::Empty),
            (b"/etc/passwd", PathError::Absolute),
            (b"..", PathError::Parent),
            (b"a/../../b", PathError::Parent),
            (b"a/..", PathError::Parent),
            (b"a//b", PathError::EmptyComponent),
            (b"a/", PathError::EmptyComponent),
            (b"./a", PathError::Dot),
            (b"a\0b", PathError::Nul),
        ];
        for (path, error) in cases {
            assert_eq!(RelPath::new(path), Err(error));
        }
        assert_eq!(RelPath::new(&[b'a'; MAX_PATH + 1]), Err(PathError::TooLong));
    }

    #[test]
    fn absolute_source_paths_become_relative() {
        assert_eq!(
            relative_of_absolute(b"/var//app/./db").unwrap(),
            b"var/app/db"
        );
        assert_eq!(relative_of_absolute(b"/a/../b"), Err(PathError::Parent));
        assert_eq!(relative_of_absolute(b"rel"), Err(PathError::NotAbsolute));
        assert_eq!(relative_of_absolute(b"/"), Err(PathError::Empty));
    }
}
