//! The report's charts as inline SVG. Geometry is `f64` (display only); every figure a chart
//! prints comes in as an exact integer and is formatted with thousands separators. Every text
//! that can come from the ledger goes through [`escape`], in `<text>` and `<title>` alike.

use std::fmt::Write;

use super::html::{clip, escape, grouped, percent_bp};
use crate::date::Date;

/// The width of every chart's coordinate system; the page scales it to the column width.
const WIDTH: f64 = 960.0;

/// Opens an `<svg>` with an accessible name (`<title>`) and description (`<desc>`).
fn open(out: &mut String, id: &str, height: f64, title: &str, desc: &str) {
    let _ = write!(
        out,
        "<svg id=\"{id}\" class=\"chart\" viewBox=\"0 0 {WIDTH} {height:.0}\" width=\"{WIDTH}\" \
         height=\"{height:.0}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" \
         xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        escape(title),
        escape(desc),
        id = escape(id),
    );
}

/// One bar of a "used against a cap" chart. `label`, `detail` and `tooltip` are raw text.
pub struct UseBar {
    pub label: String,
    pub detail: String,
    pub tooltip: String,
    pub used: u64,
    pub cap: u64,
}

/// `part / whole` in basis points, rounded down, so that a use shows 100.00% only when the cap
/// is reached (rounding to the nearest would show 1,579,999,289 of 1,580,000,000 as full).
pub fn floor_bp(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return if part == 0 { 0 } else { u64::MAX };
    }
    u64::try_from(u128::from(part) * 10_000 / u128::from(whole)).unwrap_or(u64::MAX)
}

/// The share of the cap at which a bar turns amber: close to the limit.
const WARN_BP: u64 = 9_000;

/// Horizontal bars of use against a cap, all on one scale (the full width is the largest cap
/// or use), so that both the caps and the uses compare across rows. The cap is the grey track
/// and a dark mark; use beyond the cap is drawn red past the mark.
pub fn use_bars(id: &str, title: &str, desc: &str, rows: &[UseBar]) -> String {
    const ROW: f64 = 46.0;
    const TOP: f64 = 6.0;
    let height = TOP * 2.0 + ROW * rows.len() as f64;
    let scale_max = rows
        .iter()
        .map(|row| row.cap.max(row.used))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = |value: u64| (value as f64 / scale_max * WIDTH).min(WIDTH);
    let mut out = String::new();
    open(&mut out, id, height, title, desc);
    for (index, row) in rows.iter().enumerate() {
        let top = TOP + ROW * index as f64;
        let share_bp = floor_bp(row.used, row.cap);
        let state = if row.used > row.cap {
            "over"
        } else if share_bp >= WARN_BP {
            "warn"
        } else {
            "ok"
        };
        let (cap_x, used_x) = (x(row.cap), x(row.used.min(row.cap)));
        let _ = write!(
            out,
            "<g class=\"bar {state}\"><title>{}</title>\
             <text class=\"label\" x=\"0\" y=\"{:.1}\">{}</text>\
             <text class=\"value\" x=\"{WIDTH}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"track\" x=\"0\" y=\"{:.1}\" width=\"{cap_x:.1}\" height=\"14\" rx=\"2\"/>\
             <rect class=\"used\" x=\"0\" y=\"{:.1}\" width=\"{used_x:.1}\" height=\"14\" rx=\"2\"/>",
            escape(&row.tooltip),
            top + 16.0,
            escape(&clip(&row.label, 48)),
            top + 16.0,
            escape(&row.detail),
            top + 24.0,
            top + 24.0,
        );
        if row.used > row.cap {
            let over_x = x(row.used);
            let _ = write!(
                out,
                "<rect class=\"excess\" x=\"{cap_x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\"/>",
                top + 24.0,
                (over_x - cap_x).max(1.0),
            );
        }
        let _ = write!(
            out,
            "<line class=\"cap\" x1=\"{cap_x:.1}\" x2=\"{cap_x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/></g>",
            top + 21.0,
            top + 41.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// Whether a ratio has a floor or a ceiling.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Bound {
    AtLeast,
    AtMost,
}

/// One ratio of a Universal VEU holder. `label` and `note` are raw text.
pub struct RatioRow {
    pub label: String,
    pub share_bp: u64,
    pub threshold_bp: u64,
    pub bound: Bound,
    pub holds: bool,
    /// False while the holder has no controlled TPP: the ratios hold only when T > 0
    /// (framework.md section 8), and a share of nothing is not 0%.
    pub applies: bool,
    pub note: String,
}

/// A holder and its ratios. `heading` is raw text.
pub struct RatioGroup {
    pub heading: String,
    pub tooltip: String,
    pub rows: Vec<RatioRow>,
}

/// Each holder's ratios as 0–100% bars with the threshold marked: green while the ratio holds,
/// red when it does not.
pub fn ratio_bars(id: &str, title: &str, desc: &str, groups: &[RatioGroup]) -> String {
    const HEAD: f64 = 30.0;
    const ROW: f64 = 40.0;
    const GAP: f64 = 14.0;
    const TRACK_X: f64 = 210.0;
    const TRACK_W: f64 = 340.0;
    let height: f64 = 4.0
        + groups
            .iter()
            .map(|group| HEAD + ROW * group.rows.len() as f64 + GAP)
            .sum::<f64>();
    let mut out = String::new();
    open(&mut out, id, height, title, desc);
    let mut top = 4.0;
    for group in groups {
        let _ = write!(
            out,
            "<g class=\"holder\"><title>{}</title><text class=\"heading\" x=\"0\" y=\"{:.1}\">{}</text>",
            escape(&group.tooltip),
            top + 18.0,
            escape(&clip(&group.heading, 110)),
        );
        top += HEAD;
        for row in &group.rows {
            let share = (row.share_bp.min(10_000) as f64) / 10_000.0;
            let threshold = (row.threshold_bp.min(10_000) as f64) / 10_000.0;
            let fill_w = (share * TRACK_W).max(if row.share_bp > 0 { 1.0 } else { 0.0 });
            let mark_x = TRACK_X + threshold * TRACK_W;
            let sign = match row.bound {
                Bound::AtLeast => "≥",
                Bound::AtMost => "≤",
            };
            let limit = match row.bound {
                Bound::AtLeast => "min",
                Bound::AtMost => "max",
            };
            let status = match (row.applies, row.holds) {
                (false, _) => "idle",
                (true, true) => "holds",
                (true, false) => "breaks",
            };
            let (mark, value) = if row.applies {
                (
                    if row.holds { "✓" } else { "✗" },
                    format!(
                        "{} {sign} {}",
                        percent_bp(row.share_bp),
                        percent_bp(row.threshold_bp)
                    ),
                )
            } else {
                ("–", "not applicable: no controlled TPP".to_string())
            };
            let _ = write!(
                out,
                "<g class=\"ratio {status}\"><title>{label}: {value}; {note}</title>\
                 <text class=\"label\" x=\"0\" y=\"{:.1}\">{label}</text>\
                 <rect class=\"track\" x=\"{TRACK_X}\" y=\"{:.1}\" width=\"{TRACK_W}\" height=\"14\" rx=\"2\"/>\
                 <rect class=\"used\" x=\"{TRACK_X}\" y=\"{:.1}\" width=\"{fill_w:.1}\" height=\"14\" rx=\"2\"/>\
                 <line class=\"threshold\" x1=\"{mark_x:.1}\" x2=\"{mark_x:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
                 <text class=\"mark\" x=\"{mark_x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{limit} {threshold}</text>\
                 <text class=\"value\" x=\"{:.1}\" y=\"{:.1}\"><tspan class=\"status\">{mark}</tspan> {value}</text>\
                 <text class=\"note\" x=\"{:.1}\" y=\"{:.1}\">{note}</text></g>",
                top + 20.0,
                top + 9.0,
                top + 9.0,
                top + 5.0,
                top + 27.0,
                top + 36.0,
                TRACK_X + TRACK_W + 16.0,
                top + 14.0,
                TRACK_X + TRACK_W + 16.0,
                top + 30.0,
                label = escape(&clip(&row.label, 34)),
                threshold = percent_bp(row.threshold_bp),
                note = escape(&row.note),
            );
            top += ROW;
        }
        out.push_str("</g>");
        top += GAP;
    }
    out.push_str("</svg>");
    out
}

/// One line of the time chart: `class` picks its colour in the page's stylesheet.
pub struct Series {
    pub name: String,
    pub class: &'static str,
    pub values_tpp: Vec<u64>,
}

/// A "nice" step for about `count` ticks up to `max`: 1, 2, 2.5 or 5 times a power of ten.
fn nice_step(max: f64, count: f64) -> f64 {
    let raw = (max / count).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 2.5 {
        2.5
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// An axis label: "1.5 tn", "2.5 bn", "750 M", "40 k".
pub fn compact(value: f64) -> String {
    let (scaled, unit) = if value >= 1e12 {
        (value / 1e12, " tn")
    } else if value >= 1e9 {
        (value / 1e9, " bn")
    } else if value >= 1e6 {
        (value / 1e6, " M")
    } else if value >= 1e3 {
        (value / 1e3, " k")
    } else {
        (value, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

/// Lines (not stacked, so every line reads against the axis) of values over dates, with a dot and a tooltip at each sampled date. `day` gives a date's
/// position in days.
pub fn time_lines(
    id: &str,
    title: &str,
    desc: &str,
    dates: &[Date],
    day: impl Fn(Date) -> i64,
    series: &[Series],
    h100_tpp: u64,
) -> String {
    const HEIGHT: f64 = 390.0;
    const LEFT: f64 = 86.0;
    const RIGHT: f64 = WIDTH - 24.0;
    const TOP: f64 = 58.0;
    const BOTTOM: f64 = 340.0;
    let mut out = String::new();
    open(&mut out, id, HEIGHT, title, desc);
    let (Some(first), Some(last)) = (dates.first(), dates.last()) else {
        out.push_str("</svg>");
        return out;
    };
    let (first_day, last_day) = (day(*first), day(*last));
    let span = (last_day - first_day).max(1) as f64;
    let x = |date: Date| LEFT + (day(date) - first_day) as f64 / span * (RIGHT - LEFT);
    let max = series
        .iter()
        .flat_map(|series| series.values_tpp.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = nice_step(max, 5.0);
    let top_value = (max / step).ceil() * step;
    let y = |value: f64| BOTTOM - value / top_value * (BOTTOM - TOP);

    // Legend: each series with its value on the last date.
    for (index, line) in series.iter().enumerate() {
        let left = LEFT + 290.0 * index as f64;
        let latest = line.values_tpp.last().copied().unwrap_or(0);
        let _ = write!(
            out,
            "<g class=\"legend {class}\"><rect x=\"{left:.1}\" y=\"12\" width=\"14\" height=\"14\" rx=\"2\"/>\
             <text x=\"{:.1}\" y=\"24\"><tspan class=\"name\">{}</tspan> {} TPP</text>\
             <text class=\"note\" x=\"{:.1}\" y=\"40\">≈ {} H100 on {}</text></g>",
            left + 20.0,
            escape(&line.name),
            grouped(latest),
            left + 20.0,
            grouped(crate::rules::refusal::h100_equivalents(latest, h100_tpp)),
            last,
            class = line.class,
        );
    }

    // Horizontal grid and value labels.
    out.push_str("<g class=\"axis y\">");
    let ticks = (top_value / step).round() as u64;
    for tick in 0..=ticks {
        let value = step * tick as f64;
        let tick_y = y(value);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{tick_y:.1}\" y2=\"{tick_y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 8.0,
            tick_y + 4.0,
            compact(value),
        );
    }
    let _ = write!(
        out,
        "<text class=\"unit\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">TPP</text></g>",
        LEFT - 8.0,
        TOP - 16.0
    );

    // Vertical grid: January of each year (every fifth year over long spans), and the
    // quarters too when the span is short.
    out.push_str("<g class=\"axis x\">");
    let (first_year, last_year) = (first.year(), last.year());
    let years = u32::from(last_year - first_year) + 1;
    let year_step = if years > 20 {
        5
    } else if years > 10 {
        2
    } else {
        1
    };
    let quarters = years <= 4;
    for year in first_year..=last_year {
        let months: &[(u8, &str)] = if quarters {
            &[(1, ""), (4, "Apr"), (7, "Jul"), (10, "Oct")]
        } else {
            &[(1, "")]
        };
        for (month, name) in months {
            if *month == 1 && u32::from(year - first_year) % year_step != 0 {
                continue;
            }
            let Ok(tick) = Date::new(year, *month, 1) else {
                continue;
            };
            if tick < *first || tick > *last {
                continue;
            }
            let tick_x = x(tick);
            let (class, label) = if name.is_empty() {
                ("year", year.to_string())
            } else {
                ("quarter", name.to_string())
            };
            let _ = write!(
                out,
                "<line class=\"grid {class}\" x1=\"{tick_x:.1}\" x2=\"{tick_x:.1}\" y1=\"{TOP}\" y2=\"{BOTTOM}\"/>\
                 <text class=\"{class}\" x=\"{tick_x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
                BOTTOM + 20.0,
            );
        }
    }
    let _ = write!(
        out,
        "<line class=\"baseline\" x1=\"{LEFT}\" x2=\"{RIGHT}\" y1=\"{BOTTOM}\" y2=\"{BOTTOM}\"/></g>"
    );

    // Lines only: areas under lines that are not stacked would mix their colours.
    for line in series {
        let path: Vec<String> = dates
            .iter()
            .zip(&line.values_tpp)
            .map(|(date, value)| format!("{:.1},{:.1}", x(*date), y(*value as f64)))
            .collect();
        let _ = write!(
            out,
            "<g class=\"series {}\"><polyline class=\"line\" points=\"{}\"/>",
            line.class,
            path.join(" ")
        );
        for (date, value) in dates.iter().zip(&line.values_tpp) {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{} on {date}: {} TPP (≈ {} H100)</title></circle>",
                x(*date),
                y(*value as f64),
                escape(&line.name),
                grouped(*value),
                grouped(crate::rules::refusal::h100_equivalents(*value, h100_tpp)),
            );
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_labels() {
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(2_500_000_000.0), "2.5 bn");
        assert_eq!(compact(750_000_000.0), "750 M");
        assert_eq!(compact(40_000.0), "40 k");
        assert_eq!(compact(1_500_000_000_000.0), "1.5 tn");
    }

    #[test]
    fn use_shares_round_down() {
        assert_eq!(floor_bp(1_579_999_289, 1_580_000_000), 9_999);
        assert_eq!(floor_bp(790, 790), 10_000);
        assert_eq!(floor_bp(0, 0), 0);
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10_000_000_000.0, 5.0), 2_000_000_000.0);
        assert_eq!(nice_step(12_000.0, 5.0), 2_500.0);
        assert_eq!(nice_step(1.0, 5.0), 1.0);
    }

    #[test]
    fn labels_are_escaped_in_text_and_titles() {
        let svg = use_bars(
            "c",
            "t<",
            "d&",
            &[UseBar {
                label: "<b>x</b>".into(),
                detail: "\"q\"".into(),
                tooltip: "<i>".into(),
                used: 5,
                cap: 10,
            }],
        );
        assert!(!svg.contains("<b>") && !svg.contains("<i>") && !svg.contains("\"q\""));
        assert!(svg.contains("&lt;b&gt;x&lt;/b&gt;") && svg.contains("t&lt;"));
    }

    #[test]
    fn use_beyond_the_cap_is_marked() {
        let svg = use_bars(
            "c",
            "t",
            "d",
            &[UseBar {
                label: "MY".into(),
                detail: String::new(),
                tooltip: String::new(),
                used: 12,
                cap: 10,
            }],
        );
        assert!(svg.contains("class=\"bar over\"") && svg.contains("class=\"excess\""));
    }
}
