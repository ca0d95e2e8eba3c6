//! A panic never leaves a blank page: the hook logs the message and shows it in a banner.

use std::panic;

/// The id of the banner element.
pub const BANNER_ID: &str = "panic-banner";

/// Installs the hook (idempotent in effect: a second call replaces the first).
pub fn install() {
    panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        web_sys::console::error_1(&message.as_str().into());
        show_banner(&message);
    }));
}

/// Puts an error banner at the top of the page, built with the DOM alone (the app that
/// panicked can no longer render).
pub fn show_banner(message: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Some(body) = document.body() else {
        return;
    };
    let banner = match document.get_element_by_id(BANNER_ID) {
        Some(existing) => existing,
        None => match document.create_element("div") {
            Ok(div) => div,
            Err(_) => return,
        },
    };
    banner.set_id(BANNER_ID);
    banner.set_attribute("role", "alert").ok();
    banner.set_class_name("panic-banner");
    banner.set_text_content(Some(&format!(
        "Something went wrong and the simulator stopped: {message}. Reload the page to start \
         again; the link keeps your configuration."
    )));
    body.prepend_with_node_1(&banner).ok();
}
