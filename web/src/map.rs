//! The file map: one cell per file (or per group of files when there are too many), coloured by
//! state, laid out so that a cell's width is proportional to its bytes.
//!
//! ReadWrite files come first, then ReadOnly files, each section under its own label, so the two
//! kinds are told apart by place and text, not by colour. Only cells whose state changed are
//! redrawn, which keeps a frame's canvas work proportional to what happened in it.
//!
//! A replayed trace's files may appear and vanish (creations, unlinks, renames over a file): a
//! file's cell is an empty slot until it is created and is crossed out once it is gone. Cells
//! are indexed by data set file, and sized by the largest size the file reaches.

use precopy_core::dataset::{Dataset, Kind};
use web_sys::CanvasRenderingContext2d;

use crate::format;
use crate::palette::CellState;

/// At most this many cells are drawn; beyond, consecutive files share a cell.
pub const MAX_CELLS: usize = 16_000;
/// The map aims at about this many pixels of height per 1000 px of width.
const TARGET_ASPECT: f64 = 0.62;
/// Height of a section label row.
const LABEL_HEIGHT: f64 = 16.0;
/// How many states a cell can be in.
pub const STATES: usize = CellState::ALL.len();

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

#[derive(Debug, Clone, PartialEq)]
struct Label {
    y: f64,
    text: String,
}

/// Where each cell is drawn, for one canvas width.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    width: f64,
    height: f64,
    cells: Vec<Rect>,
    labels: Vec<Label>,
}

/// What a file map shows, and the canvas work still to do.
#[derive(Debug, Clone, PartialEq)]
pub struct FileMap {
    states: Vec<CellState>,
    sizes: Vec<u64>,
    /// Cell of each file.
    cell_of: Vec<u32>,
    /// First file of each cell (its only file unless grouped).
    file_of: Vec<u32>,
    /// Files per cell (1 unless grouped).
    files_per_cell: u32,
    /// Per cell, files in each state (only kept when grouped).
    tallies: Vec<[u32; STATES]>,
    /// (kind, cells) in display order, for the layout.
    sections: Vec<(Kind, Vec<u64>, u32)>,
    counts: [u32; STATES],
    unsent_bytes: u64,
    /// Some file appears or vanishes during the run.
    has_lives: bool,
    /// Per cell, whether a file of it appears or vanishes (empty when none does).
    lived: Vec<bool>,
    layout: Option<Layout>,
    pending: Vec<u32>,
}

impl FileMap {
    /// Every file unsent, except those a trace creates later (absent until then).
    pub fn new(dataset: &Dataset) -> FileMap {
        let n = dataset.files.len();
        let appears = |i: usize| dataset.lives.get(i).map_or(0.0, |l| l.0);
        let states: Vec<CellState> = (0..n)
            .map(|i| match appears(i) > 0.0 {
                true => CellState::Absent,
                false => CellState::Unsent,
            })
            .collect();
        // A created file is 0 bytes when it appears: its cell shows how big it gets.
        let sizes: Vec<u64> = (dataset.files.iter().enumerate())
            .map(|(i, f)| {
                let later = dataset.sizes.get(i).into_iter().flatten();
                later.map(|&(_, size)| size).fold(f.size, u64::max)
            })
            .collect();
        let per_cell = n.div_ceil(MAX_CELLS).max(1);
        let mut cell_of = vec![0u32; n];
        let mut file_of = Vec::new();
        let mut sections = Vec::new();
        let mut cells = 0u32;
        for kind in [Kind::ReadWrite, Kind::ReadOnly] {
            let ids: Vec<usize> = (0..n).filter(|&i| dataset.files[i].kind == kind).collect();
            if ids.is_empty() {
                continue;
            }
            let mut cell_bytes = Vec::new();
            for chunk in ids.chunks(per_cell) {
                file_of.push(chunk[0] as u32);
                for &id in chunk {
                    cell_of[id] = cells;
                }
                cell_bytes.push(chunk.iter().map(|&id| sizes[id]).sum());
                cells += 1;
            }
            sections.push((kind, cell_bytes, ids.len() as u32));
        }
        let tallies = if per_cell > 1 {
            let mut t = vec![[0u32; STATES]; cells as usize];
            for (&c, &state) in cell_of.iter().zip(&states) {
                t[c as usize][state as usize] += 1;
            }
            t
        } else {
            Vec::new()
        };
        let mut counts = [0u32; STATES];
        for &state in &states {
            counts[state as usize] += 1;
        }
        let unsent_bytes = (0..n)
            .filter(|&i| states[i] == CellState::Unsent)
            .map(|i| sizes[i])
            .sum();
        let lives_of = |i: usize| {
            dataset
                .lives
                .get(i)
                .is_some_and(|&l| l != (0.0, f64::INFINITY))
        };
        let mut lived = Vec::new();
        if (0..n).any(lives_of) {
            lived = vec![false; cells as usize];
            for i in (0..n).filter(|&i| lives_of(i)) {
                lived[cell_of[i] as usize] = true;
            }
        }
        FileMap {
            has_lives: !lived.is_empty(),
            lived,
            states,
            sizes,
            cell_of,
            file_of,
            files_per_cell: per_cell as u32,
            tallies,
            sections,
            counts,
            unsent_bytes,
            layout: None,
            pending: Vec::new(),
        }
    }

    /// A file's state.
    pub fn state(&self, file: u32) -> CellState {
        self.states[file as usize]
    }

    /// Files in each state, indexed by `CellState as usize`.
    pub fn counts(&self) -> [u32; STATES] {
        self.counts
    }

    /// Whether some file appears or vanishes during the run.
    pub fn has_lives(&self) -> bool {
        self.has_lives
    }

    /// U as shown: bytes not cleanly at the destination (a file in flight counts as clean, as
    /// in the core's consistency rule), each file at its largest size.
    pub fn unsent_bytes(&self) -> u64 {
        self.unsent_bytes
    }

    /// Files sharing one cell (1 when every file has its own).
    pub fn files_per_cell(&self) -> u32 {
        self.files_per_cell
    }

    /// Changes a file's state and queues its cell for redrawing.
    pub fn set(&mut self, file: u32, state: CellState) {
        let id = file as usize;
        let old = self.states[id];
        if old == state {
            return;
        }
        let waiting = |s: CellState| matches!(s, CellState::Unsent | CellState::Dirty);
        match (waiting(old), waiting(state)) {
            (true, false) => self.unsent_bytes -= self.sizes[id],
            (false, true) => self.unsent_bytes += self.sizes[id],
            _ => {}
        }
        self.counts[old as usize] -= 1;
        self.counts[state as usize] += 1;
        self.states[id] = state;
        let cell = self.cell_of[id];
        if let Some(tally) = self.tallies.get_mut(cell as usize) {
            tally[old as usize] -= 1;
            tally[state as usize] += 1;
        }
        if self.layout.is_some() {
            self.pending.push(cell);
        }
    }

    /// The state a cell is drawn in: its file's, or for a group the one in flight, else the
    /// most common (ties go to the later state in the legend).
    fn cell_state(&self, cell: u32) -> CellState {
        match self.tallies.get(cell as usize) {
            Some(t) if t[CellState::InFlight as usize] > 0 => CellState::InFlight,
            Some(t) => CellState::ALL
                .into_iter()
                .max_by_key(|s| (t[*s as usize], *s as usize))
                .unwrap_or(CellState::Unsent),
            None => self.states[self.file_of[cell as usize] as usize],
        }
    }

    /// Lays the cells out for a canvas `width` CSS pixels wide; returns the height it needs.
    /// Nothing changes if the width is the same as before.
    pub fn layout(&mut self, width: f64) -> f64 {
        if let Some(layout) = &self.layout {
            if layout.width == width {
                return layout.height;
            }
        }
        let cells: usize = self.sections.iter().map(|s| s.1.len()).sum();
        let total: u64 = self.sections.iter().flat_map(|s| s.1.iter()).sum();
        let mean = total as f64 / cells.max(1) as f64;
        let area = width * width * TARGET_ASPECT / cells.max(1) as f64;
        let pitch = area.sqrt().floor().clamp(2.0, 28.0);
        let gap = 1.0;
        let h = pitch - gap;
        let mut rects = Vec::with_capacity(cells);
        let mut labels = Vec::new();
        let mut y = 0.0;
        for (kind, cell_bytes, files) in &self.sections {
            let bytes: u64 = cell_bytes.iter().sum();
            let name = match kind {
                Kind::ReadWrite => "ReadWrite",
                Kind::ReadOnly => "ReadOnly",
            };
            let mut text = format!(
                "{name} · {} files · {}",
                format::count(u64::from(*files)),
                format::bytes(bytes)
            );
            if self.files_per_cell > 1 {
                text.push_str(&format!(" · 1 cell = {} files", self.files_per_cell));
            }
            labels.push(Label {
                y: y + LABEL_HEIGHT - 4.0,
                text,
            });
            y += LABEL_HEIGHT;
            let mut x = 0.0;
            for &b in cell_bytes {
                let mut w = (pitch * b as f64 / mean - gap).round().max(1.0);
                // A file that appears or vanishes stays wide enough to show its outline or cross.
                if self.lived.get(rects.len()).copied().unwrap_or(false) {
                    w = w.max(h);
                }
                let w = w.min(width);
                if x + w > width {
                    x = 0.0;
                    y += pitch;
                }
                rects.push(Rect { x, y, w, h });
                x += w + gap;
            }
            y += pitch + 4.0;
        }
        self.layout = Some(Layout {
            width,
            height: y,
            cells: rects,
            labels,
        });
        self.pending.clear();
        y
    }

    /// Draws the whole map (after a layout or a reset of the canvas).
    pub fn draw_all(&mut self, ctx: &CanvasRenderingContext2d) {
        let Some(layout) = &self.layout else {
            return;
        };
        ctx.clear_rect(0.0, 0.0, layout.width, layout.height);
        ctx.set_fill_style_str("#3b4452");
        ctx.set_font("12px system-ui, sans-serif");
        for label in &layout.labels {
            // A failed fill_text only loses a label.
            let _ = ctx.fill_text(&label.text, 0.0, label.y);
        }
        // One fill style per state: 11,000 rectangles in four batches.
        for state in CellState::ALL {
            ctx.set_fill_style_str(state.color());
            for (cell, rect) in layout.cells.iter().enumerate() {
                if self.cell_state(cell as u32) == state {
                    ctx.fill_rect(rect.x, rect.y, rect.w, rect.h);
                }
            }
        }
        for (cell, rect) in layout.cells.iter().enumerate() {
            mark(ctx, *rect, self.cell_state(cell as u32));
        }
        self.pending.clear();
    }

    /// Redraws the cells that changed since the last draw; returns how many.
    pub fn draw_pending(&mut self, ctx: &CanvasRenderingContext2d) -> usize {
        let Some(layout) = &self.layout else {
            return 0;
        };
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable();
        pending.dedup();
        for &cell in &pending {
            let rect = layout.cells[cell as usize];
            let state = self.cell_state(cell);
            ctx.clear_rect(rect.x, rect.y, rect.w, rect.h);
            ctx.set_fill_style_str(state.color());
            ctx.fill_rect(rect.x, rect.y, rect.w, rect.h);
            mark(ctx, rect, state);
        }
        let drawn = pending.len();
        pending.clear();
        self.pending = pending;
        drawn
    }
}

/// A second cue: an outline on a file not created yet, a cross on a gone one; and on cells big
/// enough for one, a white dot on dirty files, a dark dot in flight.
fn mark(ctx: &CanvasRenderingContext2d, rect: Rect, state: CellState) {
    match state {
        CellState::Absent => {
            ctx.set_stroke_style_str("#9aa3b0");
            ctx.set_line_width(1.0);
            ctx.stroke_rect(
                rect.x + 0.5,
                rect.y + 0.5,
                (rect.w - 1.0).max(0.0),
                (rect.h - 1.0).max(0.0),
            );
            return;
        }
        CellState::Gone => {
            ctx.set_stroke_style_str("#ffffff");
            ctx.set_line_width(1.0);
            ctx.begin_path();
            ctx.move_to(rect.x, rect.y);
            ctx.line_to(rect.x + rect.w, rect.y + rect.h);
            ctx.move_to(rect.x + rect.w, rect.y);
            ctx.line_to(rect.x, rect.y + rect.h);
            ctx.stroke();
            return;
        }
        _ => {}
    }
    if rect.h < 6.0 || rect.w < 6.0 {
        return;
    }
    let colour = match state {
        CellState::Dirty => "#ffffff",
        CellState::InFlight => "#1d2430",
        _ => return,
    };
    let d = (rect.h / 3.0).floor();
    ctx.set_fill_style_str(colour);
    ctx.fill_rect(
        rect.x + ((rect.w - d) / 2.0).floor(),
        rect.y + ((rect.h - d) / 2.0).floor(),
        d,
        d,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use precopy_core::dataset::Preset;
    use precopy_core::trace::Trace;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// docs/trace-format.md's version-2 example: `/d/data.tmp` is created (0 bytes, growing to
    /// 3000), `/d/log` unlinked, `/d/data` replaced.
    fn lifetimes() -> Dataset {
        let text = include_str!("../../crates/precopy-core/tests/golden/lifetimes.jsonl");
        Trace::parse(text).unwrap().dataset().unwrap()
    }

    #[wasm_bindgen_test]
    fn created_files_start_absent_and_stay_visible() {
        let dataset = lifetimes();
        let mut map = FileMap::new(&dataset);
        let tmp = dataset
            .files
            .iter()
            .position(|f| f.path == "/d/data.tmp")
            .unwrap();
        assert!(map.has_lives());
        assert_eq!(map.state(tmp as u32), CellState::Absent);
        // U counts the files there at the start (1000 + 2000 + 1000 bytes), at their largest.
        assert_eq!(map.unsent_bytes(), 4000);
        map.set(tmp as u32, CellState::Unsent);
        assert_eq!(map.unsent_bytes(), 7000);
        map.layout(2000.0);
        let layout = map.layout.as_ref().unwrap();
        for (cell, rect) in layout.cells.iter().enumerate() {
            if map.lived[cell] {
                assert!(rect.w >= rect.h, "cell {cell}: {rect:?}");
            }
        }
        let plain = FileMap::new(&Preset::Fixed.dataset(0.01).unwrap());
        assert!(!plain.has_lives() && plain.lived.is_empty());
    }
}
