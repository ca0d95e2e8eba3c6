use yew::prelude::*;

use crate::format;
use crate::hooks::use_interval;
use crate::state::{Action, SPEEDS};

/// Props of [`Controls`].
#[derive(Properties, PartialEq)]
pub struct ControlsProps {
    /// The clock runs.
    pub playing: bool,
    /// Playing to the end as fast as possible.
    pub fast_forward: bool,
    /// Every policy has finished.
    pub done: bool,
    /// Simulated seconds per second.
    pub speed: f64,
    /// The shared clock, simulated seconds.
    pub clock: f64,
    /// Actions go through here.
    pub on_action: Callback<Action>,
}

/// Play, pause, step, run to end, reset, speed. Owns the animation interval: while playing it
/// ticks about 60 times a second, and dropping it (pause, unmount) stops the ticking.
#[function_component(Controls)]
pub fn controls(props: &ControlsProps) -> Html {
    let act = props.on_action.clone();
    let tick = {
        let act = act.clone();
        Callback::from(move |()| act.emit(Action::Tick))
    };
    use_interval(props.playing.then_some(16), tick);
    let button = |id: &'static str,
                  label: &'static str,
                  title: &'static str,
                  action: Action,
                  disabled: bool| {
        let act = act.clone();
        html! {
            <button {id} type="button" {title} {disabled}
                onclick={Callback::from(move |_| act.emit(action.clone()))}>{ label }</button>
        }
    };
    let on_speed = {
        let act = act.clone();
        Callback::from(move |e: Event| {
            let select: web_sys::HtmlSelectElement = e.target_unchecked_into();
            if let Ok(speed) = select.value().parse() {
                act.emit(Action::SetSpeed(speed));
            }
        })
    };
    let status = if props.done {
        "finished"
    } else if props.fast_forward {
        "running to the end…"
    } else if props.playing {
        "playing"
    } else {
        "paused"
    };
    html! {
        <div class="controls" role="toolbar" aria-label="Playback">
            if props.playing {
                { button("pause", "❚❚ Pause", "stop the clock", Action::Pause, false) }
            } else {
                { button("play", "▶ Play", "start the clock", Action::Play, props.done) }
            }
            { button("step", "Step round", "advance to the next round end of any policy", Action::Step, props.done) }
            { button("finish", "Run to end »", "play everything as fast as possible", Action::Finish, props.done) }
            { button("reset", "↺ Reset", "back to time 0, same configuration", Action::Reset, false) }
            <label class="speed">
                { "Speed " }
                <select id="speed" onchange={on_speed}>
                    { for SPEEDS.iter().map(|&s| html! {
                        <option value={s.to_string()} selected={s == props.speed}>{ format!("{s}×") }</option>
                    }) }
                </select>
            </label>
            <span class="clock" id="clock" data-clock={props.clock.to_string()}>
                { format!("t = {}", format::seconds(props.clock)) }
            </span>
            <span class={classes!("status", props.done.then_some("done"))} id="play-status">{ status }</span>
        </div>
    }
}
