//! Colours and second cues. Colours are the Okabe–Ito palette, which stays distinguishable with
//! the common colour-vision deficiencies; every policy also has its own dash pattern and marker,
//! and every file state its own brightness, so nothing relies on hue alone.

use precopy_core::PolicyKind;

/// A marker shape drawn on chart lines and in legends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled square.
    Square,
    /// A triangle pointing up.
    Triangle,
    /// A diamond.
    Diamond,
    /// An open circle.
    Ring,
    /// A cross.
    Cross,
}

/// How one policy is drawn everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyStyle {
    /// Stroke and fill colour.
    pub color: &'static str,
    /// SVG `stroke-dasharray` ("none" for solid).
    pub dash: &'static str,
    /// Marker shape.
    pub marker: Marker,
}

/// The style of a policy.
pub fn policy_style(kind: PolicyKind) -> PolicyStyle {
    let (color, dash, marker) = match kind {
        PolicyKind::Baseline => ("#D55E00", "none", Marker::Circle),
        PolicyKind::Proposed => ("#0072B2", "7 4", Marker::Square),
        PolicyKind::Sweep => ("#009E73", "2 3", Marker::Triangle),
        PolicyKind::Converge => ("#882255", "6 2 1 2", Marker::Diamond),
        PolicyKind::Qemu => ("#E69F00", "10 3 2 3", Marker::Diamond),
        PolicyKind::Clairvoyant => ("#000000", "1 4", Marker::Ring),
        PolicyKind::ProbabilityOnly => ("#CC79A7", "5 2", Marker::Cross),
        PolicyKind::SizeOnly => ("#56B4E9", "12 4", Marker::Ring),
        PolicyKind::Random => ("#7F7F7F", "3 3 9 3", Marker::Cross),
    };
    PolicyStyle {
        color,
        dash,
        marker,
    }
}

/// A policy's label for legends: its name, with "(ours)" for sweep and converge.
pub fn policy_label(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::Sweep => "sweep (ours)",
        PolicyKind::Converge => "converge (ours)",
        other => other.name(),
    }
}

/// What the file map shows for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CellState {
    /// Never sent.
    Unsent = 0,
    /// Being transferred right now.
    InFlight = 1,
    /// Cleanly at the destination.
    Clean = 2,
    /// Written after its copy started: waiting to be resent.
    Dirty = 3,
    /// Not created yet (a trace's file that appears while the application runs).
    Absent = 4,
    /// Unlinked, or replaced by a rename or a create at its path: nothing left to migrate.
    Gone = 5,
}

impl CellState {
    /// Every state, in legend order.
    pub const ALL: [CellState; 6] = [
        CellState::Unsent,
        CellState::InFlight,
        CellState::Clean,
        CellState::Dirty,
        CellState::Absent,
        CellState::Gone,
    ];

    /// Fill colour: light grey, yellow, dark blue and vermillion differ in brightness as well as
    /// hue; a file not created yet is an empty outlined slot, a gone one mid-grey with a cross.
    pub fn color(self) -> &'static str {
        match self {
            CellState::Unsent => "#D3D8DF",
            CellState::InFlight => "#F0E442",
            CellState::Clean => "#0072B2",
            CellState::Dirty => "#D55E00",
            CellState::Absent => "#FFFFFF",
            CellState::Gone => "#8C8C8C",
        }
    }

    /// Legend text.
    pub fn label(self) -> &'static str {
        match self {
            CellState::Unsent => "unsent",
            CellState::InFlight => "in flight",
            CellState::Clean => "clean at D",
            CellState::Dirty => "dirty, to resend",
            CellState::Absent => "not created yet",
            CellState::Gone => "gone (unlinked or replaced)",
        }
    }
}
