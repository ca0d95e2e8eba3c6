//! The paper view's web worker: runs the simulations of the task it is posted, off the page's
//! main thread, and posts each run's result back as soon as it is known.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

fn main() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let reply_to = scope.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let Some(task) = event.data().as_string() else {
            return;
        };
        let mut reply = |text: String| {
            // The page is gone if this fails: nothing left to tell.
            let _ = reply_to.post_message(&JsValue::from_str(&text));
        };
        if let Err(e) = precopy_web::paper::run_task(&task, &mut reply) {
            reply(format!("{{\"error\":{e:?}}}"));
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as its handler: keep it.
    on_message.forget();
    // Messages posted before the handler existed were dropped: ask for the task now.
    let _ = scope.post_message(&JsValue::from_str(precopy_web::paper::READY));
}
