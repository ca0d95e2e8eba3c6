use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Props of [`TextField`].
#[derive(Properties, PartialEq)]
pub struct TextFieldProps {
    /// Element id (also used by tests and the end-to-end script).
    pub id: AttrValue,
    /// Visible label.
    pub label: AttrValue,
    /// The text as typed.
    pub value: String,
    /// What is wrong with it, if anything.
    #[prop_or_default]
    pub error: Option<String>,
    /// A short help text shown when there is no error.
    #[prop_or_default]
    pub hint: AttrValue,
    /// Unit shown after the box.
    #[prop_or_default]
    pub unit: AttrValue,
    /// Called with the new text on every keystroke.
    pub on_input: Callback<String>,
}

/// A labelled text box that shows its validation message inline, as the user types.
#[function_component(TextField)]
pub fn text_field(props: &TextFieldProps) -> Html {
    let on_input = props.on_input.clone();
    let oninput = Callback::from(move |e: InputEvent| {
        let input: HtmlInputElement = e.target_unchecked_into();
        on_input.emit(input.value());
    });
    let message_id = format!("{}-msg", props.id);
    let invalid = props.error.is_some();
    html! {
        <div class={classes!("field", invalid.then_some("invalid"))}>
            <label for={props.id.clone()}>{ props.label.clone() }</label>
            <div class="input-row">
                <input id={props.id.clone()} type="text" spellcheck="false" autocomplete="off"
                    value={props.value.clone()} {oninput}
                    aria-invalid={invalid.to_string()} aria-describedby={message_id.clone()} />
                if !props.unit.is_empty() {
                    <span class="unit">{ props.unit.clone() }</span>
                }
            </div>
            if let Some(error) = &props.error {
                <p class="msg error" id={message_id} role="alert">{ error }</p>
            } else if !props.hint.is_empty() {
                <p class="msg hint" id={message_id}>{ props.hint.clone() }</p>
            }
        </div>
    }
}
