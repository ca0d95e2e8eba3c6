//! The app mounted in a page, driven through its controls like a user would.

use std::time::Duration;

use precopy_core::{PolicyKind, Preset, SimBuilder, SimConfig};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{Element, HtmlElement, HtmlInputElement};

fn document() -> web_sys::Document {
    web_sys::window()
        .and_then(|w| w.document())
        .expect("a document")
}

/// Mounts the app in a fresh element and lets it render.
async fn mount() -> Element {
    let root = document().create_element("div").expect("a div");
    document()
        .body()
        .expect("a body")
        .append_child(&root)
        .expect("appended");
    yew::Renderer::<precopy_web::App>::with_root(root.clone()).render();
    settle().await;
    root
}

async fn settle() {
    yew::platform::time::sleep(Duration::from_millis(30)).await;
}

fn find(root: &Element, selector: &str) -> Element {
    root.query_selector(selector)
        .expect("a valid selector")
        .unwrap_or_else(|| panic!("no element matches {selector}"))
}

/// Types into a text box: set the value, fire a bubbling `input` event (Yew delegates events).
async fn type_into(root: &Element, selector: &str, text: &str) {
    let input: HtmlInputElement = find(root, selector).dyn_into().expect("an input");
    input.set_value(text);
    let init = web_sys::EventInit::new();
    init.set_bubbles(true);
    let event = web_sys::Event::new_with_event_init_dict("input", &init).expect("an event");
    input.dispatch_event(&event).expect("dispatched");
    settle().await;
}

async fn click(root: &Element, selector: &str) {
    let button: HtmlElement = find(root, selector).dyn_into().expect("an HTML element");
    button.click();
    settle().await;
}

fn disabled(root: &Element, selector: &str) -> bool {
    find(root, selector).has_attribute("disabled")
}

#[wasm_bindgen_test]
async fn heading_and_intro_render() {
    let root = mount().await;
    assert_eq!(
        find(&root, "h1").text_content().as_deref(),
        Some(precopy_web::TITLE)
    );
    assert!(find(&root, ".intro")
        .text_content()
        .unwrap()
        .contains("update expectation"));
    assert!(!disabled(&root, "#run"));
}

#[wasm_bindgen_test]
async fn a_bad_beta_shows_an_inline_error_and_blocks_run() {
    let root = mount().await;
    type_into(&root, "#beta", "3").await;
    let message = find(&root, "#beta-msg").text_content().unwrap();
    assert!(message.contains("even"), "{message}");
    assert!(disabled(&root, "#run"));
    assert!(find(&root, "#run-blocked")
        .text_content()
        .unwrap()
        .contains("Fix 1 field"));
    type_into(&root, "#beta", "4").await;
    assert!(!disabled(&root, "#run"));
}

#[wasm_bindgen_test]
async fn a_run_to_the_end_shows_the_core_figures() {
    let root = mount().await;
    type_into(&root, "#scale", "0.02").await;
    type_into(&root, "#bandwidth", "30").await;
    type_into(&root, "#seed", "5").await;
    click(&root, "#run").await;
    // Both lanes, each with a drawn file map.
    assert_eq!(root.query_selector_all(".lane canvas").unwrap().length(), 2);
    click(&root, "#finish").await;
    for _ in 0..200 {
        if find(&root, "#play-status").text_content().as_deref() == Some("finished") {
            break;
        }
        settle().await;
    }
    for kind in [PolicyKind::Baseline, PolicyKind::Proposed] {
        let expected = SimBuilder::new(Preset::Fixed.dataset(0.02).unwrap(), kind)
            .config(SimConfig {
                bandwidth_bps: 30e6,
                seed: 5,
                ..SimConfig::default()
            })
            .build()
            .unwrap()
            .run();
        let row = find(
            &root,
            &format!("#results-table tr[data-policy='{}']", kind.name()),
        );
        let attr = |name: &str| row.get_attribute(name).unwrap_or_default();
        assert_eq!(
            attr("data-precopy-bytes"),
            expected.precopy_bytes.to_string()
        );
        assert_eq!(attr("data-final-bytes"), expected.final_bytes.to_string());
        assert_eq!(attr("data-downtime-s"), expected.downtime_s.to_string());
        assert_eq!(attr("data-rounds"), expected.rounds.to_string());
    }
    // The charts drew a line per policy, and the link holds the run.
    assert_eq!(
        root.query_selector_all("#chart-u .series")
            .unwrap()
            .length(),
        2
    );
    let link = find(&root, "#share-link")
        .get_attribute("href")
        .unwrap_or_default();
    assert!(
        link.contains("scale=0.02") && link.contains("seed=5"),
        "{link}"
    );
}

#[wasm_bindgen_test]
fn a_panic_leaves_a_banner_not_a_blank_page() {
    precopy_web::panic::show_banner("boom at web/src/x.rs:1:1");
    let banner = document()
        .get_element_by_id(precopy_web::panic::BANNER_ID)
        .expect("the banner");
    assert_eq!(banner.get_attribute("role").as_deref(), Some("alert"));
    assert!(banner
        .text_content()
        .unwrap()
        .contains("boom at web/src/x.rs:1:1"));
}
