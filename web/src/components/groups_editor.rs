use std::rc::Rc;

use precopy_core::dataset::Kind;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::config::{Errors, Field, GroupField, GroupRow};
use crate::state::Action;

/// Props of [`GroupsEditor`].
#[derive(Properties, PartialEq)]
pub struct GroupsEditorProps {
    /// The rows as typed.
    pub groups: Vec<GroupRow>,
    /// Validation problems; the table shows those of its cells.
    pub errors: Rc<Errors>,
    /// Edits go through here.
    pub on_action: Callback<Action>,
}

/// A small table editor for custom groups of files.
#[function_component(GroupsEditor)]
pub fn groups_editor(props: &GroupsEditorProps) -> Html {
    let act = &props.on_action;
    let cell = |row: usize, column: GroupField, value: &str, class: &'static str| {
        let field = Field::Group(row, column);
        let error = props
            .errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.clone());
        let act = act.clone();
        let oninput = Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            act.emit(Action::Edit(field, input.value()));
        });
        html! {
            <td class={classes!(class, error.is_some().then_some("invalid"))}>
                <input type="text" spellcheck="false" value={value.to_string()} {oninput}
                    aria-invalid={error.is_some().to_string()} title={error.clone().unwrap_or_default()} />
                if let Some(e) = error {
                    <span class="cell-error" role="alert">{ e }</span>
                }
            </td>
        }
    };
    let add = {
        let act = act.clone();
        Callback::from(move |_| act.emit(Action::AddGroup))
    };
    html! {
        <div class="groups">
            <table id="groups-table">
                <thead>
                    <tr>
                        <th>{ "name" }</th><th>{ "files" }</th>
                        <th title="200KB, or a range min..max/step">{ "size" }</th>
                        <th>{ "kind" }</th><th title="write probability, 0 to 1">{ "p" }</th><th></th>
                    </tr>
                </thead>
                <tbody>
                    { for props.groups.iter().enumerate().map(|(i, g)| {
                        let on_kind = {
                            let act = act.clone();
                            Callback::from(move |e: Event| {
                                let select: HtmlSelectElement = e.target_unchecked_into();
                                let kind = if select.value() == "ro" { Kind::ReadOnly } else { Kind::ReadWrite };
                                act.emit(Action::SetGroupKind(i, kind));
                            })
                        };
                        let remove = {
                            let act = act.clone();
                            Callback::from(move |_| act.emit(Action::RemoveGroup(i)))
                        };
                        html! {
                            <tr>
                                { cell(i, GroupField::Name, &g.name, "name") }
                                { cell(i, GroupField::Count, &g.count, "num") }
                                { cell(i, GroupField::Size, &g.size, "size") }
                                <td>
                                    <select aria-label="kind" onchange={on_kind}>
                                        <option value="rw" selected={g.kind == Kind::ReadWrite}>{ "RW" }</option>
                                        <option value="ro" selected={g.kind == Kind::ReadOnly}>{ "RO" }</option>
                                    </select>
                                </td>
                                { cell(i, GroupField::Probability, &g.probability, "num") }
                                <td>
                                    <button type="button" class="icon" title="remove this group"
                                        aria-label="remove group" onclick={remove}>{ "×" }</button>
                                </td>
                            </tr>
                        }
                    }) }
                </tbody>
            </table>
            <button type="button" class="small" onclick={add}>{ "+ add group" }</button>
            <p class="msg hint">{ "Sizes: 200KB, 1.5MB, or a range such as 100KB..1MB/100KB (files per size)." }</p>
        </div>
    }
}
