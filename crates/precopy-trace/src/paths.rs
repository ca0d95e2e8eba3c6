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

/// The regular files under `trees` that `filter` records, with their sizes, sorted by path: a
/// directory's files the application may never open are still part of what a migration moves
/// (`--tree`). Symlinks are not followed; an unreadable directory or a tree that is not there
/// is an error that names it.
pub fn walk(
    trees: &[std::path::PathBuf],
    filter: &PathFilter,
) -> Result<Vec<(String, u64)>, TraceError> {
    let mut files = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for tree in trees {
        let tree_error = |e: std::io::Error| TraceError::Tree {
            path: tree.display().to_string(),
            message: e.to_string(),
        };
        // Canonical, as the kernel names the files the application opens.
        dirs.push(std::fs::canonicalize(tree).map_err(tree_error)?);
        while let Some(dir) = dirs.pop() {
            let dir_error = |e: std::io::Error| TraceError::Tree {
                path: dir.display().to_string(),
                message: e.to_string(),
            };
            for entry in std::fs::read_dir(&dir).map_err(dir_error)? {
                let entry = entry.map_err(dir_error)?;
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                if kind.is_dir() {
                    dirs.push(path);
                } else if kind.is_file() {
                    let name = path.to_string_lossy().into_owned();
                    // A file gone since it was listed is not part of the tree.
                    if let (true, Ok(meta)) = (filter.allows(&name), entry.metadata()) {
                        files.push((name, meta.len()));
                    }
                }
            }
        }
    }
    files.sort();
    files.dedup_by(|a, b| a.0 == b.0);
    Ok(files)
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

    #[test]
    fn a_walk_lists_the_trees_regular_files_the_filter_records() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::write(root.join("b"), "12345").unwrap();
        std::fs::write(root.join("d/e/a"), "").unwrap();
        std::fs::write(root.join("skip.log"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("b"), root.join("link")).unwrap();
        let filter = PathFilter::new(&[], &["*.log".to_string()]).unwrap();
        // The same tree twice, once through a relative-looking detour: each file once.
        let trees = [root.clone(), root.join("d/../d")];
        let name = |rel: &str| root.join(rel).display().to_string();
        assert_eq!(
            walk(&trees, &filter).unwrap(),
            [(name("b"), 5), (name("d/e/a"), 0)]
        );
        let missing = walk(&[root.join("nowhere")], &filter).unwrap_err();
        assert!(missing.to_string().contains("nowhere"), "{missing}");
    }
}
