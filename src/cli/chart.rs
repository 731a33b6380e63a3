//! The SVG charts of `pciplan whatif` (plotters), drawn from the studies the library returns.

use std::path::Path;

use pciplan::whatif::{self, MaxReport, PolicyDelta, SweepStudy};
use plotters::prelude::*;

/// A chart written, or why not (plotters reports its errors as boxed errors).
pub type ChartResult = Result<(), Box<dyn std::error::Error>>;

/// Controller cost after each added device, with the step cost.
pub fn max(r: &MaxReport, path: &Path) -> ChartResult {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let xmax = r.max.max(1);
    let ymax = r
        .steps
        .iter()
        .map(|s| s.usage.cost)
        .max()
        .unwrap_or(r.base.cost)
        .max(1)
        + 1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{} more {} (hotplug {})",
                r.max,
                r.model,
                r.hotplug.as_str()
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0u32..xmax, 0u32..ymax)?;
    chart
        .configure_mesh()
        .x_desc("devices added")
        .y_desc("controllers added")
        .draw()?;
    let pts =
        std::iter::once((0, r.base.cost)).chain(r.steps.iter().map(|s| (s.added, s.usage.cost)));
    chart
        .draw_series(LineSeries::new(pts, &BLUE))?
        .label("cost")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    let slots = std::iter::once((0, r.base.root_slots))
        .chain(r.steps.iter().map(|s| (s.added, s.usage.root_slots)));
    chart
        .draw_series(LineSeries::new(slots, &RED))?
        .label("pcie.0 slots")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Cost, slots and bus numbers per value of the swept field.
pub fn sweep(field: &str, s: &SweepStudy, path: &Path) -> ChartResult {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = s.rows.len() as u32;
    let ymax = s
        .rows
        .iter()
        .map(|r| r.cost.max(r.root_slots).max(r.bus_numbers))
        .max()
        .unwrap_or(1)
        .max(1)
        + 1;
    let labels: Vec<String> = s.rows.iter().map(|r| r.value.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("sweep of {field}"), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0u32..n.saturating_sub(1).max(1), 0u64..ymax)?;
    chart
        .configure_mesh()
        .x_desc(field)
        .y_desc("total over guests")
        .x_labels(labels.len().min(20))
        .x_label_formatter(&|i| labels.get(*i as usize).cloned().unwrap_or_default())
        .draw()?;
    let series: [(&str, RGBColor, fn(&whatif::SweepRow) -> u64); 3] = [
        ("cost", BLUE, |r| r.cost),
        ("pcie.0 slots", RED, |r| r.root_slots),
        ("bus numbers", GREEN, |r| r.bus_numbers),
    ];
    for (name, color, get) in series {
        chart
            .draw_series(LineSeries::new(
                s.rows.iter().enumerate().map(|(i, r)| (i as u32, get(r))),
                &color,
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Histogram of per-guest cost change.
pub fn policy(d: &PolicyDelta, path: &Path) -> ChartResult {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let lo = d.histogram.keys().next().copied().unwrap_or(0).min(0);
    let hi = d.histogram.keys().last().copied().unwrap_or(0).max(0);
    let ymax = d.histogram.values().copied().max().unwrap_or(1) + 1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "cost change per guest ({} became infeasible)",
                d.became_infeasible.len()
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi + 1, 0u64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("controllers after - before")
        .y_desc("guests")
        .draw()?;
    chart.draw_series(
        d.histogram
            .iter()
            .map(|(&k, &v)| Rectangle::new([(k, 0), (k + 1, v)], BLUE.mix(0.6).filled())),
    )?;
    root.present()?;
    Ok(())
}
