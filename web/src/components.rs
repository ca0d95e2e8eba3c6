//! The page's components. Each gets data and `Callback` props; none holds domain logic.

mod charts;
mod config_panel;
mod controls;
mod evaluation_view;
mod field;
mod file_map;
mod groups_editor;
mod lane;
mod live_charts;
mod paper_view;
mod results;

pub use charts::{marker, Bar, BarChart, ChartBand, LineChart, Series};
pub use config_panel::ConfigPanel;
pub use controls::Controls;
pub use evaluation_view::{EvaluationHandle, EvaluationView};
pub use field::TextField;
pub use file_map::{FileMapCanvas, MapHandle};
pub use groups_editor::GroupsEditor;
pub use lane::{LanePanel, LaneView};
pub use live_charts::{LaneSeries, LiveCharts};
pub use paper_view::{PaperHandle, PaperView, SvgButton};
pub use results::ResultsTable;
