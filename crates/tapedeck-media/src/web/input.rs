//! What the script does to the page: input events, the questions it asks
//! (element boxes, scroll height) and the tour made from a page survey.

use serde_json::{Value, json};
use tapedeck_core::player::{Answer, Input, Need, Rect};
use tapedeck_core::script::Script;
use tapedeck_core::tour::{self, Survey};
use tapedeck_core::web::{DEFAULT_AUTO_S, WebSource};

use super::cdp::Reply;
use super::options::WebError;
use super::session::Session;

const SURVEY_JS: &str = include_str!("survey.js");
const VISUAL_BOX_JS: &str = include_str!("visual_box.js");

/// `expr` (an expression) evaluated with `visualBox` defined.
fn with_visual_box(expr: &str) -> String {
    // `return (` on one line: a comment at the start of `expr` must not end
    // the statement.
    format!("(() => {{\n{VISUAL_BOX_JS}\nreturn (\n{expr}\n);\n}})()")
}

pub(super) fn inspect_js(selector: Option<&str>) -> String {
    let sel = serde_json::to_string(&selector).unwrap_or_else(|_| "null".into());
    with_visual_box(&format!(
        r#"(() => {{
  const sel = {sel};
  const se = document.scrollingElement || document.documentElement;
  const out = {{ scrollHeight: Math.max(se ? se.scrollHeight : 0, document.body ? document.body.scrollHeight : 0, innerHeight), scrollY: scrollY }};
  if (sel !== null) {{
    let el;
    try {{ el = document.querySelector(sel); }} catch (e) {{ out.error = String(e.message); return out; }}
    if (el) {{ const r = visualBox(el); out.rect = {{ x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height }}; }}
  }}
  return out;
}})()"#
    ))
}

pub(super) fn mouse(kind: &str, x: f64, y: f64, button: &str, buttons: u32) -> Value {
    json!({"type": kind, "x": x, "y": y, "button": button, "buttons": buttons, "clickCount": if button == "left" { 1 } else { 0 }})
}

/// Sends a frame's input events without waiting for them (the renderer
/// handles them in the frame); the replies to wait for later.
pub(super) fn dispatch(s: &Session, inputs: &[Input], buttons: &mut u32) -> Vec<Reply> {
    let mut replies = Vec::new();
    for input in inputs {
        let (method, params) = match input {
            Input::MouseMove { x, y } => (
                "Input.dispatchMouseEvent",
                mouse(
                    "mouseMoved",
                    *x,
                    *y,
                    if *buttons == 1 { "left" } else { "none" },
                    *buttons,
                ),
            ),
            Input::MouseDown { x, y } => {
                *buttons = 1;
                (
                    "Input.dispatchMouseEvent",
                    mouse("mousePressed", *x, *y, "left", 1),
                )
            }
            Input::MouseUp { x, y } => {
                *buttons = 0;
                (
                    "Input.dispatchMouseEvent",
                    mouse("mouseReleased", *x, *y, "left", 0),
                )
            }
            Input::Key { text } => {
                let down = if text == "\n" {
                    json!({"type": "keyDown", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r", "unmodifiedText": "\r"})
                } else {
                    json!({"type": "keyDown", "key": text, "text": text, "unmodifiedText": text})
                };
                replies.push(s.cdp.send(Some(&s.sid), "Input.dispatchKeyEvent", down));
                let key = if text == "\n" { "Enter" } else { text.as_str() };
                (
                    "Input.dispatchKeyEvent",
                    json!({"type": "keyUp", "key": key}),
                )
            }
        };
        replies.push(s.cdp.send(Some(&s.sid), method, params));
    }
    replies
}

/// Answers what the player needs to know before its next frame.
pub(super) async fn answer(s: &mut Session, need: Need) -> Result<Answer, WebError> {
    Ok(match need {
        Need::Navigate { url, .. } => {
            s.navigate(&url).await?;
            Answer::Navigated
        }
        Need::Inspect { step, selector } => {
            let v = s.eval(&inspect_js(selector.as_deref())).await?;
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                return Err(WebError::Selector {
                    step: step + 1,
                    message: e.to_string(),
                });
            }
            let rect = v
                .get("rect")
                .and_then(|r| serde_json::from_value::<Rect>(r.clone()).ok());
            Answer::Inspected {
                rect,
                scroll_height: v.get("scrollHeight").and_then(Value::as_f64).unwrap_or(0.0),
                scroll_y: v.get("scrollY").and_then(Value::as_f64).unwrap_or(0.0),
            }
        }
    })
}

/// The script to play: the given one, or a tour made from the page's survey.
pub(super) async fn resolve_script(
    s: &Session,
    src: &WebSource,
    width: u32,
    height: u32,
) -> Result<Script, WebError> {
    if let Some(script) = &src.script {
        return Ok(script.clone());
    }
    let v = s
        .eval(&with_visual_box(SURVEY_JS.trim_end().trim_end_matches(';')))
        .await?;
    let survey: Survey = serde_json::from_value(v).unwrap_or(Survey {
        viewport_w: f64::from(width),
        viewport_h: f64::from(height),
        scroll_height: f64::from(height),
        elements: vec![],
    });
    Ok(match src.template {
        Some(t) => tour::template(t, &survey),
        None => tour::auto(
            &survey,
            src.auto.map(|a| a.duration_s).unwrap_or(DEFAULT_AUTO_S),
        ),
    })
}
