//! The report page: one HTML file with its stylesheet inline, SVG charts inline, no script and
//! a Content-Security-Policy that forbids loading anything, so the file shows the same thing
//! offline, in a mail attachment or in an archive years later.
//!
//! Every string that comes from the ledger (entity ids and names, countries, VEU ids, the
//! origin, audit messages) passes through [`escape`] before it reaches the page.

use std::fmt::Write;

use super::svg::{self, Bound, RatioGroup, RatioRow, Series, UseBar};
use super::{AuditOutcome, Report};
use crate::country::Country;
use crate::date::Date;
use crate::name::Id;
use crate::rules::refusal::h100_equivalents;
use crate::view::{CountryView, EntityView};

/// How many countries the allocation chart shows (the table below it lists them all).
pub const CHART_COUNTRIES: usize = 40;
/// How many consignee-years the LPP chart shows.
pub const CHART_LPP_ROWS: usize = 20;
/// How many rows a table shows at most, so that a huge ledger still gives a readable page.
pub const TABLE_ROWS: usize = 500;

/// Escapes text for HTML and SVG, in element content and in quoted attribute values alike.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// At most `max` characters of `text`, ending in "…" when cut (raw text: escape it after).
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// "790,000,000".
pub fn grouped(value: u64) -> String {
    crate::rules::refusal::grouped(u128::from(value))
}

/// "12.34%" from basis points.
pub fn percent_bp(bp: u64) -> String {
    format!("{}.{:02}%", bp / 100, bp % 100)
}

const STYLE: &str = r#"
:root { color-scheme: light; --ink: #111827; --muted: #4b5563; --line: #d1d5db; --track: #e5e7eb;
  --blue: #2563eb; --amber: #b45309; --red: #dc2626; --green: #15803d; --violet: #7c3aed; }
* { box-sizing: border-box; }
body { margin: 0; background: #f9fafb; color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 6px; padding-top: 12px; border-top: 1px solid var(--line); }
p { margin: 6px 0; }
.meta, .caption-note, figcaption, .muted { color: var(--muted); }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px;
  overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 12px; margin: 18px 0 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card.wide { grid-column: span 2; }
.card .sub { display: block; font-size: 13px; font-weight: 400; color: var(--muted); }
.card dt { font-size: 13px; color: var(--muted); }
.card dd { margin: 0; font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.good { color: var(--green); } .bad { color: var(--red); }
figure { margin: 12px 0; }
figcaption { font-size: 14px; margin-top: 4px; }
svg.chart { width: 100%; height: auto; display: block; font-size: 13px;
  font-variant-numeric: tabular-nums; }
svg text { fill: var(--ink); }
svg .label, svg .heading, svg .name { font-weight: 600; }
svg .heading { font-size: 14px; }
svg .value { font-size: 12.5px; }
svg .note, svg .mark, svg .axis text { fill: var(--muted); font-size: 11.5px; }
svg .track { fill: var(--track); }
svg .bar .used { fill: var(--blue); }
svg .bar.warn .used { fill: var(--amber); }
svg .bar.over .used, svg .excess { fill: var(--red); }
svg .cap { stroke: var(--ink); stroke-width: 2; }
svg .ratio .used { fill: var(--green); }
svg .ratio.breaks .used { fill: var(--red); }
svg .ratio .status { font-weight: 700; fill: var(--green); }
svg .ratio.breaks .status { fill: var(--red); }
svg .ratio.idle .status { fill: var(--muted); }
svg .threshold { stroke: var(--ink); stroke-width: 2; stroke-dasharray: 3 2; }
svg .grid { stroke: var(--track); stroke-width: 1; }
svg .grid.quarter { stroke-dasharray: 2 3; }
svg .baseline { stroke: var(--muted); }
svg .unit { font-weight: 600; }
svg .line { fill: none; stroke-width: 2.5; }
svg .t1 { fill: var(--blue); stroke: var(--blue); }
svg .t2 { fill: var(--amber); stroke: var(--amber); }
svg .t3 { fill: var(--red); stroke: var(--red); }
svg .legend text { stroke: none; }
svg .series circle { stroke: #fff; stroke-width: 1; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; font-variant-numeric: tabular-nums; margin: 8px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--track); vertical-align: top; }
th { font-weight: 600; border-bottom: 1px solid var(--line); }
td.num, th.num { text-align: right; white-space: nowrap; }
details { margin: 8px 0 0; }
summary { cursor: pointer; color: var(--blue); }
dl.audit { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 12px 0; }
dl.audit dt { color: var(--muted); }
dl.audit dd { margin: 0; }
.empty { padding: 12px; border: 1px dashed var(--line); border-radius: 6px; color: var(--muted); }
footer { margin-top: 40px; font-size: 13px; color: var(--muted); }
@media print { body { background: #fff; } main { padding: 0; } details { display: none; } }
"#;

/// The whole page.
pub fn render(report: &Report) -> String {
    let view = &report.state;
    let h100_tpp = view.h100_tpp;
    let mut page = String::with_capacity(64 * 1024);
    let title = format!(
        "chipledger report: {} as of {}",
        clip(&report.origin, 80),
        view.as_of
    );
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"chipledger {}\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&title),
    );
    header(&mut page, report);
    allocations(&mut page, view, h100_tpp);
    uveu(&mut page, view, h100_tpp);
    timeline(&mut page, report, h100_tpp);
    lpp(&mut page, report, h100_tpp);
    audit(&mut page, report);
    let _ = write!(
        page,
        "<footer><p>Written by chipledger {} with ruleset {}. Every figure is derived by replaying \
         the log (framework.md); H100-equivalents are TPP ÷ {} and for display only.</p></footer>\n\
         </main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&report.ruleset),
        grouped(h100_tpp),
    );
    page
}

fn tpp_h100(tpp: u64, h100_tpp: u64) -> String {
    format!(
        "{} TPP (≈ {} H100)",
        grouped(tpp),
        grouped(h100_equivalents(tpp, h100_tpp))
    )
}

fn header(page: &mut String, report: &Report) {
    let view = &report.state;
    let installed: u64 = view
        .countries
        .values()
        .map(|country| country.installed_tpp)
        .fold(0u64, u64::saturating_add);
    let tier2_in_use = view
        .countries
        .values()
        .filter(|country| country.allocation_tpp.is_some() && country.allocation_used_tpp > 0)
        .count();
    let holders = view
        .entities
        .values()
        .filter(|entity| entity.uveu_ratios.is_some())
        .count();
    let _ = write!(
        page,
        "<header>\n<h1>chipledger report</h1>\n\
         <p class=\"meta\">Ledger <code>{}</code> · state as of <strong>{}</strong> from all {} records · \
         written {}</p>\n<dl class=\"cards\" id=\"summary\">",
        escape(&report.origin),
        view.as_of,
        grouped(view.size),
        escape(&report.generated_at.to_string()),
    );
    let verified = if report.verified() {
        "<span class=\"good\">verified</span>"
    } else {
        "<span class=\"bad\">FAILED</span>"
    };
    for (name, class, value) in [
        ("Audit", "card", verified.to_string()),
        ("Records", "card", grouped(view.size)),
        (
            "Controlled TPP installed",
            "card wide",
            format!(
                "{} <span class=\"sub\">≈ {} H100</span>",
                grouped(installed),
                grouped(h100_equivalents(installed, view.h100_tpp))
            ),
        ),
        ("Entities", "card", grouped(view.entities.len() as u64)),
        (
            "Tier 2 countries using allocation",
            "card",
            grouped(tier2_in_use as u64),
        ),
        ("Universal VEU holders", "card", grouped(holders as u64)),
    ] {
        let _ = write!(
            page,
            "<div class=\"{class}\"><dt>{}</dt><dd>{value}</dd></div>",
            escape(name)
        );
    }
    page.push_str("</dl>\n</header>\n");
}

fn empty(page: &mut String, id: &str, text: &str) {
    let _ = writeln!(
        page,
        "<figure id=\"{}\" class=\"no-data\"><p class=\"empty\">{}</p></figure>",
        escape(id),
        escape(text)
    );
}

fn allocations(page: &mut String, view: &crate::view::StateView, h100_tpp: u64) {
    let _ = write!(
        page,
        "<section id=\"allocations\" aria-labelledby=\"allocations-h\">\n\
         <h2 id=\"allocations-h\">Tier 2 country allocations</h2>\n\
         <p>Licence exports of controlled chips to a Tier 2 country count against its cumulative \
         allocation for 2025–2027 (framework.md section 7); exports under AIA, a VEU or LPP do not. \
         Each bar is a country's use; the grey track and the dark mark are its allocation as of {}.</p>\n",
        view.as_of
    );
    let mut rows: Vec<(&Country, &CountryView, u64)> = view
        .countries
        .iter()
        .filter_map(|(code, country)| {
            country
                .allocation_tpp
                .map(|allocation| (code, country, allocation))
        })
        .collect();
    rows.sort_by(|a, b| {
        b.1.allocation_used_tpp
            .cmp(&a.1.allocation_used_tpp)
            .then(a.0.cmp(b.0))
    });
    if rows.is_empty() {
        empty(
            page,
            "chart-allocations",
            &format!(
                "No Tier 2 country appears in the ledger as of {}: no allocation is in use.",
                view.as_of
            ),
        );
        page.push_str("</section>\n");
        return;
    }
    let bars: Vec<UseBar> = rows
        .iter()
        .take(CHART_COUNTRIES)
        .map(|(code, country, allocation)| {
            let used = country.allocation_used_tpp;
            UseBar {
                label: code.to_string(),
                detail: format!(
                    "{} of {} TPP ({}) · ≈ {} of {} H100",
                    grouped(used),
                    grouped(*allocation),
                    percent_bp(svg::floor_bp(used, *allocation)),
                    grouped(h100_equivalents(used, h100_tpp)),
                    grouped(h100_equivalents(*allocation, h100_tpp)),
                ),
                tooltip: format!(
                    "{code}: {} used of an allocation of {}; {} remaining",
                    tpp_h100(used, h100_tpp),
                    tpp_h100(*allocation, h100_tpp),
                    tpp_h100(allocation.saturating_sub(used), h100_tpp),
                ),
                used,
                cap: *allocation,
            }
        })
        .collect();
    let shown = bars.len();
    page.push_str("<figure id=\"chart-allocations\">\n");
    page.push_str(&svg::use_bars(
        "svg-allocations",
        &format!("Tier 2 country allocation use as of {}", view.as_of),
        "Horizontal bars: allocation used by each Tier 2 country against its allocation, in TPP.",
        &bars,
    ));
    let _ = write!(
        page,
        "\n<figcaption>Allocation use of {} Tier 2 {} as of {}, largest use first{}. \
         Amber: 90% or more used; red: over the allocation.</figcaption>\n</figure>\n",
        grouped(shown as u64),
        if shown == 1 { "country" } else { "countries" },
        view.as_of,
        if rows.len() > shown {
            format!(
                " (the {} with the largest use of {}; the table lists all)",
                shown,
                rows.len()
            )
        } else {
            String::new()
        },
    );
    page.push_str(
        "<details><summary>Table: every Tier 2 country</summary>\n<table>\n\
         <thead><tr><th scope=\"col\">country</th><th class=\"num\" scope=\"col\">allocation TPP</th>\
         <th class=\"num\" scope=\"col\">used TPP</th><th class=\"num\" scope=\"col\">remaining TPP</th>\
         <th class=\"num\" scope=\"col\">remaining H100</th><th class=\"num\" scope=\"col\">installed TPP</th></tr></thead>\n<tbody>\n",
    );
    for (code, country, allocation) in rows.iter().take(TABLE_ROWS) {
        let remaining = allocation.saturating_sub(country.allocation_used_tpp);
        let _ = writeln!(
            page,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(code.as_str()),
            grouped(*allocation),
            grouped(country.allocation_used_tpp),
            grouped(remaining),
            grouped(h100_equivalents(remaining, h100_tpp)),
            grouped(country.installed_tpp),
        );
    }
    page.push_str("</tbody>\n</table>\n</details>\n</section>\n");
}

fn uveu(page: &mut String, view: &crate::view::StateView, h100_tpp: u64) {
    page.push_str(
        "<section id=\"uveu\" aria-labelledby=\"uveu-h\">\n\
         <h2 id=\"uveu-h\">Universal VEU ratios</h2>\n\
         <p>A Universal VEU holder must keep at least 75% of its controlled TPP in Tier 1 \
         countries, at most 7% in any single other country and, if headquartered in the US, at \
         least 50% in the US (framework.md section 8). “Room” is how much more TPP could arrive \
         outside Tier 1, in that country, or outside the US before the ratio would break.</p>\n",
    );
    let groups: Vec<RatioGroup> = view
        .entities
        .iter()
        .filter_map(|(id, entity)| {
            entity
                .uveu_ratios
                .as_ref()
                .map(|ratios| ratio_group(view, id, entity, ratios, h100_tpp))
        })
        .collect();
    if groups.is_empty() {
        empty(
            page,
            "chart-uveu",
            &format!(
                "No entity holds an active Universal VEU as of {}.",
                view.as_of
            ),
        );
    } else {
        page.push_str("<figure id=\"chart-uveu\">\n");
        page.push_str(&svg::ratio_bars(
            "svg-uveu",
            &format!("Universal VEU ratios as of {}", view.as_of),
            "For each Universal VEU holder, bars from 0 to 100% for its Tier 1 share, its largest \
             share in one non-Tier-1 country and (US holders) its US share, with the threshold marked.",
            &groups,
        ));
        let _ = write!(
            page,
            "\n<figcaption>The ratios of {} Universal VEU {} as of {}; the dashed mark is the \
             threshold. Green: the ratio holds; red: it does not.</figcaption>\n</figure>\n",
            groups.len(),
            if groups.len() == 1 {
                "holder"
            } else {
                "holders"
            },
            view.as_of
        );
    }
    page.push_str("</section>\n");
}

fn room(margin_tpp: i64, h100_tpp: u64, place: &str) -> String {
    if margin_tpp < 0 {
        let over = margin_tpp.unsigned_abs();
        format!(
            "over by {} TPP (≈ {} H100)",
            grouped(over),
            grouped(h100_equivalents(over, h100_tpp))
        )
    } else if margin_tpp == i64::MAX {
        "no limit applies".to_string()
    } else {
        let room = margin_tpp.unsigned_abs();
        format!(
            "room: {} TPP (≈ {} H100) {place}",
            grouped(room),
            grouped(h100_equivalents(room, h100_tpp))
        )
    }
}

fn ratio_group(
    view: &crate::view::StateView,
    id: &Id,
    entity: &EntityView,
    ratios: &crate::view::RatioView,
    h100_tpp: u64,
) -> RatioGroup {
    let veus: Vec<&str> = entity
        .veus
        .iter()
        .filter(|veu| {
            view.veus
                .get(*veu)
                .is_some_and(|veu| veu.scope == "universal")
        })
        .map(Id::as_str)
        .collect();
    // With no controlled TPP the ratios do not apply (framework.md section 8: "when T > 0").
    let applies = entity.total_tpp > 0;
    let idle = |threshold: &str| format!("must be {threshold} once it holds controlled TPP");
    let mut rows = vec![RatioRow {
        label: "Tier 1 share".into(),
        share_bp: ratios.tier1_share_bp,
        threshold_bp: ratios.tier1_share_min_bp,
        bound: Bound::AtLeast,
        holds: ratios.tier1_margin_tpp >= 0,
        applies,
        note: if applies {
            room(ratios.tier1_margin_tpp, h100_tpp, "outside Tier 1")
        } else {
            idle(&format!("≥ {}", percent_bp(ratios.tier1_share_min_bp)))
        },
    }];
    rows.push(match ratios.largest_other_country {
        Some(country) => RatioRow {
            label: format!("Largest other country ({country})"),
            share_bp: ratios.largest_other_share_bp,
            threshold_bp: ratios.country_share_max_bp,
            bound: Bound::AtMost,
            holds: ratios.country_margin_tpp >= 0,
            applies,
            note: room(
                ratios.country_margin_tpp,
                h100_tpp,
                &format!("in {country}"),
            ),
        },
        None => RatioRow {
            label: "Largest other country".into(),
            share_bp: 0,
            threshold_bp: ratios.country_share_max_bp,
            bound: Bound::AtMost,
            holds: true,
            applies,
            note: if applies {
                "all its controlled TPP is in Tier 1".into()
            } else {
                idle(&format!("≤ {}", percent_bp(ratios.country_share_max_bp)))
            },
        },
    });
    if let (Some(share), Some(minimum), Some(margin)) = (
        ratios.home_share_bp,
        ratios.home_share_min_bp,
        ratios.home_margin_tpp,
    ) {
        rows.push(RatioRow {
            label: format!("{} share", entity.hq),
            share_bp: share,
            threshold_bp: minimum,
            bound: Bound::AtLeast,
            holds: margin >= 0,
            applies,
            note: if applies {
                room(margin, h100_tpp, &format!("outside {}", entity.hq))
            } else {
                idle(&format!("≥ {}", percent_bp(minimum)))
            },
        });
    }
    RatioGroup {
        heading: format!(
            "{id} — {} (HQ {}) · {} TPP controlled · {}",
            clip(&entity.name, 40),
            entity.hq,
            grouped(entity.total_tpp),
            veus.join(", ")
        ),
        tooltip: format!(
            "{id} ({}), HQ {}, holds {}; Universal VEU {}",
            entity.name,
            entity.hq,
            tpp_h100(entity.total_tpp, h100_tpp),
            veus.join(", ")
        ),
        rows,
    }
}

fn timeline(page: &mut String, report: &Report, h100_tpp: u64) {
    let view = &report.state;
    page.push_str(
        "<section id=\"timeline\" aria-labelledby=\"timeline-h\">\n\
         <h2 id=\"timeline-h\">Installed controlled TPP by tier over time</h2>\n\
         <p>Controlled TPP installed in the countries of each tier (the tier a country had on each \
         date), as the ledger's state on that date gives it: shipments, transfers and inventory \
         declarations in, decommissions and voided records out, late records in their place.</p>\n",
    );
    let points = &report.timeline;
    if points.len() < 2 {
        empty(
            page,
            "chart-timeline",
            &format!(
                "No controlled chips are recorded as installed on or before {}.",
                view.as_of
            ),
        );
        page.push_str("</section>\n");
        return;
    }
    let dates: Vec<Date> = points.iter().map(|point| point.date).collect();
    let series: Vec<Series> = [("Tier 1", "t1"), ("Tier 2", "t2"), ("Tier 3", "t3")]
        .iter()
        .enumerate()
        .map(|(index, (name, class))| Series {
            name: name.to_string(),
            class,
            values_tpp: points
                .iter()
                .map(|point| point.by_tier_tpp[index])
                .collect(),
        })
        .collect();
    page.push_str("<figure id=\"chart-timeline\">\n");
    page.push_str(&svg::time_lines(
        "svg-timeline",
        &format!(
            "Installed controlled TPP by tier, {} to {}",
            dates[0],
            dates[dates.len() - 1]
        ),
        "Three lines over time: the controlled TPP installed in Tier 1, Tier 2 and Tier 3 countries.",
        &dates,
        day_number,
        &series,
        h100_tpp,
    ));
    let _ = write!(
        page,
        "\n<figcaption>Installed controlled TPP by tier at {} dates from {} to {} (month ends, \
         then {}); each dot is the state as of that date.</figcaption>\n</figure>\n",
        dates.len(),
        dates[0],
        view.as_of,
        view.as_of
    );
    page.push_str(
        "<details><summary>Table: the sampled dates</summary>\n<table>\n<thead><tr><th scope=\"col\">date</th>\
         <th class=\"num\" scope=\"col\">Tier 1 TPP</th><th class=\"num\" scope=\"col\">Tier 2 TPP</th>\
         <th class=\"num\" scope=\"col\">Tier 3 TPP</th></tr></thead>\n<tbody>\n",
    );
    for point in points {
        let _ = writeln!(
            page,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            point.date,
            grouped(point.by_tier_tpp[0]),
            grouped(point.by_tier_tpp[1]),
            grouped(point.by_tier_tpp[2]),
        );
    }
    page.push_str("</tbody>\n</table>\n</details>\n</section>\n");
}

/// Days since 1900-01-01: the time chart's horizontal position.
fn day_number(date: Date) -> i64 {
    let origin = jiff::civil::date(1900, 1, 1);
    origin
        .until(super::civil(date))
        .map(|span| i64::from(span.get_days()))
        .unwrap_or(0)
}

fn lpp(page: &mut String, report: &Report, h100_tpp: u64) {
    let view = &report.state;
    let limit = report.lpp_limit_tpp;
    let _ = write!(
        page,
        "<section id=\"lpp\" aria-labelledby=\"lpp-h\">\n\
         <h2 id=\"lpp-h\">Low Processing Performance (LPP) use</h2>\n\
         <p>Exports under the LPP exception count per ultimate consignee and calendar year, up to \
         {} (framework.md section 7).</p>\n",
        tpp_h100(limit, h100_tpp)
    );
    let mut rows: Vec<(&Id, &EntityView, &u16, u64)> = view
        .entities
        .iter()
        .flat_map(|(id, entity)| {
            entity
                .lpp_used_tpp
                .iter()
                .filter(|(_, used)| **used > 0)
                .map(move |(year, used)| (id, entity, year, *used))
        })
        .collect();
    rows.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(b.0)).then(a.2.cmp(b.2)));
    if rows.is_empty() {
        empty(
            page,
            "chart-lpp",
            &format!(
                "No consignee received chips under LPP as of {}.",
                view.as_of
            ),
        );
        page.push_str("</section>\n");
        return;
    }
    let bars: Vec<UseBar> = rows
        .iter()
        .take(CHART_LPP_ROWS)
        .map(|(id, entity, year, used)| UseBar {
            label: format!("{year} · {id} — {}", clip(&entity.name, 28)),
            detail: format!(
                "{} of {} TPP ({}) · ≈ {} H100",
                grouped(*used),
                grouped(limit),
                percent_bp(svg::floor_bp(*used, limit)),
                grouped(h100_equivalents(*used, h100_tpp)),
            ),
            tooltip: format!(
                "{id} ({}) in {year}: {} of the {} limit",
                entity.name,
                tpp_h100(*used, h100_tpp),
                tpp_h100(limit, h100_tpp)
            ),
            used: *used,
            cap: limit,
        })
        .collect();
    page.push_str("<figure id=\"chart-lpp\">\n");
    page.push_str(&svg::use_bars(
        "svg-lpp",
        &format!("LPP use per consignee and year as of {}", view.as_of),
        "Horizontal bars: each consignee's LPP receipts in a calendar year against the annual limit.",
        &bars,
    ));
    let _ = write!(
        page,
        "\n<figcaption>The {} largest LPP uses (consignee and year) of {}, as of {}, against the \
         annual limit of {} TPP.</figcaption>\n</figure>\n",
        bars.len(),
        rows.len(),
        view.as_of,
        grouped(limit)
    );
    page.push_str(
        "<details><summary>Table: every consignee and year</summary>\n<table>\n<thead><tr>\
         <th scope=\"col\">consignee</th><th scope=\"col\">name</th><th scope=\"col\">year</th>\
         <th class=\"num\" scope=\"col\">used TPP</th><th class=\"num\" scope=\"col\">H100</th>\
         <th class=\"num\" scope=\"col\">of the limit</th></tr></thead>\n<tbody>\n",
    );
    for (id, entity, year, used) in rows.iter().take(TABLE_ROWS) {
        let _ = writeln!(
            page,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(id.as_str()),
            escape(&entity.name),
            year,
            grouped(*used),
            grouped(h100_equivalents(*used, h100_tpp)),
            percent_bp(svg::floor_bp(*used, limit)),
        );
    }
    if rows.len() > TABLE_ROWS {
        let _ = writeln!(
            page,
            "<tr><td colspan=\"6\" class=\"muted\">… and {} more</td></tr>",
            grouped((rows.len() - TABLE_ROWS) as u64)
        );
    }
    page.push_str("</tbody>\n</table>\n</details>\n</section>\n");
}

fn audit(page: &mut String, report: &Report) {
    let view = &report.state;
    page.push_str(
        "<section id=\"audit-summary\" aria-labelledby=\"audit-h\">\n\
         <h2 id=\"audit-h\">Audit</h2>\n\
         <p>The full <code>chipledger verify</code> ran before this page was written: every \
         record's canonical bytes, the hash chain, the per-subject back-links, the Merkle root, a \
         replay of every rule, and the stored tiles, head, indexes and snapshots.</p>\n<dl class=\"audit\">\n",
    );
    let mut item = |name: &str, value: String| {
        let _ = writeln!(page, "<dt>{}</dt><dd>{value}</dd>", escape(name));
    };
    match &report.audit {
        AuditOutcome::Verified(audit) => {
            item(
                "Result",
                "<strong class=\"good\" id=\"audit-result\">verified</strong>".into(),
            );
            item("Records", grouped(audit.records));
            item(
                "Merkle root",
                format!("<code>{}</code>", escape(&audit.root)),
            );
            item("Late records", grouped(audit.late_records));
            item("Voids", grouped(audit.voids));
            item("Took", format!("{:.2} s", audit.seconds));
        }
        AuditOutcome::Failed(message) => {
            item(
                "Result",
                "<strong class=\"bad\" id=\"audit-result\">verification FAILED</strong>".into(),
            );
            item("First problem", escape(message));
            item(
                "Records (head)",
                format!(
                    "{} — the figures on this page come from records that did not verify",
                    grouped(view.size)
                ),
            );
        }
    }
    match &report.checkpoint {
        None => item("Last checkpoint", "none signed yet".into()),
        Some(checkpoint) => {
            let what = match (checkpoint.size, &checkpoint.root) {
                (Some(size), Some(root)) => format!(
                    "{} records, root <code>{}</code>",
                    grouped(size),
                    escape(root)
                ),
                _ => "unreadable".to_string(),
            };
            let status = match &checkpoint.problem {
                None => "<span class=\"good\">signature valid; the log still has its root</span>"
                    .to_string(),
                Some(problem) => format!("<span class=\"bad\">{}</span>", escape(problem)),
            };
            item("Last checkpoint", format!("{what}; {status}"));
        }
    }
    item(
        "State shown",
        format!(
            "as of {}, from all {} records (root <code>{}</code>)",
            view.as_of,
            grouped(view.size),
            escape(&view.root)
        ),
    );
    page.push_str("</dl>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(escape("a & \"b\" 'c'"), "a &amp; &quot;b&quot; &#39;c&#39;");
        assert_eq!(escape("Société"), "Société");
    }

    #[test]
    fn clips_on_characters() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("éééé", 4), "éééé");
        assert_eq!(clip("ééééé", 3), "éé…");
    }

    #[test]
    fn percents() {
        assert_eq!(percent_bp(7_500), "75.00%");
        assert_eq!(percent_bp(705), "7.05%");
    }
}
