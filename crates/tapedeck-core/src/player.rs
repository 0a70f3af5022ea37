//! The script player: a sans-IO planner that turns a script into one plan per
//! output frame. (One file: the steps, the segments they become and the
//! per-frame plan are one state machine; about half of it is its tests.)
//!
//! The driver calls [`Player::poll`] once per output frame. The player either
//! asks for something about the page ([`Need`]: where an element is, or to
//! navigate), which the driver answers with [`Player::answer`], or returns the
//! frame's plan: the input events to dispatch before that frame is rendered
//! (one mouse move per frame along an eased path), the scroll position, and
//! the overlay (cursor, click ripples, highlight box) the recorder draws over
//! the page pixels. Time is the frame index: frame `k` is at `k / fps`.
//!
//! Over 600 lines: 683 of code, one planner (steps, eased paths, overlay
//! timing) that reads best in one piece, then its inline tests.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::script::{
    CLICK_SETTLE_MS, Color, Easing, HIGHLIGHT_MS, HOVER_MS, MOVE_MS, PER_KEY_MS, SCROLL_MS, Script,
    Step,
};

/// How long a click ripple lasts.
pub const RIPPLE_MS: u32 = 600;
/// How long a highlight fades in and out.
pub const HIGHLIGHT_FADE_MS: u32 = 200;
/// Time to scroll an element into view before acting on it.
pub const REVEAL_MS: u32 = 800;
/// Pause after typing.
pub const TYPE_SETTLE_MS: u32 = 300;

/// A box in document CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

/// What the player needs to know before it can go on.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// Where an element is (if `selector`), how tall the page is and where it is scrolled.
    Inspect {
        /// 0-based step index.
        step: usize,
        /// The element.
        selector: Option<String>,
    },
    /// Navigate and wait for the page to load.
    Navigate {
        /// 0-based step index.
        step: usize,
        /// Where.
        url: String,
    },
}

/// The driver's answer to a [`Need`].
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The page as inspected.
    Inspected {
        /// The element's box in document coordinates, `None` if not found.
        rect: Option<Rect>,
        /// The document's scroll height.
        scroll_height: f64,
        /// The current vertical scroll offset.
        scroll_y: f64,
    },
    /// The navigation finished.
    Navigated,
}

/// One input event for the browser, in viewport CSS pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Pointer moved.
    MouseMove {
        /// x.
        x: f64,
        /// y.
        y: f64,
    },
    /// Left button pressed.
    MouseDown {
        /// x.
        x: f64,
        /// y.
        y: f64,
    },
    /// Left button released.
    MouseUp {
        /// x.
        x: f64,
        /// y.
        y: f64,
    },
    /// One key: a character, or `"\n"` for Enter.
    Key {
        /// The text the key types.
        text: String,
    },
}

/// An expanding ring where a click happened.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ripple {
    /// Viewport x.
    pub x: f32,
    /// Viewport y.
    pub y: f32,
    /// 0 at the click, 1 when it is gone.
    pub age: f32,
}

/// A box drawn around an element.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HighlightBox {
    /// Viewport box.
    pub x: f32,
    /// Top.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
    /// Colour.
    pub color: [u8; 3],
    /// 0..1 (fading in and out).
    pub alpha: f32,
}

/// What the recorder draws over one frame.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Overlay {
    /// Cursor tip in viewport CSS pixels.
    pub cursor: Option<(f32, f32)>,
    /// The button is down.
    pub pressed: bool,
    /// Active click ripples.
    pub ripples: Vec<Ripple>,
    /// The active highlight.
    pub highlight: Option<HighlightBox>,
}

/// The plan of one output frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FramePlan {
    /// Output frame index.
    pub index: u64,
    /// Its time in microseconds.
    pub pts_us: i64,
    /// Input to dispatch before rendering it.
    pub inputs: Vec<Input>,
    /// Vertical scroll offset to set before rendering it.
    pub scroll_to: Option<f64>,
    /// What to draw over it.
    pub overlay: Overlay,
    /// The 0-based step this frame belongs to.
    pub step: usize,
}

/// What [`Player::poll`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Tick {
    /// Answer this first.
    Need(Need),
    /// Render this frame.
    Frame(FramePlan),
    /// The script is over.
    Done,
}

/// The script cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayError {
    /// A required element is not on the page.
    #[error("script step {step} ({step_type}): no element matches `{selector}`")]
    NotFound {
        /// 1-based.
        step: usize,
        /// The step's type.
        step_type: &'static str,
        /// The selector.
        selector: String,
    },
    /// An answer came that was not asked for.
    #[error("the player got an answer it did not ask for")]
    Unexpected,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Hold {
        n: u64,
    },
    Scroll {
        from: f64,
        to: f64,
        easing: Easing,
        n: u64,
        i: u64,
    },
    Move {
        from: (f64, f64),
        to: (f64, f64),
        easing: Easing,
        n: u64,
        i: u64,
    },
    Press {
        at: (f64, f64),
    },
    Release {
        at: (f64, f64),
    },
    Keys {
        chars: Vec<char>,
        per_key_ms: u32,
        n: u64,
        i: u64,
        typed: usize,
    },
    Highlight {
        rect: Rect,
        color: Color,
        n: u64,
        i: u64,
    },
}

/// Plays one script.
#[derive(Debug, Clone)]
pub struct Player {
    steps: Vec<Step>,
    fps: u32,
    viewport: (f64, f64),
    next_step: usize,
    current_step: usize,
    segs: VecDeque<Seg>,
    pending: Option<Need>,
    frame: u64,
    cursor: (f64, f64),
    scroll_y: f64,
    ripples: Vec<(f64, f64, u64)>,
    hold_until: Option<u64>,
    stop_at: Option<u64>,
    /// Frames the script's own steps take (`Script::nominal_ms`).
    nominal: u64,
}

impl Player {
    /// A player for `script` at `fps` in a `width`x`height` CSS pixel viewport.
    pub fn new(script: Script, fps: u32, width: u32, height: u32) -> Self {
        let viewport = (f64::from(width), f64::from(height));
        let nominal = script.nominal_ms() * u64::from(fps.max(1)) / 1000;
        Self {
            nominal,
            steps: script.0,
            fps: fps.max(1),
            viewport,
            next_step: 0,
            current_step: 0,
            segs: VecDeque::new(),
            pending: None,
            frame: 0,
            cursor: (viewport.0 * 0.5, viewport.1 * 0.6),
            scroll_y: 0.0,
            ripples: Vec::new(),
            hold_until: None,
            stop_at: None,
        }
    }

    /// Makes the video exactly `frames` long: holds after the script, cuts it if longer.
    pub fn exact_length(mut self, frames: u64) -> Self {
        self.hold_until = Some(frames);
        self.stop_at = Some(frames);
        self
    }

    /// Frames rendered so far.
    pub fn frames(&self) -> u64 {
        self.frame
    }

    /// Frames the video is planned to have, for progress: its exact length
    /// when set, else what the script's steps take (moves the player adds
    /// come on top, so never fewer than rendered so far).
    pub fn planned_frames(&self) -> u64 {
        self.hold_until
            .unwrap_or(self.nominal)
            .max(self.frame)
            .max(1)
    }

    /// Number of frames for a duration (at least one for a non-zero one).
    pub fn frames_for(&self, ms: u32) -> u64 {
        if ms == 0 {
            return 0;
        }
        ((u64::from(ms) * u64::from(self.fps) + 500) / 1000).max(1)
    }

    /// Time of frame `k` in microseconds.
    pub fn pts_us(&self, k: u64) -> i64 {
        (k as i128 * 1_000_000 / i128::from(self.fps)) as i64
    }

    /// The next thing to do.
    pub fn poll(&mut self) -> Tick {
        loop {
            if let Some(need) = &self.pending {
                return Tick::Need(need.clone());
            }
            if self.stop_at.is_some_and(|s| self.frame >= s) {
                return Tick::Done;
            }
            if !self.segs.is_empty() {
                return Tick::Frame(self.next_frame());
            }
            if self.next_step < self.steps.len() {
                let i = self.next_step;
                let step = &self.steps[i];
                self.current_step = i;
                match step {
                    Step::Wait { duration_ms } => {
                        let n = self.frames_for(*duration_ms);
                        self.segs.push_back(Seg::Hold { n });
                        self.next_step += 1;
                    }
                    Step::Move {
                        x: Some(x),
                        y: Some(y),
                        duration_ms,
                        easing,
                        ..
                    } => {
                        let to = (*x, *y);
                        let n = self.frames_for(duration_ms.unwrap_or(MOVE_MS));
                        self.segs.push_back(Seg::Move {
                            from: self.cursor,
                            to,
                            easing: *easing,
                            n,
                            i: 0,
                        });
                        self.next_step += 1;
                    }
                    Step::Goto { url } => {
                        self.pending = Some(Need::Navigate {
                            step: i,
                            url: url.clone(),
                        })
                    }
                    _ => {
                        self.pending = Some(Need::Inspect {
                            step: i,
                            selector: step.selector().map(str::to_string),
                        })
                    }
                }
                continue;
            }
            if self.hold_until.is_some_and(|h| self.frame < h) {
                self.segs.push_back(Seg::Hold { n: 1 });
                continue;
            }
            return Tick::Done;
        }
    }

    /// Answers the pending [`Need`].
    pub fn answer(&mut self, answer: Answer) -> Result<(), PlayError> {
        let need = self.pending.take().ok_or(PlayError::Unexpected)?;
        match (need, answer) {
            (Need::Navigate { .. }, Answer::Navigated) => {
                self.scroll_y = 0.0;
                self.next_step += 1;
                Ok(())
            }
            (
                Need::Inspect { step, selector },
                Answer::Inspected {
                    rect,
                    scroll_height,
                    scroll_y,
                },
            ) => {
                self.scroll_y = scroll_y;
                self.next_step = step + 1;
                let max_scroll = (scroll_height - self.viewport.1).max(0.0);
                let s = self.steps[step].clone();
                let rect = match (selector, rect) {
                    (Some(sel), None) => {
                        if s.optional() {
                            return Ok(());
                        }
                        return Err(PlayError::NotFound {
                            step: step + 1,
                            step_type: s.kind(),
                            selector: sel,
                        });
                    }
                    (_, r) => r,
                };
                self.expand(&s, rect, max_scroll);
                Ok(())
            }
            (need, _) => {
                self.pending = Some(need);
                Err(PlayError::Unexpected)
            }
        }
    }

    fn scroll_seg(&mut self, to: f64, ms: u32, easing: Easing, max_scroll: f64) {
        let to = to.clamp(0.0, max_scroll);
        let n = self.frames_for(ms);
        if (to - self.scroll_y).abs() >= 0.5 && n > 0 {
            self.segs.push_back(Seg::Scroll {
                from: self.scroll_y,
                to,
                easing,
                n,
                i: 0,
            });
            self.scroll_y = to;
        }
    }

    /// Scrolls `rect` into the middle band of the viewport if it is not there; returns its centre in viewport coordinates afterwards.
    fn reveal(&mut self, rect: Rect, max_scroll: f64) -> (f64, f64) {
        let vh = self.viewport.1;
        let centre_y = rect.y + rect.h / 2.0;
        let in_view = centre_y - self.scroll_y;
        if !(vh * 0.1..=vh * 0.9).contains(&in_view) {
            self.scroll_seg(
                centre_y - vh / 2.0,
                REVEAL_MS,
                Easing::EaseInOut,
                max_scroll,
            );
        }
        let x = (rect.x + rect.w / 2.0).clamp(0.0, self.viewport.0 - 1.0);
        let y = (centre_y - self.scroll_y).clamp(0.0, vh - 1.0);
        (x, y)
    }

    fn move_to(&mut self, to: (f64, f64), ms: u32, easing: Easing) {
        let from = self.planned_cursor();
        let dist = ((to.0 - from.0).powi(2) + (to.1 - from.1).powi(2)).sqrt();
        if dist < 1.0 {
            return;
        }
        let n = self.frames_for(ms);
        self.segs.push_back(Seg::Move {
            from,
            to,
            easing,
            n,
            i: 0,
        });
    }

    /// Where the cursor will be once the queued segments ran.
    fn planned_cursor(&self) -> (f64, f64) {
        self.segs
            .iter()
            .rev()
            .find_map(|s| match s {
                Seg::Move { to, .. } => Some(*to),
                _ => None,
            })
            .unwrap_or(self.cursor)
    }

    fn click_at(&mut self, at: (f64, f64)) {
        self.segs.push_back(Seg::Press { at });
        self.segs.push_back(Seg::Release { at });
    }

    fn expand(&mut self, step: &Step, rect: Option<Rect>, max_scroll: f64) {
        match (step, rect) {
            (
                Step::Scroll {
                    by_px: Some(px),
                    duration_ms,
                    easing,
                    ..
                },
                _,
            ) => {
                let to = self.scroll_y + f64::from(*px);
                self.scroll_seg(to, duration_ms.unwrap_or(SCROLL_MS), *easing, max_scroll);
            }
            (
                Step::Scroll {
                    duration_ms,
                    easing,
                    ..
                },
                Some(r),
            ) => {
                let to = r.y - self.viewport.1 * 0.15;
                self.scroll_seg(to, duration_ms.unwrap_or(SCROLL_MS), *easing, max_scroll);
            }
            (Step::Hover { duration_ms, .. }, Some(r)) => {
                let at = self.reveal(r, max_scroll);
                self.move_to(at, MOVE_MS, Easing::EaseInOut);
                let n = self.frames_for(duration_ms.unwrap_or(HOVER_MS));
                self.segs.push_back(Seg::Hold { n });
            }
            (Step::Click { .. }, Some(r)) => {
                let at = self.reveal(r, max_scroll);
                self.move_to(at, MOVE_MS, Easing::EaseInOut);
                self.click_at(at);
                let n = self.frames_for(CLICK_SETTLE_MS);
                self.segs.push_back(Seg::Hold { n });
            }
            (
                Step::Type {
                    text, per_key_ms, ..
                },
                Some(r),
            ) => {
                let at = self.reveal(r, max_scroll);
                self.move_to(at, MOVE_MS, Easing::EaseInOut);
                self.click_at(at);
                let per_key_ms = per_key_ms.unwrap_or(PER_KEY_MS);
                let chars: Vec<char> = text.chars().collect();
                let n = self
                    .frames_for(per_key_ms.saturating_mul(chars.len() as u32))
                    .max(chars.len().min(1) as u64);
                self.segs.push_back(Seg::Keys {
                    chars,
                    per_key_ms,
                    n,
                    i: 0,
                    typed: 0,
                });
                let n = self.frames_for(TYPE_SETTLE_MS);
                self.segs.push_back(Seg::Hold { n });
            }
            (
                Step::Highlight {
                    duration_ms, color, ..
                },
                Some(r),
            ) => {
                self.reveal(r, max_scroll);
                let n = self.frames_for(duration_ms.unwrap_or(HIGHLIGHT_MS));
                self.segs.push_back(Seg::Highlight {
                    rect: r,
                    color: color.unwrap_or(Color::HIGHLIGHT),
                    n,
                    i: 0,
                });
            }
            (
                Step::Move {
                    duration_ms,
                    easing,
                    ..
                },
                Some(r),
            ) => {
                let at = self.reveal(r, max_scroll);
                self.move_to(at, duration_ms.unwrap_or(MOVE_MS), *easing);
            }
            // Optional step whose element is missing, or nothing to do.
            _ => {}
        }
    }

    fn next_frame(&mut self) -> FramePlan {
        let k = self.frame;
        let mut inputs = Vec::new();
        let mut scroll_to = None;
        let mut highlight = None;
        let mut pressed = false;
        let mut done = false;
        let fps = self.fps;
        if let Some(seg) = self.segs.front_mut() {
            match seg {
                Seg::Hold { n } => {
                    *n = n.saturating_sub(1);
                    done = *n == 0;
                }
                Seg::Scroll {
                    from,
                    to,
                    easing,
                    n,
                    i,
                } => {
                    *i += 1;
                    let p = easing.apply(*i as f64 / *n as f64);
                    scroll_to = Some(*from + (*to - *from) * p);
                    done = *i >= *n;
                }
                Seg::Move {
                    from,
                    to,
                    easing,
                    n,
                    i,
                } => {
                    *i += 1;
                    let p = easing.apply(*i as f64 / *n as f64);
                    let at = (from.0 + (to.0 - from.0) * p, from.1 + (to.1 - from.1) * p);
                    self.cursor = at;
                    inputs.push(Input::MouseMove { x: at.0, y: at.1 });
                    done = *i >= *n;
                }
                Seg::Press { at } => {
                    self.cursor = *at;
                    inputs.push(Input::MouseDown { x: at.0, y: at.1 });
                    self.ripples.push((at.0, at.1, k));
                    pressed = true;
                    done = true;
                }
                Seg::Release { at } => {
                    inputs.push(Input::MouseUp { x: at.0, y: at.1 });
                    done = true;
                }
                Seg::Keys {
                    chars,
                    per_key_ms,
                    n,
                    i,
                    typed,
                } => {
                    *i += 1;
                    // Every key whose time has come by the end of this frame.
                    let until_ms = *i as f64 * 1000.0 / f64::from(fps);
                    while *typed < chars.len()
                        && (*typed as f64 * f64::from(*per_key_ms) <= until_ms || *i >= *n)
                    {
                        inputs.push(Input::Key {
                            text: chars[*typed].to_string(),
                        });
                        *typed += 1;
                    }
                    done = *i >= *n && *typed >= chars.len();
                }
                Seg::Highlight { rect, color, n, i } => {
                    *i += 1;
                    let fade = (u64::from(HIGHLIGHT_FADE_MS) * u64::from(fps) / 1000).max(1);
                    let edge = (*i).min(*n + 1 - *i) as f64 / fade as f64;
                    highlight = Some(HighlightBox {
                        x: rect.x as f32,
                        y: (rect.y - self.scroll_y) as f32,
                        w: rect.w as f32,
                        h: rect.h as f32,
                        color: color.0,
                        alpha: edge.clamp(0.0, 1.0) as f32,
                    });
                    done = *i >= *n;
                }
            }
        }
        if done {
            self.segs.pop_front();
        }
        let ripple_frames = (u64::from(RIPPLE_MS) * u64::from(fps) / 1000).max(1);
        self.ripples.retain(|r| k - r.2 < ripple_frames);
        let ripples = self
            .ripples
            .iter()
            .map(|r| Ripple {
                x: r.0 as f32,
                y: r.1 as f32,
                age: (k - r.2) as f32 / ripple_frames as f32,
            })
            .collect();
        self.frame += 1;
        FramePlan {
            index: k,
            pts_us: self.pts_us(k),
            inputs,
            scroll_to,
            overlay: Overlay {
                cursor: Some((self.cursor.0 as f32, self.cursor.1 as f32)),
                pressed,
                ripples,
                highlight,
            },
            step: self.current_step,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn script(v: serde_json::Value) -> Script {
        Script::from_value(&v).unwrap()
    }

    /// Plays a script against a fake page where every selector is at `rect`.
    fn play(p: &mut Player, rect: Option<Rect>) -> Result<Vec<FramePlan>, PlayError> {
        let mut frames = Vec::new();
        let mut scroll = 0.0;
        loop {
            match p.poll() {
                Tick::Done => return Ok(frames),
                Tick::Frame(f) => {
                    if let Some(y) = f.scroll_to {
                        scroll = y;
                    }
                    frames.push(f)
                }
                Tick::Need(Need::Navigate { .. }) => {
                    scroll = 0.0;
                    p.answer(Answer::Navigated)?
                }
                Tick::Need(Need::Inspect { selector, .. }) => p.answer(Answer::Inspected {
                    rect: selector.and(rect),
                    scroll_height: 3000.0,
                    scroll_y: scroll,
                })?,
            }
        }
    }

    #[test]
    fn wait_is_exactly_its_frames() {
        let mut p = Player::new(
            script(json!([{"type": "wait", "duration_ms": 2000}])),
            30,
            1280,
            720,
        );
        let f = play(&mut p, None).unwrap();
        assert_eq!(f.len(), 60);
        assert_eq!(f[59].pts_us, 1_966_666);
        assert!(f.iter().enumerate().all(|(i, f)| f.index == i as u64));
    }

    #[test]
    fn moves_send_one_mouse_event_per_frame_along_the_eased_path() {
        let s = script(
            json!([{"type": "move", "x": 700, "y": 432, "duration_ms": 1000, "easing": "linear"}]),
        );
        let mut p = Player::new(s, 60, 1280, 720);
        let f = play(&mut p, None).unwrap();
        assert_eq!(f.len(), 60);
        for (i, fr) in f.iter().enumerate() {
            assert_eq!(fr.inputs.len(), 1);
            let Input::MouseMove { x, y } = fr.inputs[0] else {
                panic!("not a move")
            };
            let t = (i + 1) as f64 / 60.0;
            assert!((x - (640.0 + 60.0 * t)).abs() < 1e-9);
            assert!((y - (432.0)).abs() < 1e-9);
            assert_eq!(fr.overlay.cursor, Some((x as f32, y as f32)));
        }
    }

    #[test]
    fn click_scrolls_into_view_moves_presses_and_ripples() {
        let s = script(json!([{"type": "click", "selector": "#b"}]));
        let mut p = Player::new(s, 30, 1280, 720);
        let r = Rect {
            x: 100.0,
            y: 1500.0,
            w: 200.0,
            h: 40.0,
        };
        let f = play(&mut p, Some(r)).unwrap();
        let reveal = p.frames_for(REVEAL_MS) as usize;
        let mv = p.frames_for(MOVE_MS) as usize;
        let settle = p.frames_for(CLICK_SETTLE_MS) as usize;
        assert_eq!(f.len(), reveal + mv + 2 + settle);
        // The element's centre ends in the middle of the viewport.
        assert_eq!(f[reveal - 1].scroll_to, Some(1520.0 - 360.0));
        let down = &f[reveal + mv];
        assert_eq!(down.inputs, vec![Input::MouseDown { x: 200.0, y: 360.0 }]);
        assert_eq!(
            f[reveal + mv + 1].inputs,
            vec![Input::MouseUp { x: 200.0, y: 360.0 }]
        );
        assert_eq!(down.overlay.ripples.len(), 1);
        assert_eq!(down.overlay.ripples[0].age, 0.0);
        // The ripple ages one frame at a time: 18 frames at 30 fps.
        let last = &f[f.len() - 1].overlay.ripples;
        assert_eq!(last.len(), 1);
        assert!((last[0].age - 16.0 / 18.0).abs() < 1e-6, "{last:?}");
    }

    #[test]
    fn missing_selector_fails_naming_the_step_unless_optional() {
        let s = script(
            json!([{"type": "wait", "duration_ms": 100}, {"type": "hover", "selector": ".gone"}]),
        );
        let e = play(&mut Player::new(s, 30, 1280, 720), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "script step 2 (hover): no element matches `.gone`"
        );
        let s = script(
            json!([{"type": "hover", "selector": ".gone", "optional": true}, {"type": "wait", "duration_ms": 100}]),
        );
        assert_eq!(
            play(&mut Player::new(s, 30, 1280, 720), None)
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn typing_sends_each_character_once_in_order() {
        let s = script(
            json!([{"type": "type", "selector": "#e", "text": "hi there", "per_key_ms": 10}]),
        );
        let mut p = Player::new(s, 30, 1280, 720);
        let r = Rect {
            x: 10.0,
            y: 100.0,
            w: 100.0,
            h: 20.0,
        };
        let f = play(&mut p, Some(r)).unwrap();
        let typed: String = f
            .iter()
            .flat_map(|f| f.inputs.iter())
            .filter_map(|i| match i {
                Input::Key { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(typed, "hi there");
    }

    #[test]
    fn exact_length_holds_and_cuts() {
        let s = script(json!([{"type": "wait", "duration_ms": 1000}]));
        assert_eq!(
            play(
                &mut Player::new(s.clone(), 30, 640, 480).exact_length(90),
                None
            )
            .unwrap()
            .len(),
            90
        );
        assert_eq!(
            play(&mut Player::new(s, 30, 640, 480).exact_length(10), None)
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn highlight_fades_in_and_out() {
        let s = script(
            json!([{"type": "highlight", "selector": "h1", "duration_ms": 1000, "color": "#00ff00"}]),
        );
        let r = Rect {
            x: 10.0,
            y: 50.0,
            w: 100.0,
            h: 20.0,
        };
        let f = play(&mut Player::new(s, 30, 640, 480), Some(r)).unwrap();
        assert_eq!(f.len(), 30);
        let a: Vec<f32> = f
            .iter()
            .map(|f| f.overlay.highlight.unwrap().alpha)
            .collect();
        assert!(a[0] > 0.0 && a[0] < 1.0);
        assert_eq!(a[15], 1.0);
        assert!(a[29] > 0.0 && a[29] < 1.0);
        assert_eq!(f[0].overlay.highlight.unwrap().color, [0, 255, 0]);
    }

    proptest! {
        /// Frame indices and times are contiguous and exact, whatever the script.
        #[test]
        fn frame_timing_is_exact(durs in proptest::collection::vec(1u32..3000, 1..8), fps in prop_oneof![Just(24u32), Just(30), Just(60)]) {
            let steps: Vec<_> = durs.iter().map(|d| json!({"type": "wait", "duration_ms": d})).collect();
            let mut p = Player::new(script(json!(steps)), fps, 1280, 720);
            let f = play(&mut p, None).unwrap();
            let want: u64 = durs.iter().map(|d| ((u64::from(*d) * u64::from(fps) + 500) / 1000).max(1)).sum();
            prop_assert_eq!(f.len() as u64, want);
            for (i, fr) in f.iter().enumerate() {
                prop_assert_eq!(fr.index, i as u64);
                prop_assert_eq!(fr.pts_us, (i as i128 * 1_000_000 / i128::from(fps)) as i64);
            }
        }

        /// Scrolling never leaves the page and moves stay on the eased path's ends.
        #[test]
        fn scrolls_stay_on_the_page(pxs in proptest::collection::vec(-5000i32..5000, 1..6)) {
            let steps: Vec<_> = pxs.iter().map(|p| json!({"type": "scroll", "by_px": p, "duration_ms": 300})).collect();
            let mut p = Player::new(script(json!(steps)), 30, 1280, 720);
            for f in play(&mut p, None).unwrap() {
                if let Some(y) = f.scroll_to {
                    prop_assert!((0.0..=3000.0 - 720.0).contains(&y), "{}", y);
                }
            }
        }
    }
}
