//! Scripts made from the page itself: the `auto` tour and the named templates.
//!
//! The driver surveys the loaded page (headings, calls to action, navigation,
//! forms, images, with a unique selector and a box each); this module scores
//! those elements and writes an ordinary [`Script`] from them, so everything
//! downstream plays it like a script a user wrote.

use serde::{Deserialize, Serialize};

use crate::player::Rect;
use crate::script::{Color, Easing, Script, Step};

/// What kind of element a survey found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElementKind {
    /// `h1`..`h3` (level 1..3).
    Heading,
    /// A button or a link styled as one.
    Cta,
    /// Navigation.
    Nav,
    /// A form or an input field.
    Form,
    /// A large image or video.
    Image,
}

/// One element found on the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Element {
    /// What it is.
    pub kind: ElementKind,
    /// A selector that matches it alone.
    pub selector: String,
    /// Heading level (1..3), 0 otherwise.
    #[serde(default)]
    pub level: u8,
    /// Its visible text (trimmed, short).
    #[serde(default)]
    pub text: String,
    /// Its box in document coordinates.
    pub rect: Rect,
}

/// The page as surveyed after it loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Survey {
    /// Viewport width in CSS pixels.
    pub viewport_w: f64,
    /// Viewport height.
    pub viewport_h: f64,
    /// Document height.
    pub scroll_height: f64,
    /// Candidate elements in document order.
    pub elements: Vec<Element>,
}

/// The named templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// The top of the page: the main heading, then the main call to action.
    HeroShowcase,
    /// Section by section: scroll to each heading and highlight it.
    FeaturesTour,
    /// One smooth scroll from top to bottom and back.
    FullPageScroll,
}

/// Importance of an element for a tour (higher first).
pub fn score(e: &Element, s: &Survey) -> f64 {
    let base = match (e.kind, e.level) {
        (ElementKind::Heading, 1) => 100.0,
        (ElementKind::Heading, 2) => 60.0,
        (ElementKind::Heading, _) => 35.0,
        (ElementKind::Cta, _) => 80.0,
        (ElementKind::Form, _) => 50.0,
        (ElementKind::Image, _) => {
            let share = (e.rect.w * e.rect.h) / (s.viewport_w * s.viewport_h).max(1.0);
            10.0 + 40.0 * share.min(1.0)
        }
        (ElementKind::Nav, _) => 20.0,
    };
    let above_fold = if e.rect.y < s.viewport_h { 20.0 } else { 0.0 };
    // A call to action with a short verb-like label is the real thing; long text is a paragraph link.
    let words = e.text.split_whitespace().count();
    let label = if e.kind == ElementKind::Cta && (1..=4).contains(&words) {
        10.0
    } else {
        0.0
    };
    let tiny = if e.rect.w * e.rect.h < 400.0 {
        -50.0
    } else {
        0.0
    };
    // A big button is the page's main call to action; a form's small submit
    // button is not.
    let prominence = if e.kind == ElementKind::Cta {
        10.0 * (e.rect.w * e.rect.h / 8000.0).clamp(0.0, 1.0)
    } else {
        0.0
    };
    base + above_fold + label + tiny + prominence
}

fn ms(s: f64) -> u32 {
    (s * 1000.0).round().clamp(1.0, 600_000.0) as u32
}

fn highlight(e: &Element, ms: u32) -> Step {
    Step::Highlight {
        selector: e.selector.clone(),
        duration_ms: Some(ms),
        color: Some(Color::HIGHLIGHT),
        optional: true,
    }
}

fn hover(e: &Element, ms: u32) -> Step {
    Step::Hover {
        selector: e.selector.clone(),
        duration_ms: Some(ms),
        optional: true,
    }
}

/// A tour of about `duration_s` seconds over the most important elements in
/// page order. The player makes it exactly that long ([`crate::player::Player::exact_length`]).
pub fn auto(s: &Survey, duration_s: u32) -> Script {
    let total = f64::from(duration_s.max(1));
    // About one stop every 3 seconds, after a 1 s look at the top.
    let stops = ((total - 1.0) / 3.0).floor().max(0.0) as usize;
    let mut ranked: Vec<&Element> = s.elements.iter().filter(|e| score(e, s) > 0.0).collect();
    ranked.sort_by(|a, b| score(b, s).total_cmp(&score(a, s)));
    ranked.truncate(stops);
    ranked.sort_by(|a, b| {
        a.rect
            .y
            .total_cmp(&b.rect.y)
            .then(a.rect.x.total_cmp(&b.rect.x))
    });
    let mut steps = vec![Step::Wait { duration_ms: 1000 }];
    if ranked.is_empty() {
        // Nothing stands out: scroll through the page instead.
        return full_page_scroll(s, total);
    }
    // Each stop: reaching it (scroll + move, at most about 1.5 s) and showing it.
    let show = ((total - 1.0) / ranked.len() as f64 - 1.5).max(0.8);
    for e in ranked {
        match e.kind {
            ElementKind::Cta | ElementKind::Image => steps.push(hover(e, ms(show))),
            ElementKind::Heading | ElementKind::Form | ElementKind::Nav => {
                steps.push(Step::Move {
                    x: None,
                    y: None,
                    selector: Some(e.selector.clone()),
                    duration_ms: Some(700),
                    easing: Easing::EaseInOut,
                    optional: true,
                });
                steps.push(highlight(e, ms(show - 0.7).max(800)))
            }
        }
    }
    steps.push(back_to_top(s));
    Script(steps)
}

/// A 1.5 s scroll back to the top of the page.
fn back_to_top(s: &Survey) -> Step {
    Step::Scroll {
        selector: None,
        by_px: Some(-(s.scroll_height.clamp(0.0, 1e6) as i32)),
        duration_ms: Some(1500),
        easing: Easing::EaseInOut,
        optional: false,
    }
}

fn full_page_scroll(s: &Survey, total_s: f64) -> Script {
    let distance = (s.scroll_height - s.viewport_h).clamp(0.0, 1e6);
    let down_s = (total_s - 3.0).max(1.0) * 0.75;
    let up_s = (total_s - 3.0).max(1.0) * 0.25;
    Script(vec![
        Step::Wait { duration_ms: 1000 },
        Step::Scroll {
            selector: None,
            by_px: Some(distance.round() as i32),
            duration_ms: Some(ms(down_s)),
            easing: Easing::EaseInOut,
            optional: false,
        },
        Step::Wait { duration_ms: 1000 },
        Step::Scroll {
            selector: None,
            by_px: Some(-(distance.round() as i32)),
            duration_ms: Some(ms(up_s)),
            easing: Easing::EaseInOut,
            optional: false,
        },
        Step::Wait { duration_ms: 1000 },
    ])
}

/// The script of a template for this page.
pub fn template(t: Template, s: &Survey) -> Script {
    match t {
        Template::HeroShowcase => {
            let mut steps = vec![Step::Wait { duration_ms: 1000 }];
            let top = |k: ElementKind| {
                // Reversed: of equal scores, the first on the page wins.
                s.elements
                    .iter()
                    .rev()
                    .filter(|e| e.kind == k && e.rect.y < s.viewport_h * 1.5)
                    .max_by(|a, b| score(a, s).total_cmp(&score(b, s)))
            };
            if let Some(h) = top(ElementKind::Heading) {
                steps.push(highlight(h, 2000));
            }
            if let Some(c) = top(ElementKind::Cta) {
                steps.push(hover(c, 1500));
                steps.push(highlight(c, 1500));
            }
            steps.push(Step::Move {
                x: Some((s.viewport_w * 0.85).clamp(0.0, 100_000.0)),
                y: Some((s.viewport_h * 0.85).clamp(0.0, 100_000.0)),
                selector: None,
                duration_ms: Some(1000),
                easing: Easing::EaseInOut,
                optional: false,
            });
            steps.push(Step::Wait { duration_ms: 1000 });
            Script(steps)
        }
        Template::FeaturesTour => {
            let mut steps = vec![Step::Wait { duration_ms: 1000 }];
            let sections: Vec<&Element> = s
                .elements
                .iter()
                .filter(|e| e.kind == ElementKind::Heading && e.level >= 2)
                .take(6)
                .collect();
            if sections.is_empty() {
                return full_page_scroll(s, 12.0);
            }
            for e in sections {
                steps.push(Step::Scroll {
                    selector: Some(e.selector.clone()),
                    by_px: None,
                    duration_ms: Some(1200),
                    easing: Easing::EaseInOut,
                    optional: true,
                });
                steps.push(highlight(e, 1500));
            }
            steps.push(back_to_top(s));
            Script(steps)
        }
        Template::FullPageScroll => {
            let screens = (s.scroll_height / s.viewport_h.max(1.0)).max(1.0);
            full_page_scroll(s, (screens * 2.0).clamp(6.0, 40.0) + 3.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(kind: ElementKind, level: u8, sel: &str, y: f64, text: &str) -> Element {
        Element {
            kind,
            selector: sel.into(),
            level,
            text: text.into(),
            rect: Rect {
                x: 100.0,
                y,
                w: 300.0,
                h: 40.0,
            },
        }
    }

    fn page() -> Survey {
        Survey {
            viewport_w: 1280.0,
            viewport_h: 720.0,
            scroll_height: 4000.0,
            elements: vec![
                el(ElementKind::Nav, 0, "nav", 0.0, "Home Docs"),
                el(ElementKind::Heading, 1, "h1", 100.0, "Build faster"),
                el(ElementKind::Cta, 0, "#start", 300.0, "Get started"),
                el(ElementKind::Heading, 2, "#f1", 900.0, "Fast"),
                el(ElementKind::Heading, 2, "#f2", 1600.0, "Safe"),
                el(ElementKind::Form, 0, "form", 3000.0, ""),
                el(ElementKind::Heading, 3, "#tiny", 3500.0, "x"),
            ],
        }
    }

    #[test]
    fn scoring_puts_the_hero_first() {
        let s = page();
        let mut by: Vec<_> = s
            .elements
            .iter()
            .map(|e| (score(e, &s), e.selector.as_str()))
            .collect();
        by.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(by[0].1, "h1");
        assert_eq!(by[1].1, "#start");
        assert_eq!(by.last().unwrap().1, "#tiny");
    }

    #[test]
    fn the_hero_showcase_hovers_the_big_call_to_action() {
        let mut s = page();
        // A form's small submit button further down, with as short a label.
        let mut small = el(ElementKind::Cta, 0, "#signup", 500.0, "Sign up");
        small.rect.w = 60.0;
        small.rect.h = 20.0;
        s.elements.push(small);
        let hero = template(Template::HeroShowcase, &s);
        assert_eq!(hero.0[2].selector(), Some("#start"), "{hero:?}");
        // Of two equal ones, the first on the page.
        s.elements
            .push(el(ElementKind::Cta, 0, "#again", 600.0, "Get started"));
        let hero = template(Template::HeroShowcase, &s);
        assert_eq!(hero.0[2].selector(), Some("#start"), "{hero:?}");
    }

    #[test]
    fn auto_tour_visits_top_elements_in_page_order() {
        let s = page();
        let script = auto(&s, 20);
        let sels: Vec<_> = script.0.iter().filter_map(|s| s.selector()).collect();
        // 6 stops fit in 20 s; they come in document order.
        assert!(sels.contains(&"h1") && sels.contains(&"#start"));
        let pos = |x: &str| sels.iter().position(|s| *s == x).unwrap();
        assert!(pos("h1") < pos("#start") && pos("#start") < pos("#f1"));
        // Round trips as an ordinary script.
        Script::from_value(&serde_json::to_value(&script).unwrap()).unwrap();
    }

    #[test]
    fn templates_make_valid_scripts() {
        let s = page();
        for t in [
            Template::HeroShowcase,
            Template::FeaturesTour,
            Template::FullPageScroll,
        ] {
            let script = template(t, &s);
            Script::from_value(&serde_json::to_value(&script).unwrap()).unwrap();
            assert!(script.nominal_ms() >= 3000, "{t:?}");
        }
        let hero = template(Template::HeroShowcase, &s);
        assert_eq!(hero.0[1].selector(), Some("h1"));
        let tour = template(Template::FeaturesTour, &s);
        assert_eq!(tour.0.iter().filter(|s| s.kind() == "highlight").count(), 3);
        let empty = Survey {
            elements: vec![],
            ..page()
        };
        assert_eq!(auto(&empty, 10).0[1].kind(), "scroll");
        // Absurd pages (the survey comes from the page) still give valid scripts.
        let huge = Survey {
            viewport_w: 2.4e13,
            viewport_h: -5.0,
            scroll_height: -1e300,
            ..page()
        };
        for t in [
            Template::HeroShowcase,
            Template::FeaturesTour,
            Template::FullPageScroll,
        ] {
            Script::from_value(&serde_json::to_value(template(t, &huge)).unwrap()).unwrap();
        }
        Script::from_value(&serde_json::to_value(auto(&huge, 30)).unwrap()).unwrap();
    }
}
