//! Results as files: CSV and JSON built here (pure), handed to the browser as downloads.

use precopy_core::{Metrics, RoundPoint, RunReport, SimConfig};
use wasm_bindgen::JsCast;

/// The per-round series of every finished run as one CSV (the columns of
/// `migrate-native simulate --csv`, with the policy first).
pub fn series_csv(runs: &[&Metrics]) -> String {
    let mut out = format!("policy,{}\n", RoundPoint::CSV_HEADER);
    for m in runs {
        for p in &m.series {
            out.push_str(&format!("{},{}\n", m.policy, p.csv_row()));
        }
    }
    out
}

/// Every finished run as a JSON array of `simulate --json` documents.
pub fn runs_json(runs: &[&Metrics], config: &SimConfig) -> String {
    let reports: Vec<RunReport> = runs
        .iter()
        .map(|metrics| RunReport { metrics, config })
        .collect();
    // Plain data with string keys: serialising cannot fail.
    serde_json::to_string_pretty(&reports).unwrap_or_default()
}

/// The outer SVG markup of the element with `id`, ready to save as a file.
pub fn svg_of(id: &str) -> Option<String> {
    let element = web_sys::window()?.document()?.get_element_by_id(id)?;
    let mut svg = element.outer_html();
    if !svg.contains("xmlns=") {
        svg = svg.replacen("<svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"", 1);
    }
    Some(svg)
}

/// Offers `text` as a download named `file_name`.
pub fn download(file_name: &str, mime: &str, text: &str) -> Result<(), String> {
    let fail = |e: wasm_bindgen::JsValue| format!("download failed: {e:?}");
    let parts = js_sys::Array::of1(&text.into());
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).map_err(fail)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(fail)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let anchor: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(fail)?
        .dyn_into()
        .map_err(|_| "not an anchor".to_string())?;
    anchor.set_href(&url);
    anchor.set_download(file_name);
    anchor.click();
    // Revoking at once can cancel the download in some browsers: give it a moment.
    gloo_timers::callback::Timeout::new(10_000, move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    })
    .forget();
    Ok(())
}
