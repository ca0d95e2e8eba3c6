use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};
use yew::prelude::*;

use crate::map::FileMap;
use crate::state::now_ms;

/// A shared file map, compared by identity (a new run is a new map).
#[derive(Clone)]
pub struct MapHandle(pub Rc<RefCell<FileMap>>);

impl PartialEq for MapHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// Props of [`FileMapCanvas`].
#[derive(Properties, PartialEq)]
pub struct FileMapCanvasProps {
    /// The map to draw.
    pub map: MapHandle,
    /// Bumped when the map may have changed.
    pub frame: u64,
    /// Accessible description.
    pub label: AttrValue,
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

/// Draws a [`FileMap`] on a canvas: everything after a new run or a resize, otherwise only the
/// cells that changed since the last frame.
#[function_component(FileMapCanvas)]
pub fn file_map_canvas(props: &FileMapCanvasProps) -> Html {
    let canvas_ref = use_node_ref();
    // (map identity, last resize) of the last full draw.
    let drawn = use_mut_ref(|| None::<(usize, f64)>);
    // Time of the last window resize: reading the width every frame would force a layout in
    // every frame, so it is read only after a resize.
    let resizes = use_state(|| 0.0f64);
    {
        let resizes = resizes.clone();
        use_effect_with((), move |_| {
            let listener = web_sys::window().map(|w| {
                gloo_events::EventListener::new(&w, "resize", move |_| resizes.set(now_ms()))
            });
            move || drop(listener)
        });
    }
    {
        let canvas_ref = canvas_ref.clone();
        let map = props.map.clone();
        let resized = *resizes;
        use_effect_with((props.frame, map.clone(), resized), move |_| {
            let Some(canvas) = canvas_ref.cast::<HtmlCanvasElement>() else {
                return;
            };
            let key = (Rc::as_ptr(&map.0) as usize, resized);
            let mut map = map.0.borrow_mut();
            let Some(ctx) = context(&canvas) else {
                return;
            };
            if *drawn.borrow() != Some(key) {
                let width = canvas
                    .parent_element()
                    .map_or(400.0, |p| f64::from(p.client_width()))
                    .max(120.0);
                let height = map.layout(width);
                let ratio = web_sys::window().map_or(1.0, |w| w.device_pixel_ratio());
                canvas.set_width((width * ratio) as u32);
                canvas.set_height((height * ratio) as u32);
                canvas
                    .set_attribute("style", &format!("width:{width}px;height:{height}px"))
                    .ok();
                ctx.set_transform(ratio, 0.0, 0.0, ratio, 0.0, 0.0).ok();
                map.draw_all(&ctx);
                *drawn.borrow_mut() = Some(key);
            } else {
                map.draw_pending(&ctx);
            }
        });
    }
    html! {
        <div class="file-map">
            <canvas ref={canvas_ref} role="img" aria-label={props.label.clone()}></canvas>
        </div>
    }
}
