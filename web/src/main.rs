// `App` lives in the library so that the browser tests can mount it; this only starts it.
fn main() {
    precopy_web::panic::install();
    yew::Renderer::<precopy_web::App>::new().render();
}
