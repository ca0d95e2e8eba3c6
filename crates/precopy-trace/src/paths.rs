//! Which paths are recorded, and lexical path resolution.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::TraceError;
use crate::syscall::PathArg;

/// Pseudo file systems never recorded: their "files" are not data to migrate.
const PSEUDO: &[&str] = &["/proc", "/sys", "/dev"];

/// Decides which files are recorded: absolute paths outside /proc, /sys and /dev, matching an
/// `--include` glob (if any) and no `--exclude` glob.
#[derive(Debug, Clone)]
pub struct PathFilter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

fn glob_set(globs: &[String]) -> Result<GlobSet, TraceError> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let parsed = Glob::new(glob).map_err(|e| TraceError::Glob {
            glob: glob.clone(),
            message: e.kind().to_string(),
        })?;
        builder.add(parsed);
    }
    builder.build().map_err(|e| TraceError::Glob {
        glob: globs.join(" "),
        message: e.to_string(),
    })
}

impl PathFilter {
    /// A filter from `--include` and `--exclude` globs (`*` also matches `/`).
    pub fn new(include: &[String], exclude: &[String]) -> Result<PathFilter, TraceError> {
        Ok(PathFilter {
            include: if include.is_empty() {
                None
            } else {
                Some(glob_set(include)?)
            },
            exclude: glob_set(exclude)?,
        })
    }

    /// Whether `path` is recorded. Sockets, pipes and anonymous inodes (`socket:[…]`) are not
    /// absolute paths; a deleted file's link ends in ` (deleted)`.
    pub fn allows(&self, path: &str) -> bool {
        let pseudo = PSEUDO.iter().any(|p| {
            path.strip_prefix(p)
                .is_some_and(|r| r.is_empty() || r.starts_with('/'))
        });
        path.starts_with('/')
            && !pseudo
            && !path.ends_with(" (deleted)")
            && self.include.as_ref().is_none_or(|g| g.is_match(path))
            && !self.exclude.is_match(path)
    }
}

impl Default for PathFilter {
    fn default() -> Self {
        PathFilter {
            include: None,
            exclude: GlobSet::empty(),
        }
    }
}

/// Makes a path argument absolute and removes `.`, `..` and repeated slashes, without touching
/// the file system (symlinks in the base are already resolved by the kernel; symlinks inside a
/// relative path are not). `None` if a relative path's base is unknown.
pub fn resolve(arg: &PathArg) -> Option<String> {
    let joined = if arg.path.starts_with('/') {
        arg.path.clone()
    } else {
        format!("{}/{}", arg.base.as_deref()?, arg.path)
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(path: &str, base: Option<&str>) -> PathArg {
        PathArg {
            path: path.into(),
            base: base.map(Into::into),
        }
    }

    #[test]
    fn resolves_lexically() {
        assert_eq!(resolve(&arg("a/../b/./c", Some("/w"))).unwrap(), "/w/b/c");
        assert_eq!(resolve(&arg("//x//y/", None)).unwrap(), "/x/y");
        assert_eq!(resolve(&arg("../../..", Some("/a"))).unwrap(), "/");
        assert_eq!(resolve(&arg("rel", None)), None);
    }

    #[test]
    fn filters_pseudo_files_and_globs() {
        let all = PathFilter::default();
        assert!(all.allows("/home/u/x"));
        assert!(all.allows("/devices.txt"));
        for no in [
            "/proc/self/maps",
            "/dev/null",
            "/sys",
            "socket:[12]",
            "/tmp/f (deleted)",
        ] {
            assert!(!all.allows(no), "{no}");
        }
        let some = PathFilter::new(&["/data/**".into()], &["*.log".into()]).unwrap();
        assert!(some.allows("/data/a/b.db"));
        assert!(!some.allows("/data/a/b.log"));
        assert!(!some.allows("/etc/passwd"));
        assert!(PathFilter::new(&["a[".into()], &[]).is_err());
    }
}
