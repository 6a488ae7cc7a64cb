//! The chart `warmpool-lab simulate --svg` writes, drawn with plotters: above, the demand (leases
//! in use) and the ready containers each policy kept over time; below, each policy's hit rate
//! against its idle container-seconds: the trade-off, one point a policy.

use plotters::prelude::*;

use crate::simulate::Outcome;

/// The chart of `outcomes` (one trace, several policies) as an SVG document.
pub fn chart(title: &str, outcomes: &[Outcome]) -> Result<String, String> {
    let mut svg = String::new();
    draw(&mut svg, title, outcomes).map_err(|e| format!("drawing the chart: {e}"))?;
    Ok(svg)
}

fn color(i: usize) -> RGBColor {
    let c = Palette99::pick(i + 1).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

fn draw<'s>(
    svg: &'s mut String,
    title: &str,
    outcomes: &[Outcome],
) -> Result<(), Box<dyn std::error::Error + 's>> {
    let root = SVGBackend::with_string(svg, (1000, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(520);

    let t_max = outcomes
        .iter()
        .flat_map(|o| o.timeline.last())
        .map(|s| s.t_s)
        .fold(1.0, f64::max);
    let y_max = outcomes
        .iter()
        .flat_map(|o| o.timeline.iter())
        .map(|s| s.leased.max(s.ready))
        .max()
        .unwrap_or(1)
        + 1;
    // Hours once the trace is longer than two, minutes once longer than two, else seconds.
    let (unit, div) = match t_max {
        t if t > 7200.0 => ("h", 3600.0),
        t if t > 120.0 => ("min", 60.0),
        _ => ("s", 1.0),
    };
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..t_max / div, 0u32..y_max)?;
    chart
        .configure_mesh()
        .x_desc(format!("time ({unit})"))
        .y_desc("containers")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    // Demand is the trace's, the same under every policy up to waits: drawn once.
    if let Some(first) = outcomes.first() {
        chart
            .draw_series(LineSeries::new(
                first.timeline.iter().map(|s| (s.t_s / div, s.leased)),
                BLACK.stroke_width(2),
            ))?
            .label("demand (leases held)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    }
    for (i, o) in outcomes.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(
                o.timeline.iter().map(|s| (s.t_s / div, s.ready)),
                c,
            ))?
            .label(format!("ready: {}", o.policy))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let idle_max = outcomes
        .iter()
        .map(|o| o.idle_container_seconds)
        .fold(1.0, f64::max)
        * 1.15;
    let mut trade = ChartBuilder::on(&bottom)
        .caption(
            "hit rate against idle container-seconds (up and left is better)",
            ("sans-serif", 16),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..idle_max, 0.0..105.0)?;
    trade
        .configure_mesh()
        .x_desc("idle container-seconds")
        .y_desc("hit rate (%)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (i, o) in outcomes.iter().enumerate() {
        let c = color(i);
        let at = (o.idle_container_seconds, o.hit_rate * 100.0);
        trade.draw_series(std::iter::once(Circle::new(at, 6, c.filled())))?;
        trade.draw_series(std::iter::once(Text::new(
            o.policy.clone(),
            at,
            ("sans-serif", 13).into_font().color(&c),
        )))?;
    }
    root.present()?;
    Ok(())
}
