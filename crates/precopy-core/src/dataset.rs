//! Data sets: the files an application uses, as the identification step would report them.
//!
//! A data set is built from [`Group`]s (the paper's presets are three groups each) or replayed from
//! a recorded trace (see [`crate::trace`]). Files are kept in path order, which is the baseline's
//! fixed transfer order.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// How a file was opened by the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Kind {
    /// Only ever opened for reading: never updated, never resent.
    #[cfg_attr(feature = "serde", serde(rename = "ro", alias = "readonly"))]
    ReadOnly,
    /// Opened for writing at least once.
    #[cfg_attr(feature = "serde", serde(rename = "rw", alias = "readwrite"))]
    ReadWrite,
}

impl Kind {
    /// The identification step's rule (SPEC §1): ReadWrite if the file was ever opened for
    /// writing, else ReadOnly.
    pub fn opened_for_writing(written: bool) -> Kind {
        if written {
            Kind::ReadWrite
        } else {
            Kind::ReadOnly
        }
    }
}

/// One file of a data set.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FileSpec {
    /// Absolute path at the source host.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// ReadOnly or ReadWrite.
    pub kind: Kind,
    /// The data set's "accessed with probability p"; turned into a write rate by
    /// [`crate::workload::WriteModel`]. Always 0 for ReadOnly files.
    pub access_probability: f64,
}

/// File sizes of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(untagged))]
pub enum SizeSpec {
    /// Every file has this size in bytes.
    Fixed(u64),
    /// `count` files of each size `min, min + step, …, ≤ max`.
    Range {
        /// Smallest size in bytes.
        min: u64,
        /// Largest size in bytes.
        max: u64,
        /// Step in bytes.
        step: u64,
    },
}

/// The most files a data set may have: enough for the 1,000,000-file benchmark with room to spare,
/// small enough that a hostile data-set file cannot exhaust memory.
pub const MAX_FILES: u64 = 10_000_000;

impl SizeSpec {
    /// How many distinct sizes (checked before they are listed).
    fn count(&self) -> u64 {
        match *self {
            SizeSpec::Fixed(_) => 1,
            SizeSpec::Range { min, max, step } => (max - min) / step + 1,
        }
    }

    /// The sizes in ascending order, computed one at a time (`min + i × step` for the `i`-th;
    /// never above `max`, so never overflowing) rather than listed.
    fn sizes(&self) -> impl Iterator<Item = u64> {
        let (first, step) = match *self {
            SizeSpec::Fixed(size) => (size, 0),
            SizeSpec::Range { min, step, .. } => (min, step),
        };
        (0..self.count()).map(move |i| first + i * step)
    }
}

/// A group of alike files: the unit of the paper's data-set descriptions.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Group {
    /// A short name, used in the generated paths.
    pub name: String,
    /// Files per size.
    pub count: u32,
    /// Sizes of the files.
    pub size: SizeSpec,
    /// ReadOnly or ReadWrite.
    pub kind: Kind,
    /// Access probability of each file (0 for ReadOnly groups).
    #[cfg_attr(feature = "serde", serde(default))]
    pub probability: f64,
}

/// A data set failed validation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DatasetError {
    /// No files at all.
    Empty,
    /// A group's access probability is outside [0, 1].
    Probability {
        /// The group's name.
        group: String,
        /// The offending value.
        value: f64,
    },
    /// A ReadOnly group was given a non-zero access probability.
    ReadOnlyWritten {
        /// The group's name.
        group: String,
    },
    /// A size range with a zero step or min > max, or a zero file size.
    Size {
        /// The group's name.
        group: String,
    },
    /// The scale factor is not positive and finite.
    Scale(f64),
    /// More than [`MAX_FILES`] files.
    TooManyFiles,
    /// The data-set file could not be parsed.
    Parse {
        /// 1-based line of the error.
        line: usize,
        /// What is wrong there.
        message: String,
    },
}

impl fmt::Display for DatasetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetError::Empty => f.write_str("the data set has no files"),
            DatasetError::Probability { group, value } => {
                write!(f, "group `{group}`: probability {value} is outside [0, 1]")
            }
            DatasetError::ReadOnlyWritten { group } => write!(
                f,
                "group `{group}`: a ReadOnly group cannot have a write probability"
            ),
            DatasetError::Size { group } => write!(
                f,
                "group `{group}`: sizes must be positive and a range needs min <= max and step > 0"
            ),
            DatasetError::Scale(scale) => {
                write!(f, "scale {scale} must be a positive, finite number")
            }
            DatasetError::TooManyFiles => write!(f, "more than {MAX_FILES} files"),
            DatasetError::Parse { line, message } => write!(f, "line {line}: {message}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DatasetError {}

/// Where a data set's writes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Writes {
    /// Drawn from each file's access probability by the run's [`crate::workload::WriteModel`].
    Synthetic,
    /// Replayed from a trace: per file, the write times in seconds since the trace began.
    Recorded(Vec<Vec<f64>>),
}

/// Where a recorded write landed, as far as the trace knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedExtent {
    /// The offset, if the call had one (pwrite-family); otherwise the simulation draws one.
    pub offset: Option<u64>,
    /// Bytes written; `None` (a truncate, a rename, …) dirties the whole file.
    pub len: Option<u64>,
}

/// The files to migrate and where their writes come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// A human name ("fixed-size", a trace's command, …).
    pub name: String,
    /// The files, sorted by path.
    pub files: Vec<FileSpec>,
    /// Synthetic or recorded writes.
    pub writes: Writes,
    /// Recorded writes' extents, per file in the order of its write times (empty: not recorded).
    pub extents: Vec<Vec<RecordedExtent>>,
    /// When each file appears and vanishes, seconds (empty: every file is there throughout).
    pub lives: Vec<(f64, f64)>,
    /// Each file's recorded sizes after it appears, `(time, size)` by time (empty: sizes fixed).
    pub sizes: Vec<Vec<(f64, u64)>>,
    /// How long the recording lasted, seconds (0: not recorded).
    pub recorded_s: f64,
}

/// One file replayed from a recording: what [`Dataset::replayed`] is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayedFile {
    /// The file; its size is the size when it appears.
    pub spec: FileSpec,
    /// Its write times, sorted.
    pub writes: Vec<f64>,
    /// Each write's extent, in the order of `writes`.
    pub extents: Vec<RecordedExtent>,
    /// When it appears and vanishes (0 and ∞: there throughout).
    pub life: (f64, f64),
    /// Its later sizes, `(time, size)` by time.
    pub sizes: Vec<(f64, u64)>,
}

/// The paper's two data sets (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Preset {
    /// 11,000 files of 200 KB: 1,000 RO, 5,000 RW at 20 %, 5,000 RW at 80 %.
    Fixed,
    /// Sizes 100 KB … 1,000 KB; per size 100 RO, 500 RW at 20 %, 500 RW at 80 %.
    Variable,
}

impl Preset {
    /// All presets, in display order.
    pub const ALL: [Preset; 2] = [Preset::Fixed, Preset::Variable];

    /// The name used on the command line and in URLs.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Fixed => "fixed",
            Preset::Variable => "variable",
        }
    }

    /// Parses a preset name.
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The preset's groups, as the paper describes them.
    pub fn groups(self) -> Vec<Group> {
        const KB: u64 = 1000;
        let size = match self {
            Preset::Fixed => SizeSpec::Fixed(200 * KB),
            Preset::Variable => SizeSpec::Range {
                min: 100 * KB,
                max: 1000 * KB,
                step: 100 * KB,
            },
        };
        let (ro, rw) = match self {
            Preset::Fixed => (1000, 5000),
            Preset::Variable => (100, 500),
        };
        alloc::vec![
            group("ro", ro, size, Kind::ReadOnly, 0.0),
            group("cold", rw, size, Kind::ReadWrite, 0.2),
            group("hot", rw, size, Kind::ReadWrite, 0.8),
        ]
    }

    /// The preset's data set, scaled (1.0 is the paper's size).
    pub fn dataset(self, scale: f64) -> Result<Dataset, DatasetError> {
        let name = match self {
            Preset::Fixed => "fixed-size",
            Preset::Variable => "variable-size",
        };
        Dataset::from_groups(name, &self.groups(), scale)
    }
}

fn group(name: &str, count: u32, size: SizeSpec, kind: Kind, probability: f64) -> Group {
    Group {
        name: name.into(),
        count,
        size,
        kind,
        probability,
    }
}

impl Group {
    fn validate(&self) -> Result<(), DatasetError> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(DatasetError::Probability {
                group: self.name.clone(),
                value: self.probability,
            });
        }
        if self.kind == Kind::ReadOnly && self.probability != 0.0 {
            return Err(DatasetError::ReadOnlyWritten {
                group: self.name.clone(),
            });
        }
        let bad_size = match self.size {
            SizeSpec::Fixed(size) => size == 0,
            SizeSpec::Range { min, max, step } => min == 0 || step == 0 || min > max,
        };
        if bad_size {
            return Err(DatasetError::Size {
                group: self.name.clone(),
            });
        }
        Ok(())
    }
}

impl Dataset {
    /// Builds a synthetic data set from groups; `scale` multiplies every group's count (rounded,
    /// at least one file per non-empty group).
    pub fn from_groups(name: &str, groups: &[Group], scale: f64) -> Result<Dataset, DatasetError> {
        let (total, counts) = count_files(groups, scale)?;
        let mut files = Vec::with_capacity(total as usize);
        for (group, count) in groups.iter().zip(counts) {
            for size in group.size.sizes() {
                for index in 0..count {
                    files.push(FileSpec {
                        path: format!("/{}/{:010}/{:08}", group.name, size, index),
                        size,
                        kind: group.kind,
                        access_probability: group.probability,
                    });
                }
            }
        }
        Dataset::new(name.into(), files, Writes::Synthetic)
    }

    /// How many files [`Dataset::from_groups`] would build from these groups at this scale,
    /// after the same checks, without building them (a range gives each of its sizes the
    /// group's scaled count, so the files can far outnumber `scale × count`).
    pub fn count_files(groups: &[Group], scale: f64) -> Result<u64, DatasetError> {
        count_files(groups, scale).map(|(total, _)| total)
    }

    /// Validates and sorts files by path (recorded write lists are permuted alongside).
    pub fn new(
        name: String,
        files: Vec<FileSpec>,
        writes: Writes,
    ) -> Result<Dataset, DatasetError> {
        Dataset::with_extents(name, files, writes, Vec::new())
    }

    /// [`Dataset::new`] with each recorded write's extent (`extents[file][i]` for the file's
    /// `i`-th write time), or none (empty).
    pub fn with_extents(
        name: String,
        files: Vec<FileSpec>,
        writes: Writes,
        extents: Vec<Vec<RecordedExtent>>,
    ) -> Result<Dataset, DatasetError> {
        if files.is_empty() {
            return Err(DatasetError::Empty);
        }
        if files.len() as u64 > MAX_FILES {
            return Err(DatasetError::TooManyFiles);
        }
        for file in &files {
            if !(0.0..=1.0).contains(&file.access_probability) {
                return Err(DatasetError::Probability {
                    group: file.path.clone(),
                    value: file.access_probability,
                });
            }
        }
        // A stable sort by path; the lists are moved into that order, not copied (and left as
        // they are when already in it, as generated data sets are).
        let order = if files.windows(2).all(|w| w[0].path <= w[1].path) {
            None
        } else {
            let mut order: Vec<usize> = (0..files.len()).collect();
            order.sort_by(|&a, &b| files[a].path.cmp(&files[b].path));
            Some(order)
        };
        let len = files.len();
        let files = permuted(files, order.as_deref(), len);
        let writes = match writes {
            Writes::Synthetic => Writes::Synthetic,
            Writes::Recorded(times) => Writes::Recorded(permuted(times, order.as_deref(), len)),
        };
        let extents = if extents.is_empty() {
            extents
        } else {
            permuted(extents, order.as_deref(), len)
        };
        Ok(Dataset {
            name,
            files,
            writes,
            extents,
            lives: Vec::new(),
            sizes: Vec::new(),
            recorded_s: 0.0,
        })
    }

    /// A data set replayed from a recording `recorded_s` seconds long. Lives and sizes are kept
    /// only if some file does not live throughout or changes size, so a replay without them
    /// runs exactly as one of [`Dataset::with_extents`].
    pub fn replayed(
        name: String,
        files: Vec<ReplayedFile>,
        recorded_s: f64,
    ) -> Result<Dataset, DatasetError> {
        let throughout = (0.0, f64::INFINITY);
        let any_life = files.iter().any(|f| f.life != throughout);
        let any_size = files.iter().any(|f| !f.sizes.is_empty());
        let (mut specs, mut times, mut extents) = (Vec::new(), Vec::new(), Vec::new());
        let mut lives_sizes = Vec::new();
        for f in files {
            specs.push(f.spec);
            times.push(f.writes);
            extents.push(f.extents);
            lives_sizes.push((f.life, f.sizes));
        }
        // The same order as `with_extents` sorts the files into (stable, by path).
        let mut order: Vec<usize> = (0..specs.len()).collect();
        order.sort_by(|&a, &b| specs[a].path.cmp(&specs[b].path));
        let mut data = Dataset::with_extents(name, specs, Writes::Recorded(times), extents)?;
        if any_life {
            data.lives = order.iter().map(|&i| lives_sizes[i].0).collect();
        }
        if any_size {
            data.sizes = order.iter().map(|&i| lives_sizes[i].1.clone()).collect();
        }
        data.recorded_s = recorded_s;
        Ok(data)
    }

    /// Total bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Bytes of the files of one kind.
    pub fn bytes_of(&self, kind: Kind) -> u64 {
        self.files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| f.size)
            .sum()
    }
}

/// Checks the groups and counts their files at this scale: the total, and each group's files
/// per size.
fn count_files(groups: &[Group], scale: f64) -> Result<(u64, Vec<u64>), DatasetError> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(DatasetError::Scale(scale));
    }
    let mut total: u64 = 0;
    let mut counts = Vec::with_capacity(groups.len());
    for group in groups {
        group.validate()?;
        let count = if group.count == 0 {
            0
        } else {
            libm::round(f64::from(group.count) * scale).max(1.0) as u64
        };
        total = total.saturating_add(count.saturating_mul(group.size.count()));
        if total > MAX_FILES {
            return Err(DatasetError::TooManyFiles);
        }
        counts.push(count);
    }
    Ok((total, counts))
}

/// The first `len` of `items` in `order` (`None`: as they are), moved rather than cloned.
fn permuted<T>(mut items: Vec<T>, order: Option<&[usize]>, len: usize) -> Vec<T> {
    match order {
        None => {
            assert!(items.len() >= len, "one entry per file");
            items.truncate(len);
            items
        }
        Some(order) => {
            let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
            order
                .iter()
                .map(|&i| slots[i].take().expect("a permutation"))
                .collect()
        }
    }
}

/// The JSON form of a custom data set: `{"name": "...", "groups": [Group, ...]}`.
#[cfg(feature = "serde")]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsFile {
    /// The data set's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its groups.
    pub groups: Vec<Group>,
}

#[cfg(feature = "serde")]
impl GroupsFile {
    /// Parses a data-set file; errors name the line.
    pub fn parse(text: &str) -> Result<GroupsFile, DatasetError> {
        serde_json::from_str(text).map_err(|e| DatasetError::Parse {
            line: e.line(),
            message: strip_position(&e),
        })
    }

    /// Builds the data set.
    pub fn dataset(&self, scale: f64) -> Result<Dataset, DatasetError> {
        let name = self.name.as_deref().unwrap_or("custom");
        Dataset::from_groups(name, &self.groups, scale)
    }
}

/// serde_json's message without its " at line L column C" tail (the caller reports the line).
#[cfg(feature = "serde")]
pub(crate) fn strip_position(error: &serde_json::Error) -> String {
    let text = format!("{error}");
    match text.rfind(" at line ") {
        Some(at) => String::from(&text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_presets_have_the_paper_counts() {
        let fixed = Preset::Fixed.dataset(1.0).unwrap();
        assert_eq!(fixed.files.len(), 11_000);
        assert_eq!(fixed.bytes_of(Kind::ReadOnly), 1000 * 200_000);
        let hot = fixed
            .files
            .iter()
            .filter(|f| f.access_probability == 0.8)
            .count();
        assert_eq!(hot, 5000);

        let variable = Preset::Variable.dataset(1.0).unwrap();
        assert_eq!(variable.files.len(), 11_000);
        let ro_100k = variable
            .files
            .iter()
            .filter(|f| f.kind == Kind::ReadOnly && f.size == 100_000)
            .count();
        assert_eq!(ro_100k, 100);
        assert_eq!(variable.total_bytes(), 1100 * 5_500_000);
    }

    #[test]
    fn files_are_in_path_order_and_scaled() {
        let data = Preset::Variable.dataset(0.1).unwrap();
        assert_eq!(data.files.len(), 1100);
        assert!(data.files.windows(2).all(|w| w[0].path < w[1].path));
    }

    #[test]
    fn bad_groups_are_named() {
        let bad = group("g", 3, SizeSpec::Fixed(10), Kind::ReadWrite, 1.5);
        assert_eq!(
            Dataset::from_groups("x", &[bad], 1.0),
            Err(DatasetError::Probability {
                group: "g".into(),
                value: 1.5
            })
        );
        let ro = group("r", 3, SizeSpec::Fixed(10), Kind::ReadOnly, 0.5);
        assert!(matches!(
            Dataset::from_groups("x", &[ro], 1.0),
            Err(DatasetError::ReadOnlyWritten { .. })
        ));
        let range = SizeSpec::Range {
            min: 10,
            max: 5,
            step: 1,
        };
        let bad_range = group("s", 3, range, Kind::ReadOnly, 0.0);
        assert!(matches!(
            Dataset::from_groups("x", &[bad_range], 1.0),
            Err(DatasetError::Size { .. })
        ));
        assert_eq!(
            Dataset::from_groups("x", &[], 1.0),
            Err(DatasetError::Empty)
        );
        assert!(matches!(
            Preset::Fixed.dataset(f64::NAN),
            Err(DatasetError::Scale(_))
        ));
    }

    #[test]
    fn a_range_of_sizes_is_computed_not_listed() {
        // The fuzzer's timeout: 7,996,830 sizes, a file each even at scale 1e-6.
        let many = SizeSpec::Range {
            min: 10,
            max: 7_996_839,
            step: 1,
        };
        let wide = group("a", 2, many, Kind::ReadWrite, 0.5);
        assert_eq!(
            Dataset::count_files(std::slice::from_ref(&wide), 1e-6),
            Ok(7_996_830)
        );
        assert_eq!(many.sizes().nth(7_996_829), Some(7_996_839));
        // Twice as many at full scale: too many, said before anything is built.
        assert_eq!(
            Dataset::from_groups("x", &[wide], 1.0),
            Err(DatasetError::TooManyFiles)
        );
        // As listed by stepping from `min` while ≤ `max`, up to the top of u64.
        for (min, max, step) in [
            (1, 1, 1),
            (3, 10, 3),
            (3, 9, 3),
            (u64::MAX - 10, u64::MAX, 4),
        ] {
            let mut listed = Vec::new();
            let mut size = Some(min);
            while let Some(s) = size.filter(|&s| s <= max) {
                listed.push(s);
                size = s.checked_add(step);
            }
            let range = SizeSpec::Range { min, max, step };
            assert_eq!(range.sizes().collect::<Vec<_>>(), listed);
        }
        assert_eq!(SizeSpec::Fixed(7).sizes().collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn files_out_of_path_order_are_sorted_with_their_writes() {
        // Sizes of 11 digits sort before 10-digit ones; group `b` comes first.
        let range = SizeSpec::Range {
            min: 9_999_999_999,
            max: 10_000_000_000,
            step: 1,
        };
        let groups = [
            group("b", 1, SizeSpec::Fixed(5), Kind::ReadOnly, 0.0),
            group("a", 2, range, Kind::ReadWrite, 0.5),
        ];
        let data = Dataset::from_groups("x", &groups, 1.0).unwrap();
        let paths: Vec<&str> = data.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/a/10000000000/00000000",
                "/a/10000000000/00000001",
                "/a/9999999999/00000000",
                "/a/9999999999/00000001",
                "/b/0000000005/00000000",
            ]
        );
        let files = data.files.iter().rev().cloned().collect();
        let times = (0..5).map(|i| alloc::vec![f64::from(i)]).rev().collect();
        let again = Dataset::new("x".into(), files, Writes::Recorded(times)).unwrap();
        assert_eq!(again.files, data.files);
        let expected = (0..5).map(|i| alloc::vec![f64::from(i)]).collect();
        assert_eq!(again.writes, Writes::Recorded(expected));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn groups_file_errors_name_the_line() {
        let text = "{\n  \"groups\": [\n    {\"name\": \"a\", \"count\": \"ten\"}\n  ]\n}";
        match GroupsFile::parse(text) {
            Err(DatasetError::Parse { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected a parse error, got {other:?}"),
        }
        let good = r#"{"groups": [{"name": "a", "count": 2, "size": {"min": 10, "max": 30, "step": 10},
                      "kind": "rw", "probability": 0.5}]}"#;
        let data = GroupsFile::parse(good).unwrap().dataset(1.0).unwrap();
        assert_eq!(data.files.len(), 6);
        assert_eq!(data.name, "custom");
    }
}
