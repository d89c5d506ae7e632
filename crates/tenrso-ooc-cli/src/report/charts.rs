//! SVG charts of a run report, drawn with plotters' SVG backend: lines over
//! time (with a labelled limit) and horizontal bars.

use plotters::prelude::*;
use tenrso_ooc::{Error, Result};

/// Width and height of every chart, in pixels.
const SIZE: (u32, u32) = (900, 300);

/// The colours of a chart's lines, in order.
const PALETTE: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The colour of a limit drawn across a chart.
const LIMIT: RGBColor = RGBColor(214, 39, 40);

/// One line of a chart: a name for the legend and its points.
#[derive(Debug, Clone)]
pub struct Line {
    /// Shown in the legend.
    pub label: String,
    /// `(x, y)` in the chart's units, x increasing.
    pub points: Vec<(f64, f64)>,
}

/// A horizontal line across a chart, labelled in the legend (a memory limit).
#[derive(Debug, Clone)]
pub struct Limit {
    /// Its height, in the chart's y units.
    pub value: f64,
    /// Shown in the legend.
    pub label: String,
}

/// The axes of a chart: what x and y measure.
#[derive(Debug, Clone, Copy)]
pub struct Axes<'a> {
    /// The chart's title.
    pub title: &'a str,
    /// What x measures, with its unit.
    pub x: &'a str,
    /// What y measures, with its unit.
    pub y: &'a str,
}

fn drawing_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("cannot draw the {what} chart: {e}"))
}

/// A number for an axis label: three significant digits at most, no
/// trailing zeros (`0.2`, `12.5`, `4000`).
fn tick(v: f64) -> String {
    let a = v.abs();
    let decimals = if a == 0.0 || a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Fonts of tick labels and axis descriptions.
const LABELS: (&str, u32) = ("sans-serif", 13);

/// The end of an axis from 0 showing `values`: their largest finite one, at
/// least `floor`, and small enough to scale (reports can be hand-edited).
fn axis_max(values: impl Iterator<Item = f64>, floor: f64) -> f64 {
    values
        .filter(|v| v.is_finite())
        .fold(floor, f64::max)
        .min(1e300)
}

/// Lines over a common x axis as an SVG document, y from 0, with `limit`
/// drawn across when given (and the y range made to show it).
pub fn line_chart(axes: Axes<'_>, lines: &[Line], limit: Option<&Limit>) -> Result<String> {
    let err = |e: &dyn std::fmt::Display| drawing_error(axes.title, e);
    let points = lines.iter().flat_map(|l| &l.points);
    let x_max = axis_max(points.clone().map(|p| p.0), 1e-3);
    // Headroom above the lines for the legend.
    let y_max = axis_max(points.map(|p| p.1).chain(limit.map(|l| l.value)), 1e-9) * 1.35;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(axes.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(axes.x)
            .y_desc(axes.y)
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style(LABELS)
            .axis_desc_style(LABELS)
            .draw()
            .map_err(|e| err(&e))?;
        for (line, colour) in lines.iter().zip(PALETTE.iter().cycle()) {
            let style = colour.stroke_width(2);
            chart
                .draw_series(LineSeries::new(
                    line.points
                        .iter()
                        .copied()
                        .filter(|(x, y)| x.is_finite() && y.is_finite()),
                    style,
                ))
                .map_err(|e| err(&e))?
                .label(&line.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        if let Some(limit) = limit {
            let style = LIMIT.stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(
                    [(0.0, limit.value), (x_max, limit.value)],
                    8,
                    5,
                    style,
                ))
                .map_err(|e| err(&e))?
                .label(&limit.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font(LABELS)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// Horizontal bars, one per `(name, value)`, as an SVG document.
pub fn bar_chart(axes: Axes<'_>, bars: &[(String, f64)]) -> Result<String> {
    let err = |e: &dyn std::fmt::Display| drawing_error(axes.title, e);
    let x_max = axis_max(bars.iter().map(|b| b.1), 1e-3) * 1.1;
    let n = bars.len().max(1);
    let height = (80 + 28 * n as u32).max(160);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(axes.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(180)
            .build_cartesian_2d(0f64..x_max, (0..n).into_segmented())
            .map_err(|e| err(&e))?;
        let name = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) => bars
                .get(*i)
                .map(|b| b.0.chars().take(28).collect())
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .x_desc(axes.x)
            .y_desc(axes.y)
            .x_label_formatter(&|v| tick(*v))
            .y_labels(n)
            .y_label_formatter(&name)
            .disable_y_mesh()
            .label_style(LABELS)
            .axis_desc_style(LABELS)
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*v, SegmentValue::Exact(i + 1)),
                    ],
                    PALETTE[0].filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            }))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_has_its_points_labels_and_limit() {
        let line = Line {
            label: "pool reserved".into(),
            points: (0..50).map(|i| (i as f64 * 0.1, (i % 7) as f64)).collect(),
        };
        let limit = Limit {
            value: 64.0,
            label: "limit 64.00 MiB".into(),
        };
        let axes = Axes {
            title: "Memory",
            x: "seconds",
            y: "MiB",
        };
        let svg = line_chart(axes, &[line], Some(&limit)).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        assert!(svg.contains("limit 64.00 MiB"));
        assert!(svg.contains("pool reserved"));
        // The line's 50 points are one polyline.
        let most = svg
            .split("<polyline")
            .skip(1)
            .map(|p| {
                let points = p.split("points=\"").nth(1).unwrap_or("");
                points[..points.find('"').unwrap_or(0)].split(' ').count()
            })
            .max()
            .unwrap();
        assert!(most >= 50, "{most}");
    }

    #[test]
    fn extreme_values_are_drawn_without_a_panic() {
        let axes = Axes {
            title: "t",
            x: "x",
            y: "y",
        };
        let line = Line {
            label: "l".into(),
            points: vec![
                (0.0, 1e308),
                (-5.0, -1e308),
                (f64::NAN, 1.0),
                (1.0, f64::INFINITY),
            ],
        };
        let limit = Limit {
            value: f64::MAX,
            label: "limit".into(),
        };
        line_chart(axes, &[line], Some(&limit)).unwrap();
        line_chart(axes, &[], None).unwrap();
        bar_chart(axes, &[("a".into(), 1e308), ("b".into(), -1.0)]).unwrap();
        bar_chart(axes, &[]).unwrap();
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.2), "0.2");
        assert_eq!(tick(0.125), "0.125");
        assert_eq!(tick(10.0), "10");
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(4000.0), "4000");
        assert_eq!(tick(0.0), "0");
    }

    #[test]
    fn a_bar_chart_names_its_bars() {
        let axes = Axes {
            title: "Time per phase",
            x: "seconds",
            y: "phase",
        };
        let svg = bar_chart(axes, &[("plan".into(), 0.5), ("execute".into(), 3.0)]).unwrap();
        assert!(svg.contains("execute") && svg.contains("plan"));
        assert!(svg.matches("<rect").count() >= 2);
    }
}
