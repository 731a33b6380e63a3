//! The SVG charts of `pciplan whatif` (plotters), drawn from the studies the library returns.
//!
//! Drawn for a reader. Each measure of a line chart gets its own panel, with its own y axis
//! and caption: measures often coincide (every controller pciplan adds takes a bus number, so
//! `cost` and `bus numbers` are equal on most fleets), and on one shared axis the line drawn
//! last hides the other. Integer categories (sweep values, devices added, histogram bins) are
//! segments of the x axis, each drawn at its centre, under its tick label.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;

use pciplan::whatif::{AdoptionStudy, MaxReport, PolicyDelta, SweepStudy};
use plotters::coord::Shift;
use plotters::prelude::*;

/// A chart written, or why not (plotters reports its errors as boxed errors).
pub type ChartResult = Result<(), Box<dyn Error>>;

/// The root drawing area of an SVG chart.
type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Width of every chart.
const WIDTH: u32 = 800;
/// Height of the title above the panels.
const TITLE_HEIGHT: u32 = 40;
/// Height of one panel of a line chart.
const PANEL_HEIGHT: u32 = 190;
/// Up to this many points, each also gets a marker (one point alone draws no line).
const MARKERS_UP_TO: usize = 60;
/// Dark enough green to read on white (plotters' GREEN is #00FF00).
const DARK_GREEN: RGBColor = RGBColor(0, 140, 0);
/// A fourth colour, apart from the black of the axes.
const DARK_ORANGE: RGBColor = RGBColor(200, 100, 0);

/// One measure of a line chart: drawn in its own panel.
struct Measure {
    /// Caption of the panel: the measure and its unit.
    caption: String,
    color: RGBColor,
    /// Value at x positions 0, 1, ...
    values: Vec<u64>,
}

/// A line chart of several measures over the same x positions, one panel each, stacked.
struct Panels<'a> {
    title: String,
    /// What the x positions are (written under the bottom panel).
    x_desc: &'a str,
    /// The tick label of x position `i`.
    x_label: &'a dyn Fn(u32) -> String,
    /// At most this many tick labels on the x axis.
    x_labels: usize,
    measures: Vec<Measure>,
}

/// Draws a chart into SVG text.
fn render(
    size: (u32, u32),
    draw: impl FnOnce(&Root<'_>) -> ChartResult,
) -> Result<String, Box<dyn Error>> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(svg)
}

/// Writes a chart's SVG text to `path`.
fn write(path: &Path, svg: Result<String, Box<dyn Error>>) -> ChartResult {
    std::fs::write(path, svg?)?;
    Ok(())
}

/// The SVG text of a stacked line chart.
fn panels_svg(p: &Panels) -> Result<String, Box<dyn Error>> {
    let height = TITLE_HEIGHT + PANEL_HEIGHT * p.measures.len().max(1) as u32;
    render((WIDTH, height), |root| draw_panels(root, p))
}

fn draw_panels(root: &Root<'_>, p: &Panels) -> ChartResult {
    let area = root.titled(&p.title, ("sans-serif", 20))?;
    let n = p.measures.iter().map(|m| m.values.len()).max().unwrap_or(0);
    let last_x = n.saturating_sub(1) as u32;
    let parts = area.split_evenly((p.measures.len(), 1));
    let label = |v: &SegmentValue<u32>| match v {
        SegmentValue::Exact(i) | SegmentValue::CenterOf(i) => (p.x_label)(*i),
        SegmentValue::Last => String::new(),
    };
    for (k, (part, m)) in parts.iter().zip(&p.measures).enumerate() {
        let bottom = k + 1 == p.measures.len();
        let top = m.values.iter().copied().max().unwrap_or(0);
        // Headroom, so the highest point is not drawn on the frame.
        let ymax = top + top / 8 + 1;
        let mut chart = ChartBuilder::on(part)
            .caption(&m.caption, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(if bottom { 40 } else { 24 })
            .y_label_area_size(60)
            .build_cartesian_2d((0..last_x).into_segmented(), 0u64..ymax)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_labels(p.x_labels)
            .x_label_formatter(&label)
            .y_labels(5)
            .light_line_style(TRANSPARENT);
        if bottom {
            mesh.x_desc(p.x_desc);
        }
        mesh.draw()?;
        let pts: Vec<(SegmentValue<u32>, u64)> = m
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| (SegmentValue::CenterOf(i as u32), v))
            .collect();
        if pts.len() <= MARKERS_UP_TO {
            chart.draw_series(
                pts.iter()
                    .map(|p| Circle::new(p.clone(), 3, m.color.filled())),
            )?;
        }
        chart.draw_series(LineSeries::new(pts, m.color.stroke_width(2)))?;
    }
    Ok(())
}

/// The panels of a `--max` study: cost and the two scarce resources after each added device.
fn max_panels<'a>(r: &MaxReport, x_label: &'a dyn Fn(u32) -> String) -> Panels<'a> {
    let usage = || std::iter::once(r.base).chain(r.steps.iter().map(|s| s.usage));
    Panels {
        title: format!(
            "{} more {} (hotplug {})",
            r.max,
            r.model,
            r.hotplug.as_str()
        ),
        x_desc: "devices added",
        x_label,
        x_labels: 10,
        measures: vec![
            Measure {
                caption: "controllers added (cost)".into(),
                color: BLUE,
                values: usage().map(|u| u64::from(u.cost)).collect(),
            },
            Measure {
                caption: format!("{} slots used", r.root_bus),
                color: RED,
                values: usage().map(|u| u64::from(u.root_slots)).collect(),
            },
            Measure {
                caption: "bus numbers used".into(),
                color: DARK_GREEN,
                values: usage().map(|u| u64::from(u.bus_numbers)).collect(),
            },
        ],
    }
}

/// The SVG text of a `--max` chart.
fn max_svg(r: &MaxReport) -> Result<String, Box<dyn Error>> {
    panels_svg(&max_panels(r, &|i| i.to_string()))
}

/// Cost, `pcie.0` slots and bus numbers after each added device, one panel each.
pub fn max(r: &MaxReport, path: &Path) -> ChartResult {
    write(path, max_svg(r))
}

/// The panels of a sweep: the three totals, and the guests left out of them.
fn sweep_panels<'a>(
    field: &'a str,
    s: &SweepStudy,
    x_label: &'a dyn Fn(u32) -> String,
) -> Panels<'a> {
    let measure = |caption: &str, color, get: fn(&pciplan::whatif::SweepRow) -> u64| Measure {
        caption: caption.to_string(),
        color,
        values: s.rows.iter().map(get).collect(),
    };
    let guests = s.rows.first().map_or(0, |r| r.planned + r.failed);
    // A machine sweep counts the slots of each machine's own root bus.
    let root = if field == "machine" {
        "root bus (pcie.0 or pci.0)"
    } else {
        "pcie.0"
    };
    let first = s.rows.first().map_or("", |r| r.value.as_str());
    Panels {
        title: format!("sweep of {field}"),
        x_desc: field,
        x_label,
        x_labels: s.rows.len().min(20),
        measures: vec![
            measure(
                "controllers added (cost), total over the guests planned",
                BLUE,
                |r| r.cost,
            ),
            Measure {
                caption: format!("{root} slots used, total over the guests planned"),
                color: RED,
                values: s.rows.iter().map(|r| r.root_slots).collect(),
            },
            measure(
                "bus numbers used, total over the guests planned",
                DARK_GREEN,
                |r| r.bus_numbers,
            ),
            Measure {
                caption: format!("devices whose hot-pluggability differs from {field}={first}"),
                color: MAGENTA,
                values: s
                    .rows
                    .iter()
                    .map(|r| r.hotplug_lost + r.hotplug_gained)
                    .collect(),
            },
            // The totals above cover only the guests planned: a value that fails more guests
            // looks cheaper than it is.
            measure(
                &format!("guests not planned (of {guests})"),
                DARK_ORANGE,
                |r| r.failed,
            ),
        ],
    }
}

/// The SVG text of a sweep chart.
fn sweep_svg(field: &str, s: &SweepStudy) -> Result<String, Box<dyn Error>> {
    let label = |i: u32| {
        s.rows
            .get(i as usize)
            .map(|r| r.value.clone())
            .unwrap_or_default()
    };
    panels_svg(&sweep_panels(field, s, &label))
}

/// Cost, slots and bus numbers (and guests not planned) per value of the swept field.
pub fn sweep(field: &str, s: &SweepStudy, path: &Path) -> ChartResult {
    write(path, sweep_svg(field, s))
}

/// The SVG text of a policy chart.
fn policy_svg(d: &PolicyDelta) -> Result<String, Box<dyn Error>> {
    render((WIDTH, 480), |root| draw_policy(root, d))
}

fn draw_policy(root: &Root<'_>, d: &PolicyDelta) -> ChartResult {
    let caption = format!(
        "cost change per guest ({} became infeasible)",
        d.became_infeasible.len()
    );
    draw_histogram(root, &d.histogram, &caption, "controllers after - before")
}

/// A histogram of guests per integer value, each bar centred on its value's label; the bin
/// 0 always shows.
fn draw_histogram(
    root: &Root<'_>,
    histogram: &BTreeMap<i64, u64>,
    caption: &str,
    x_desc: &str,
) -> ChartResult {
    let lo = histogram.keys().next().copied().unwrap_or(0).min(0);
    let hi = histogram.keys().last().copied().unwrap_or(0).max(0);
    let top = histogram.values().copied().max().unwrap_or(0);
    let ymax = top + top / 8 + 1;
    let bins = usize::try_from(hi - lo + 1).unwrap_or(usize::MAX);
    let gap = if bins <= 100 { 2 } else { 0 };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        // One segment per integer lo..=hi: a bin's bar fills its segment, its label at the centre.
        .build_cartesian_2d((lo..hi).into_segmented(), 0u64..ymax)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bins.min(25))
        .x_desc(x_desc)
        .y_desc("guests")
        .draw()?;
    chart.draw_series(histogram.iter().map(|(&k, &v)| {
        let right = if k < hi {
            SegmentValue::Exact(k + 1)
        } else {
            SegmentValue::Last
        };
        let mut bar = Rectangle::new(
            [(SegmentValue::Exact(k), 0), (right, v)],
            BLUE.mix(0.6).filled(),
        );
        // Equal gaps on both sides keep the bar centred on its label (none when bars are thin).
        bar.set_margin(0, 0, gap, gap);
        bar
    }))?;
    Ok(())
}

fn adoption_svg(s: &AdoptionStudy) -> Result<String, Box<dyn Error>> {
    let histogram: BTreeMap<i64, u64> = s
        .histogram
        .iter()
        .map(|(&k, &v)| (i64::from(k), v))
        .collect();
    let caption = format!(
        "guest-visible changes per guest ({} of {} unnoticed, {} cannot)",
        s.unnoticed,
        s.guests,
        s.cannot.len()
    );
    render((WIDTH, 480), |root| {
        draw_histogram(root, &histogram, &caption, "devices the guest sees change")
    })
}

/// Histogram of guest-visible changes per adopted guest (`whatif --policy --adopt`).
pub fn adoption(s: &AdoptionStudy, path: &Path) -> ChartResult {
    write(path, adoption_svg(s))
}

/// Histogram of per-guest cost change, each bar centred on its integer value.
pub fn policy(d: &PolicyDelta, path: &Path) -> ChartResult {
    write(path, policy_svg(d))
}

#[cfg(test)]
mod tests {
    //! The charts read back from their SVG text, as a reader would see them: every series
    //! drawn apart from the others, every bar under the label of its value.

    use super::*;
    use pciplan::whatif::{MaxStep, Sweep, SweepRow, Usage};
    use pciplan::Hotplug;

    /// The opening tags `<name ...>` of an SVG text.
    fn tags<'a>(svg: &'a str, name: &str) -> Vec<&'a str> {
        let open = format!("<{name} ");
        svg.match_indices(&open)
            .map(|(at, _)| &svg[at..at + svg[at..].find('>').unwrap()])
            .collect()
    }

    fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
        let key = format!(" {name}=\"");
        let at = tag
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {tag}"))
            + key.len();
        &tag[at..at + tag[at..].find('"').unwrap()]
    }

    fn num(tag: &str, name: &str) -> f64 {
        attr(tag, name).parse().unwrap()
    }

    /// The points of a polyline.
    fn points(tag: &str) -> Vec<(f64, f64)> {
        attr(tag, "points")
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    /// The polylines of data series (the axes, ticks and frames are black).
    fn series(svg: &str) -> Vec<Vec<(f64, f64)>> {
        tags(svg, "polyline")
            .into_iter()
            .filter(|t| attr(t, "stroke") != "#000000")
            .map(points)
            .collect()
    }

    /// The y spans of the plot frames: the vertical axis lines.
    fn frames(svg: &str) -> Vec<(f64, f64)> {
        tags(svg, "polyline")
            .into_iter()
            .filter(|t| attr(t, "stroke") == "#000000")
            .map(points)
            .filter(|p| p.len() == 2 && p[0].0 == p[1].0 && (p[0].1 - p[1].1).abs() > 40.0)
            .map(|p| (p[0].1.min(p[1].1), p[0].1.max(p[1].1)))
            .collect()
    }

    /// Each text's position and content.
    fn texts(svg: &str) -> Vec<(f64, f64, String)> {
        svg.match_indices("<text ")
            .map(|(at, _)| {
                let tag = &svg[at..at + svg[at..].find('>').unwrap()];
                let body = &svg[at + tag.len() + 1..];
                let body = &body[..body.find("</text>").unwrap()];
                (num(tag, "x"), num(tag, "y"), body.trim().to_string())
            })
            .collect()
    }

    /// Every series is drawn, none exactly over another, each inside one plot frame.
    fn assert_series_apart(svg: &str, count: usize) {
        let lines = series(svg);
        for (i, a) in lines.iter().enumerate() {
            for b in &lines[i + 1..] {
                assert_ne!(a, b, "two series drawn over each other");
            }
            let ys = a.iter().map(|p| p.1);
            let (lo, hi) = (
                ys.clone().fold(f64::MAX, f64::min),
                ys.fold(f64::MIN, f64::max),
            );
            // plotters draws a value above the y range on the frame's top edge: a wrong value,
            // so the highest point must lie below that edge.
            assert!(
                frames(svg)
                    .iter()
                    .any(|&(top, bottom)| top < lo && hi <= bottom),
                "series {a:?} leaves its frame or is clipped to its top"
            );
        }
        assert_eq!(lines.len(), count, "one line per measure");
    }

    fn sweep_study(spec: &str, rows: &[(u64, u64, u64, u64)]) -> SweepStudy {
        let mut s = SweepStudy::new(Sweep::parse(spec).unwrap());
        for (row, &(cost, root_slots, bus_numbers, failed)) in s.rows.iter_mut().zip(rows) {
            *row = SweepRow {
                planned: 10 - failed,
                failed,
                cost,
                root_slots,
                bus_numbers,
                ..row.clone()
            };
        }
        s
    }

    #[test]
    fn a_sweep_draws_equal_measures_apart() {
        // cost and bus numbers coincide, as they do on most fleets.
        let rows = [
            (10, 20, 10, 1),
            (12, 21, 12, 1),
            (14, 22, 14, 2),
            (16, 23, 16, 2),
        ];
        let svg = sweep_svg("spare_ports", &sweep_study("spare_ports=0..3", &rows)).unwrap();
        assert_series_apart(&svg, 5);
        let captions: Vec<String> = texts(&svg).into_iter().map(|t| t.2).collect();
        for measure in [
            "controllers added (cost)",
            "pcie.0 slots",
            "bus numbers",
            "hot-pluggability differs from spare_ports=0",
            "not planned",
        ] {
            assert!(
                captions.iter().any(|c| c.contains(measure)),
                "{measure}: {captions:?}"
            );
        }
    }

    /// A machine sweep: each value's label under its point, the root bus caption names both
    /// machines' root buses, the hotplug panel counts the devices that change.
    #[test]
    fn a_machine_sweep_names_both_root_buses() {
        let mut s = sweep_study("machine=pc,q35", &[(2, 10, 2, 0), (6, 14, 6, 1)]);
        s.rows[1].hotplug_lost = 3;
        let svg = sweep_svg("machine", &s).unwrap();
        assert_series_apart(&svg, 5);
        let texts: Vec<String> = texts(&svg).into_iter().map(|t| t.2).collect();
        for want in [
            "root bus (pcie.0 or pci.0) slots used",
            "hot-pluggability differs from machine=pc",
            "pc",
            "q35",
        ] {
            assert!(texts.iter().any(|t| t.contains(want)), "{want}: {texts:?}");
        }
    }

    #[test]
    fn a_single_value_is_still_seen() {
        let svg = sweep_svg("firmware", &sweep_study("firmware=uefi", &[(3, 4, 3, 0)])).unwrap();
        assert_eq!(tags(&svg, "circle").len(), 5, "one marker per measure");
        let svg = max_svg(&max_report(0)).unwrap();
        assert_eq!(tags(&svg, "circle").len(), 3, "one marker per measure");
    }

    fn max_report(max: u32) -> MaxReport {
        // More pcie.0 slots than controllers (integrated devices cost nothing), and cost equal
        // to bus numbers.
        let usage = |k: u32| Usage {
            cost: 1 + k,
            root_slots: 9 + k / 2,
            bus_numbers: 1 + k,
        };
        MaxReport {
            model: "virtio-blk-pci".into(),
            hotplug: Hotplug::On,
            base: usage(0),
            max,
            steps: (1..=max)
                .map(|k| MaxStep {
                    added: k,
                    usage: usage(k),
                    step_cost: 1,
                })
                .collect(),
            root_bus: "pcie.0".into(),
        }
    }

    #[test]
    fn a_max_chart_draws_each_measure_in_its_frame() {
        assert_series_apart(&max_svg(&max_report(5)).unwrap(), 3);
    }

    #[test]
    fn histogram_bars_sit_on_their_labels() {
        let d = PolicyDelta {
            histogram: [(-3, 2), (-1, 5), (0, 7), (2, 1)].into_iter().collect(),
            ..PolicyDelta::default()
        };
        let svg = policy_svg(&d).unwrap();
        let bars: Vec<&str> = tags(&svg, "rect")
            .into_iter()
            .filter(|t| attr(t, "fill") == "#0000FF")
            .collect();
        assert_eq!(bars.len(), d.histogram.len());
        let bottom = num(bars[0], "y") + num(bars[0], "height");
        // The x axis's labels: numbers below the bars.
        let labels: Vec<(f64, i64)> = texts(&svg)
            .into_iter()
            .filter(|t| t.1 > bottom)
            .filter_map(|(x, _, s)| Some((x, s.parse().ok()?)))
            .collect();
        let per_guest = num(bars[0], "height") / 2.0;
        for bar in bars {
            let centre = num(bar, "x") + num(bar, "width") / 2.0;
            let &(_, value) = labels
                .iter()
                .find(|l| (l.0 - centre).abs() <= 1.0)
                .unwrap_or_else(|| panic!("no label under the bar at x {centre}: {labels:?}"));
            let guests = d.histogram[&value] as f64;
            assert!(
                (num(bar, "height") - guests * per_guest).abs() <= 1.0,
                "bar of {value}"
            );
        }
        let values: Vec<i64> = labels.iter().map(|l| l.1).collect();
        assert_eq!(values, (-3..=2).collect::<Vec<_>>(), "every bin labelled");
    }
}
