//! The configuration form as typed ([`Draft`]), its validation into a runnable [`Config`], and its
//! encoding in the page's URL so that a link reproduces a run.
//!
//! Every field keeps the user's text; validation never rewrites it, it only says what is wrong.

use std::rc::Rc;

use precopy_core::catalogue::{self, Workload, NAMES};
use precopy_core::dataset::{Dataset, DatasetError, Group, GroupsFile, Kind, Preset, SizeSpec};
use precopy_core::trace::{Trace, FORMAT as TRACE_FORMAT};
use precopy_core::units::{
    parse_bandwidth, parse_compress_ratio, parse_duration, parse_size, parse_write_bytes,
};
use precopy_core::{Estimator, PolicyKind, PolicyParams, SimConfig, TraceAfter, WriteModel};

use crate::catalogue::{self as shipped, Status};

/// The largest data set the page accepts, in files (memory and frame time stay reasonable).
pub const MAX_FILES: u64 = 250_000;

/// Where the files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// One of the paper's data sets.
    Preset(Preset),
    /// Groups edited in the table.
    Custom,
    /// A trace recorded by `migrate-native trace`, replayed.
    Trace,
    /// A shipped workload of the catalogue, by index into `precopy_core::catalogue::NAMES`.
    Workload(usize),
}

impl SourceKind {
    /// The name used in the URL and the form.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Preset(p) => p.name(),
            SourceKind::Custom => "custom",
            SourceKind::Trace => "trace",
            SourceKind::Workload(i) => NAMES[i],
        }
    }

    /// Parses [`SourceKind::name`].
    pub fn from_name(name: &str) -> Option<SourceKind> {
        match name {
            "custom" => Some(SourceKind::Custom),
            "trace" => Some(SourceKind::Trace),
            other => Preset::from_name(other)
                .map(SourceKind::Preset)
                .or_else(|| shipped::index_of(other).map(SourceKind::Workload)),
        }
    }
}

/// One row of the custom groups table, as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// Group name (used in the generated paths).
    pub name: String,
    /// Files per size.
    pub count: String,
    /// A size (`200KB`) or a range (`100KB..1MB/100KB`).
    pub size: String,
    /// ReadOnly or ReadWrite.
    pub kind: Kind,
    /// Access probability, 0..1 (0 for ReadOnly).
    pub probability: String,
}

impl GroupRow {
    fn from_group(group: &Group) -> GroupRow {
        GroupRow {
            name: group.name.clone(),
            count: group.count.to_string(),
            size: match group.size {
                SizeSpec::Fixed(size) => size_text(size),
                SizeSpec::Range { min, max, step } => {
                    format!("{}..{}/{}", size_text(min), size_text(max), size_text(step))
                }
            },
            kind: group.kind,
            probability: group.probability.to_string(),
        }
    }
}

/// A size as a person would type it: `200KB` when it is a whole number of KB, else bytes.
fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 && b % 1_000_000 == 0 => format!("{}MB", b / 1_000_000),
        b if b >= 1000 && b % 1000 == 0 => format!("{}KB", b / 1000),
        b => b.to_string(),
    }
}

/// A trace file the user imported.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedTrace {
    /// The file's name.
    pub file_name: String,
    /// The parsed trace.
    pub trace: Rc<Trace>,
}

/// A text field of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Scale factor of the data set.
    Scale,
    /// Link rate.
    Bandwidth,
    /// β of the end test.
    Beta,
    /// Monitoring period.
    Period,
    /// Global write intensity.
    Intensity,
    /// EWMA weight (only with the EWMA estimator).
    Alpha,
    /// Seed of the write processes.
    Seed,
    /// Per-file overhead.
    Overhead,
    /// Bytes one write dirties.
    WriteBytes,
    /// Compression ratio of the link.
    CompressRatio,
    /// What a replayed trace does after its end.
    After,
    /// Which policies run (not a text field; only carries errors).
    Policies,
    /// The data set as a whole (not a text field; only carries errors).
    Dataset,
    /// One cell of the groups table.
    Group(usize, GroupField),
}

/// A column of the groups table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupField {
    /// Name.
    Name,
    /// Count.
    Count,
    /// Size.
    Size,
    /// Probability.
    Probability,
}

/// The form as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Data-set source.
    pub source: SourceKind,
    /// Scale factor (1 = the paper's size).
    pub scale: String,
    /// Link rate; a bare number is Mbps.
    pub bandwidth: String,
    /// β (even, ≥ 2).
    pub beta: String,
    /// Monitoring period; a bare number is seconds.
    pub period: String,
    /// Writes per second at p = 1.
    pub intensity: String,
    /// p̂ estimator name: share, ewma or cumulative.
    pub estimator: String,
    /// EWMA weight in (0, 1].
    pub alpha: String,
    /// Seed.
    pub seed: String,
    /// Per-file overhead in milliseconds.
    pub overhead_ms: String,
    /// Delta resends: a resend costs the blocks written since the last send.
    pub delta: bool,
    /// Bytes one write dirties: `whole`, a size, `MIN..MAX` or `exp:MEAN`.
    pub write_bytes: String,
    /// Compression ratio R ≥ 1 of the link (1: none, the paper's model).
    pub compress_ratio: String,
    /// What a replayed trace does after its end: `quiet`, `loop`, or a time to loop its writes
    /// to (`20000s`, the docs' choice and the default).
    pub after: String,
    /// Policies to compare, in [`PolicyKind::ALL`] order.
    pub policies: Vec<PolicyKind>,
    /// The custom groups table.
    pub groups: Vec<GroupRow>,
    /// The imported trace, if any.
    pub trace: Option<ImportedTrace>,
}

impl Default for Draft {
    /// The paper's fixed-size data set at 20 Mbps with the core's default model.
    fn default() -> Self {
        let sim = SimConfig::default();
        Draft {
            source: SourceKind::Preset(Preset::Fixed),
            scale: "1".into(),
            bandwidth: "20".into(),
            beta: sim.params.beta.to_string(),
            period: sim.period_s.to_string(),
            intensity: sim.write_model.intensity.to_string(),
            estimator: "share".into(),
            alpha: "0.5".into(),
            seed: sim.seed.to_string(),
            overhead_ms: "0".into(),
            delta: false,
            write_bytes: "whole".into(),
            compress_ratio: sim.compress_ratio.to_string(),
            after: format!("{}s", catalogue::LOOP_UNTIL_S),
            policies: vec![PolicyKind::Baseline, PolicyKind::Proposed],
            groups: Preset::Variable
                .groups()
                .iter()
                .map(GroupRow::from_group)
                .collect(),
            trace: None,
        }
    }
}

/// A validated, runnable configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where the files come from.
    pub source: Source,
    /// Scale factor (ignored for traces).
    pub scale: f64,
    /// Model and policy parameters; `sim.seed` is the seed.
    pub sim: SimConfig,
    /// Policies to compare.
    pub policies: Vec<PolicyKind>,
}

/// A validated data-set source.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A paper preset.
    Preset(Preset),
    /// Custom groups.
    Groups(Vec<Group>),
    /// A replayed trace.
    Trace(Rc<Trace>),
    /// A shipped workload.
    Workload(Rc<Workload>),
}

impl Config {
    /// Builds the data set to migrate.
    pub fn dataset(&self) -> Result<Dataset, DatasetError> {
        match &self.source {
            Source::Preset(preset) => preset.dataset(self.scale),
            Source::Groups(groups) => Dataset::from_groups("custom", groups, self.scale),
            Source::Trace(trace) => trace.dataset(),
            Source::Workload(w) => Ok((*w.dataset).clone()),
        }
    }
}

/// Problems found in a draft: one message per field, in form order.
pub type Errors = Vec<(Field, String)>;

/// The value, or NaN after recording the message.
fn take(errors: &mut Errors, field: Field, result: Result<f64, String>) -> f64 {
    result.unwrap_or_else(|message| {
        errors.push((field, message));
        f64::NAN
    })
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses a group size: `200KB` or `min..max/step`.
fn size_spec(text: &str) -> Result<SizeSpec, String> {
    let text = text.trim();
    let size = |t: &str| parse_size(t).map_err(|e| format!("size `{}`: {e}", t.trim()));
    match text.split_once("..") {
        None => size(text).map(SizeSpec::Fixed),
        Some((min, rest)) => {
            let (max, step) = rest
                .split_once('/')
                .ok_or("a range is written min..max/step, e.g. 100KB..1MB/100KB")?;
            let (min, max, step) = (size(min)?, size(max)?, size(step)?);
            if min > max {
                return Err("the range's min is above its max".into());
            }
            Ok(SizeSpec::Range { min, max, step })
        }
    }
}

impl Draft {
    /// Validates every field; all problems are reported at once.
    pub fn validate(&self) -> Result<Config, Errors> {
        let mut errors = Errors::new();
        let errs = &mut errors;

        let scale = take(
            errs,
            Field::Scale,
            match number(&self.scale) {
                Some(v) if v > 0.0 && v <= 10.0 => Ok(v),
                _ => Err("scale must be a number above 0 and at most 10".into()),
            },
        );
        let bandwidth = take(
            errs,
            Field::Bandwidth,
            match parse_bandwidth(&self.bandwidth) {
                Ok(bps) if (1e6..=1e9).contains(&bps) => Ok(bps),
                Ok(_) => Err("bandwidth must be between 1 and 1000 Mbps".into()),
                Err(e) => Err(format!("bandwidth: {e} (e.g. 20 or 20Mbps)")),
            },
        );
        let beta = take(
            errs,
            Field::Beta,
            match self.beta.trim().parse::<u32>() {
                Ok(b) if b >= 2 && b % 2 == 0 => Ok(f64::from(b)),
                Ok(b) => Err(format!(
                    "β must be an even whole number of at least 2 (got {b})"
                )),
                Err(_) => Err("β must be an even whole number of at least 2".into()),
            },
        );
        let period = take(
            errs,
            Field::Period,
            parse_duration(&self.period)
                .map_err(|e| format!("period: {e} (seconds, e.g. 10 or 500ms)")),
        );
        let intensity = take(
            errs,
            Field::Intensity,
            match number(&self.intensity) {
                Some(v) if v >= 0.0 => Ok(v),
                _ => Err("write intensity must be a number ≥ 0 (writes/s at p = 1)".into()),
            },
        );
        let estimator = match self.estimator.as_str() {
            "ewma" => {
                let alpha = take(
                    errs,
                    Field::Alpha,
                    match number(&self.alpha) {
                        Some(a) if a > 0.0 && a <= 1.0 => Ok(a),
                        _ => Err("α must be in (0, 1]".into()),
                    },
                );
                Estimator::Ewma { alpha }
            }
            name => Estimator::from_name(name).unwrap_or(Estimator::Share),
        };
        let seed = match self.seed.trim().parse::<u64>() {
            Ok(seed) => seed,
            Err(_) => {
                errs.push((Field::Seed, "seed must be a whole number ≥ 0".into()));
                0
            }
        };
        let overhead_ms = take(
            errs,
            Field::Overhead,
            match number(&self.overhead_ms) {
                Some(v) if v >= 0.0 => Ok(v),
                _ => Err("overhead must be a number of milliseconds ≥ 0".into()),
            },
        );
        let write_bytes = parse_write_bytes(&self.write_bytes).unwrap_or_else(|e| {
            errs.push((
                Field::WriteBytes,
                format!("write size: {e} (whole, 8KiB, 1KB..64KB or exp:16KiB)"),
            ));
            precopy_core::WriteBytes::Whole
        });
        let compress_ratio = take(
            errs,
            Field::CompressRatio,
            parse_compress_ratio(&self.compress_ratio)
                .map_err(|e| format!("compression ratio: {e} (1 = none; e.g. 2 or 2.5x)")),
        );
        // Only a replayed trace has an after; presets and groups keep the core's default.
        let replays = matches!(self.source, SourceKind::Trace | SourceKind::Workload(_));
        let trace_after = match self.after.trim() {
            _ if !replays => TraceAfter::Quiet,
            "quiet" => TraceAfter::Quiet,
            "loop" => TraceAfter::Loop { until_s: None },
            text => TraceAfter::Loop {
                until_s: Some(take(
                    errs,
                    Field::After,
                    parse_duration(text).map_err(|e| {
                        format!("after the trace: {e} (quiet, loop, or a time such as 20000s)")
                    }),
                )),
            },
        };
        if self.policies.is_empty() {
            errs.push((Field::Policies, "choose at least one policy".into()));
        }
        let source = self.validate_source(scale, errs);

        let sim = SimConfig {
            bandwidth_bps: bandwidth,
            period_s: period,
            overhead_s: overhead_ms / 1000.0,
            seed,
            write_model: WriteModel {
                intensity,
                write_bytes,
                ..WriteModel::default()
            },
            delta: self.delta,
            compress_ratio,
            trace_after,
            params: PolicyParams {
                beta: beta as u32,
                estimator,
                ..PolicyParams::default()
            },
            ..SimConfig::default()
        };
        match source {
            Some(source) if errors.is_empty() => Ok(Config {
                source,
                scale,
                sim,
                policies: self.policies.clone(),
            }),
            _ => Err(errors),
        }
    }

    fn validate_source(&self, scale: f64, errors: &mut Errors) -> Option<Source> {
        match self.source {
            SourceKind::Preset(preset) => Some(Source::Preset(preset)),
            SourceKind::Workload(i) => match shipped::status(i) {
                Status::Ready(w) => Some(Source::Workload(w)),
                // Absent only until the page's effect asks for it (app.rs), in the same frame.
                Status::Absent | Status::Loading => {
                    errors.push((Field::Dataset, shipped::loading_text(&[i])));
                    None
                }
                Status::Failed(e) => {
                    errors.push((Field::Dataset, e));
                    None
                }
            },
            SourceKind::Trace => match &self.trace {
                Some(t) => Some(Source::Trace(t.trace.clone())),
                None => {
                    errors.push((Field::Dataset, "import a trace file first".into()));
                    None
                }
            },
            SourceKind::Custom => {
                let groups = self.validate_groups(errors)?;
                let files: f64 = groups
                    .iter()
                    .map(|g| {
                        let sizes = match g.size {
                            SizeSpec::Fixed(_) => 1,
                            SizeSpec::Range { min, max, step } => (max - min) / step.max(1) + 1,
                        };
                        (f64::from(g.count) * scale).round().max(1.0) * sizes as f64
                    })
                    .sum();
                if groups.iter().all(|g| g.count == 0) {
                    errors.push((Field::Dataset, "the groups hold no files".into()));
                    None
                } else if files > MAX_FILES as f64 {
                    errors.push((
                        Field::Dataset,
                        format!("{files} files: the page handles at most {MAX_FILES}"),
                    ));
                    None
                } else {
                    Some(Source::Groups(groups))
                }
            }
        }
    }

    fn validate_groups(&self, errors: &mut Errors) -> Option<Vec<Group>> {
        if self.groups.is_empty() {
            errors.push((Field::Dataset, "add at least one group".into()));
            return None;
        }
        let before = errors.len();
        let mut groups = Vec::new();
        for (i, row) in self.groups.iter().enumerate() {
            let name = row.name.trim();
            // `/` would break the generated paths, `:` and `;` the URL encoding.
            if name.is_empty() || name.contains(['/', ':', ';']) {
                errors.push((
                    Field::Group(i, GroupField::Name),
                    "a name without `/`, `:` or `;`".into(),
                ));
            }
            let count = row.count.trim().parse::<u32>().unwrap_or_else(|_| {
                errors.push((
                    Field::Group(i, GroupField::Count),
                    "a whole number ≥ 0".into(),
                ));
                0
            });
            let size = size_spec(&row.size).unwrap_or_else(|message| {
                errors.push((Field::Group(i, GroupField::Size), message));
                SizeSpec::Fixed(1)
            });
            let probability = match (number(&row.probability), row.kind) {
                (Some(p), Kind::ReadWrite) if (0.0..=1.0).contains(&p) => p,
                (Some(p), Kind::ReadOnly) if p == 0.0 => p,
                (_, Kind::ReadOnly) => {
                    errors.push((
                        Field::Group(i, GroupField::Probability),
                        "ReadOnly files are never written: 0".into(),
                    ));
                    0.0
                }
                _ => {
                    errors.push((
                        Field::Group(i, GroupField::Probability),
                        "a probability in [0, 1]".into(),
                    ));
                    0.0
                }
            };
            groups.push(Group {
                name: name.to_string(),
                count,
                size,
                kind: row.kind,
                probability,
            });
        }
        (errors.len() == before).then_some(groups)
    }

    /// Imports a data-set file: a trace (JSON Lines) or a groups file (JSON). On success the
    /// form switches to that source; the error names the line.
    pub fn import(&mut self, file_name: &str, text: &str) -> Result<(), String> {
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if first.contains(TRACE_FORMAT) {
            let trace = Trace::parse(text).map_err(|e| format!("{file_name}: {e}"))?;
            trace.dataset().map_err(|e| format!("{file_name}: {e}"))?;
            self.trace = Some(ImportedTrace {
                file_name: file_name.to_string(),
                trace: Rc::new(trace),
            });
            self.source = SourceKind::Trace;
        } else {
            let groups = GroupsFile::parse(text).map_err(|e| format!("{file_name}: {e}"))?;
            self.groups = groups.groups.iter().map(GroupRow::from_group).collect();
            self.source = SourceKind::Custom;
        }
        Ok(())
    }

    /// The URL query (without `?`) that reproduces this form. A trace cannot travel in a URL;
    /// its link says `data=trace` and asks for the file again.
    pub fn to_query(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("data", self.source.name()),
            ("scale", &self.scale),
            ("bw", &self.bandwidth),
            ("beta", &self.beta),
            ("period", &self.period),
            ("intensity", &self.intensity),
            ("est", &self.estimator),
        ];
        if self.estimator == "ewma" {
            pairs.push(("alpha", &self.alpha));
        }
        pairs.push(("seed", &self.seed));
        pairs.push(("overhead", &self.overhead_ms));
        // Only when set, so that the paper's links stay as they were.
        if self.delta {
            pairs.push(("delta", "1"));
        }
        if self.write_bytes != Draft::default().write_bytes {
            pairs.push(("wbytes", &self.write_bytes));
        }
        if self.compress_ratio != Draft::default().compress_ratio {
            pairs.push(("compress", &self.compress_ratio));
        }
        if self.after != Draft::default().after {
            pairs.push(("after", &self.after));
        }
        let policies: Vec<&str> = self.policies.iter().map(|p| p.name()).collect();
        let policies = policies.join(",");
        pairs.push(("policies", &policies));
        let mut query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        if self.source == SourceKind::Custom {
            // Each cell is encoded on its own, so that `:` and `;` in a name cannot split it.
            let rows: Vec<String> = self
                .groups
                .iter()
                .map(|g| {
                    let kind = if g.kind == Kind::ReadOnly { "ro" } else { "rw" };
                    [g.name.as_str(), &g.count, &g.size, kind, &g.probability]
                        .map(encode)
                        .join(":")
                })
                .collect();
            query.push(format!("groups={}", rows.join(";")));
        }
        query.join("&")
    }

    /// A form from a URL query (with or without `?`); missing or unknown keys keep defaults.
    pub fn from_query(query: &str) -> Draft {
        let mut draft = Draft::default();
        for pair in query.trim_start_matches('?').split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let raw = value;
            let value = decode(raw);
            match key {
                "data" => {
                    if let Some(source) = SourceKind::from_name(&value) {
                        draft.source = source;
                    }
                }
                "scale" => draft.scale = value,
                "bw" => draft.bandwidth = value,
                "beta" => draft.beta = value,
                "period" => draft.period = value,
                "intensity" => draft.intensity = value,
                "est" => draft.estimator = value,
                "alpha" => draft.alpha = value,
                "seed" => draft.seed = value,
                "overhead" => draft.overhead_ms = value,
                "delta" => draft.delta = value == "1",
                "wbytes" => draft.write_bytes = value,
                "compress" => draft.compress_ratio = value,
                "after" => draft.after = value,
                "policies" => {
                    let named: Vec<PolicyKind> =
                        value.split(',').filter_map(PolicyKind::from_name).collect();
                    draft.policies = PolicyKind::ALL
                        .into_iter()
                        .filter(|p| named.contains(p))
                        .collect();
                }
                "groups" => {
                    draft.groups = raw
                        .split(';')
                        .filter(|row| !row.is_empty())
                        .map(|row| {
                            let mut cells = row.split(':');
                            let mut next = || decode(cells.next().unwrap_or(""));
                            let (name, count, size, kind, probability) =
                                (next(), next(), next(), next(), next());
                            GroupRow {
                                name,
                                count,
                                size,
                                kind: if kind == "ro" {
                                    Kind::ReadOnly
                                } else {
                                    Kind::ReadWrite
                                },
                                probability,
                            }
                        })
                        .collect();
                }
                _ => {}
            }
        }
        draft
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986) and `,` (policy lists stay
/// readable). `:` and `;` are encoded: they separate the cells and rows of `groups`.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Reverses [`encode`] (and `+` as space); malformed escapes are kept as typed.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64Mcg;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn error_of(draft: &Draft, field: Field) -> Option<String> {
        draft
            .validate()
            .err()
            .and_then(|errors| errors.into_iter().find(|(f, _)| *f == field))
            .map(|(_, message)| message)
    }

    #[wasm_bindgen_test]
    fn defaults_are_valid_and_match_the_core() {
        let config = Draft::default().validate().unwrap();
        assert_eq!(
            config.sim,
            SimConfig {
                bandwidth_bps: 20e6,
                ..SimConfig::default()
            }
        );
        assert_eq!(config.dataset().unwrap().files.len(), 11_000);
    }

    #[wasm_bindgen_test]
    fn bad_fields_are_named() {
        let draft = Draft {
            beta: "3".into(),
            bandwidth: "2000".into(),
            scale: "0".into(),
            seed: "-1".into(),
            policies: vec![],
            ..Draft::default()
        };
        assert!(error_of(&draft, Field::Beta).unwrap().contains("even"));
        assert!(error_of(&draft, Field::Bandwidth)
            .unwrap()
            .contains("1000 Mbps"));
        assert!(error_of(&draft, Field::Scale).is_some());
        assert!(error_of(&draft, Field::Seed).is_some());
        assert!(error_of(&draft, Field::Policies).is_some());
        assert_eq!(error_of(&draft, Field::Period), None);
        let draft = Draft {
            write_bytes: "9KB..1KB".into(),
            ..Draft::default()
        };
        assert!(error_of(&draft, Field::WriteBytes)
            .unwrap()
            .contains("minimum is above"));
        for (ratio, why) in [("0.5", "at least 1"), ("two", "not a number")] {
            let draft = Draft {
                compress_ratio: ratio.into(),
                ..Draft::default()
            };
            assert!(error_of(&draft, Field::CompressRatio)
                .unwrap()
                .contains(why));
        }
    }

    #[wasm_bindgen_test]
    fn the_compression_ratio_reaches_the_model() {
        let draft = Draft {
            compress_ratio: "2.5x".into(),
            ..Draft::default()
        };
        assert_eq!(draft.validate().unwrap().sim.compress_ratio, 2.5);
    }

    #[wasm_bindgen_test]
    fn the_delta_switch_and_write_size_reach_the_model() {
        let draft = Draft {
            delta: true,
            write_bytes: "exp:16KiB".into(),
            ..Draft::default()
        };
        let sim = draft.validate().unwrap().sim;
        assert!(sim.delta);
        assert_eq!(
            sim.write_model.write_bytes,
            precopy_core::WriteBytes::Exponential { mean: 16_384 }
        );
    }

    #[wasm_bindgen_test]
    fn groups_validate_per_cell() {
        let mut draft = Draft {
            source: SourceKind::Custom,
            ..Draft::default()
        };
        assert!(draft.validate().is_ok());
        draft.groups[0].probability = "0.5".into(); // group 0 is ReadOnly
        draft.groups[1].size = "10KB..5KB/1KB".into();
        let errors = draft.validate().unwrap_err();
        let fields: Vec<Field> = errors.iter().map(|e| e.0).collect();
        assert_eq!(
            fields,
            [
                Field::Group(0, GroupField::Probability),
                Field::Group(1, GroupField::Size)
            ]
        );
    }

    #[wasm_bindgen_test]
    fn the_query_round_trips() {
        let draft = Draft {
            source: SourceKind::Custom,
            scale: "0.1".into(),
            bandwidth: "20 Mbps".into(),
            seed: "3".into(),
            estimator: "ewma".into(),
            alpha: "0.25".into(),
            policies: vec![PolicyKind::Baseline, PolicyKind::Sweep],
            delta: true,
            write_bytes: "1KB..64KB".into(),
            compress_ratio: "3".into(),
            ..Draft::default()
        };
        let query = draft.to_query();
        assert!(query.contains("bw=20%20Mbps"), "{query}");
        assert!(
            query.contains("delta=1&wbytes=1KB..64KB&compress=3"),
            "{query}"
        );
        let paper = Draft::default().to_query();
        assert!(
            !paper.contains("delta") && !paper.contains("compress"),
            "{paper}"
        );
        assert_eq!(Draft::from_query(&format!("?{query}")), draft);
    }

    /// A shipped workload opens from its link with the docs' settings: the page's figures are
    /// `migrate-native sweep`'s for the same bandwidth (tests/catalogue.rs checks the core's
    /// `catalogue::config` against the CLI).
    #[wasm_bindgen_test]
    fn a_workload_link_replays_it_as_the_docs_do() {
        let draft = Draft::from_query("data=sqlite&bw=20&policies=proposed");
        assert_eq!(draft.source, SourceKind::from_name("sqlite").unwrap());
        // Until its trace is loaded, the form waits for it and says so.
        let sqlite = shipped::index_of("sqlite").unwrap();
        assert!(error_of(&draft, Field::Dataset)
            .unwrap()
            .starts_with("Loading traces/sqlite.jsonl.zst ("));
        shipped::load_for_test(sqlite);
        assert_eq!(Draft::from_query(&draft.to_query()), draft);
        let config = draft.validate().unwrap();
        assert_eq!(config.sim, catalogue::config(20e6));
        assert!(matches!(config.source, Source::Workload(ref w) if w.name == "sqlite"));
        let quiet = Draft {
            after: "quiet".into(),
            ..draft.clone()
        };
        assert!(quiet.to_query().contains("after=quiet"));
        assert_eq!(quiet.validate().unwrap().sim.trace_after, TraceAfter::Quiet);
        let bad = Draft {
            after: "forever".into(),
            ..draft
        };
        assert!(error_of(&bad, Field::After)
            .unwrap()
            .contains("quiet, loop"));
    }

    /// Query pieces a hand-edited or mangled link may hold.
    const PIECES: [&str; 38] = [
        "after=",
        "postgres",
        "20000s",
        "delta=",
        "compress=",
        "1",
        "wbytes=",
        "exp:",
        "data=",
        "custom",
        "trace",
        "groups=",
        "bw=",
        "est=",
        "ewma",
        "alpha=",
        "policies=",
        "sweep",
        "scale=",
        "&",
        "=",
        "?",
        "%",
        "%3",
        "%3B",
        "%25",
        "%E2%82",
        ";",
        ":",
        ",",
        "+",
        " ",
        "é",
        "€",
        "1e3",
        "0.5",
        "ro",
        "rw",
    ];

    fn mangled_query(rng: &mut Pcg64Mcg) -> String {
        let len = rng.random_range(0..24);
        (0..len)
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect()
    }

    #[wasm_bindgen_test]
    fn any_query_opens_a_form_whose_link_is_stable() {
        let mut rng = Pcg64Mcg::seed_from_u64(11);
        for _ in 0..3000 {
            let query = mangled_query(&mut rng);
            let link = Draft::from_query(&query).to_query();
            let reopened = Draft::from_query(&link);
            assert_eq!(reopened.to_query(), link, "from {query:?}");
            let _ = reopened.validate();
        }
    }

    #[wasm_bindgen_test]
    fn group_cells_with_separators_survive_the_link() {
        let mut rng = Pcg64Mcg::seed_from_u64(12);
        for _ in 0..300 {
            let mut cell = || mangled_query(&mut rng);
            let draft = Draft {
                source: SourceKind::Custom,
                groups: vec![GroupRow {
                    name: cell(),
                    count: cell(),
                    size: cell(),
                    kind: Kind::ReadOnly,
                    probability: cell(),
                }],
                ..Draft::default()
            };
            let link = draft.to_query();
            assert_eq!(Draft::from_query(&link).groups, draft.groups, "{link}");
        }
    }

    #[wasm_bindgen_test]
    fn imports_name_the_line() {
        let mut draft = Draft::default();
        let bad =
            "{\"type\":\"header\",\"format\":\"precopy-trace\",\"version\":1,\"period_s\":1}\n\
                   {\"type\":\"file\",\"id\":0,\"path\":\"/a\",\"size\":1,\"kind\":\"ro\"}\n\
                   {\"type\":\"write\",\"t\":1,\"id\":0}";
        let message = draft.import("t.jsonl", bad).unwrap_err();
        assert!(message.contains("line 3"), "{message}");
        let groups = r#"{"groups": [{"name": "a", "count": 2, "size": 1000, "kind": "rw", "probability": 0.5}]}"#;
        draft.import("g.json", groups).unwrap();
        assert_eq!(draft.source, SourceKind::Custom);
        assert_eq!(draft.validate().unwrap().dataset().unwrap().files.len(), 2);
    }
}
