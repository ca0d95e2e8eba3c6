use gloo_timers::callback::Interval;
use yew::prelude::*;

/// Calls `callback` every `period_ms` while `period_ms` is `Some`; the component owns the
/// interval, so unmounting it or passing `None` stops the ticking.
#[hook]
pub fn use_interval(period_ms: Option<u32>, callback: Callback<()>) {
    use_effect_with(period_ms, move |period| {
        let interval = period.map(|ms| Interval::new(ms, move || callback.emit(())));
        move || drop(interval)
    });
}
