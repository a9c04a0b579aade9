//! The article's chart: bits per second for use cases A–C, measured beside the article's bars.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::article;
use super::charts::{self, ARTICLE, Area, font, plot_error};
use super::units::{Digits, bits_per_second};
use crate::result::RunResult;

pub const SIZE: (u32, u32) = (1200, 800);

const ROW_PX: i32 = 19;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Measured,
    Projected,
    Article,
}

struct Bar {
    label: String,
    bps: f64,
    kind: Kind,
    colour: RGBColor,
}

impl Bar {
    /// Measured bars are solid, projected ones white (then hatched), the article's grey.
    fn fill(&self) -> ShapeStyle {
        match self.kind {
            Kind::Measured => self.colour.filled(),
            Kind::Projected => WHITE.filled(),
            Kind::Article => ARTICLE.mix(0.35).filled(),
        }
    }
}

struct Group {
    title: String,
    bars: Vec<Bar>,
}

/// `use-cases.png`: linear axis, like the original.
pub fn linear(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    render(results, false)
}

/// `use-cases-log.png`: log axis, where the small bars can be read.
pub fn log(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    render(results, true)
}

fn render(results: &[RunResult], log_axis: bool) -> anyhow::Result<Vec<u8>> {
    let groups = groups(results);
    let rows = groups.iter().map(|g| g.bars.len()).max().unwrap_or(0) as i32;
    let top = groups
        .iter()
        .flat_map(|g| &g.bars)
        .map(|b| b.bps)
        .fold(1.0, f64::max);
    charts::render_png(SIZE, |root| {
        let table_px = rows * ROW_PX + 20;
        let (plot, _) = root.split_vertically(SIZE.1 as i32 - table_px);
        let axis = if log_axis { "log axis" } else { "linear axis" };
        let caption = format!("Bits per second ({axis})");
        if log_axis {
            let bottom = groups
                .iter()
                .flat_map(|g| &g.bars)
                .map(|b| b.bps)
                .filter(|v| *v > 0.0)
                .fold(top, f64::min);
            let lo = 10f64.powf((bottom / 2.0).log10().floor());
            let hi = 10f64.powf((top * 1.25).log10().ceil());
            draw(root, &plot, &groups, &caption, (lo..hi).log_scale(), lo)
        } else {
            draw(root, &plot, &groups, &caption, 0.0..top * 1.1, 0.0)
        }
    })
}

/// One group per scenario; the article's bars join use cases A–C.
fn groups(results: &[RunResult]) -> Vec<Group> {
    let transports = charts::transports(results);
    charts::scenarios(results)
        .into_iter()
        .map(|scenario| {
            let mut bars: Vec<Bar> = results
                .iter()
                .filter(|r| r.scenario == scenario)
                .map(|r| measured_bar(r, &charts::series(results, r), &transports))
                .collect();
            if let Some(case) = article::use_case(&scenario) {
                bars.push(article_bar("Polling (article)", case.polling.bps));
                bars.push(article_bar("WebSockets (article)", case.websocket.bps));
            }
            Group {
                title: charts::group_title(&scenario),
                bars,
            }
        })
        .collect()
}

fn measured_bar(r: &RunResult, name: &str, transports: &[String]) -> Bar {
    let colour = charts::colour(transports, name);
    match r.projected_bandwidth_bps {
        Some(bps) => Bar {
            label: format!("{name} (projected)"),
            bps,
            kind: Kind::Projected,
            colour,
        },
        None => Bar {
            label: name.to_string(),
            bps: r.bandwidth_bps,
            kind: Kind::Measured,
            colour,
        },
    }
}

fn article_bar(label: &str, bps: f64) -> Bar {
    Bar {
        label: label.to_string(),
        bps,
        kind: Kind::Article,
        colour: ARTICLE,
    }
}

/// Draws the bars into `plot` and, under each group, its table of values into `root`.
fn draw<Y>(
    root: &Area,
    plot: &Area,
    groups: &[Group],
    caption: &str,
    y: Y,
    base: f64,
) -> anyhow::Result<()>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(plot)
        .caption(caption, font(26.0))
        .margin(16)
        .x_label_area_size(34)
        .y_label_area_size(110)
        .build_cartesian_2d(0.0..groups.len().max(1) as f64, y)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(8)
        .y_label_formatter(&|v| bits_per_second(*v, Digits::Three))
        .y_desc("bits per second (SI: k = 10³, M = 10⁶, G = 10⁹)")
        .label_style(font(14.0))
        .axis_desc_style(font(15.0))
        .draw()
        .map_err(plot_error)?;
    for (g, group) in groups.iter().enumerate() {
        let width = 0.8 / group.bars.len().max(1) as f64;
        for (b, bar) in group.bars.iter().enumerate() {
            let x0 = g as f64 + 0.1 + b as f64 * width;
            let corners = [(x0 + width * 0.08, bar.bps), (x0 + width * 0.92, base)];
            draw_bar(root, &chart, corners, bar)?;
        }
        let centre = chart.backend_coord(&(g as f64 + 0.5, base));
        let title = font(17.0).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(
            group.title.clone(),
            (centre.0, centre.1 + 8),
            title,
        ))
        .map_err(plot_error)?;
        // At most 400 px wide, so a lone group's values stay next to their names.
        let left = chart
            .backend_coord(&(g as f64 + 0.04, base))
            .0
            .max(centre.0 - 200);
        let right = chart
            .backend_coord(&(g as f64 + 0.96, base))
            .0
            .min(centre.0 + 200);
        draw_table(root, group, (left, right), plot.dim_in_pixel().1 as i32 + 6)?;
    }
    Ok(())
}

fn draw_bar<Y>(
    root: &Area,
    chart: &ChartContext<BitMapBackend, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    corners: [(f64, f64); 2],
    bar: &Bar,
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    // Nothing to draw for a bandwidth that was not measured, nor for zero on a log axis.
    if !bar.bps.is_finite() || bar.bps <= 0.0 {
        return Ok(());
    }
    let area = chart.plotting_area();
    area.draw(&Rectangle::new(corners, bar.fill()))
        .map_err(plot_error)?;
    area.draw(&Rectangle::new(corners, bar.colour.stroke_width(2)))
        .map_err(plot_error)?;
    let a = chart.backend_coord(&corners[0]);
    let b = chart.backend_coord(&corners[1]);
    if bar.kind == Kind::Projected {
        charts::hatch(root, a, b, bar.colour)?;
    }
    // Names the bars that are not plain measurements right on them, even when tiny.
    let tag = match bar.kind {
        Kind::Measured => return Ok(()),
        Kind::Projected => "projected",
        Kind::Article => "article",
    };
    let style = font(12.0)
        .color(&bar.colour)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    root.draw(&Text::new(tag, ((a.0 + b.0) / 2, a.1 - 3), style))
        .map_err(plot_error)
}

/// The values of one group, one row per bar, with a swatch that doubles as the legend.
fn draw_table(
    root: &Area,
    group: &Group,
    (left, right): (i32, i32),
    top: i32,
) -> anyhow::Result<()> {
    for (row, bar) in group.bars.iter().enumerate() {
        let y = top + row as i32 * ROW_PX;
        let swatch = [(left, y + 3), (left + 13, y + 16)];
        root.draw(&Rectangle::new(swatch, bar.fill()))
            .map_err(plot_error)?;
        root.draw(&Rectangle::new(swatch, bar.colour.stroke_width(1)))
            .map_err(plot_error)?;
        if bar.kind == Kind::Projected {
            charts::hatch(root, swatch[0], swatch[1], bar.colour)?;
        }
        let text = font(13.0).pos(Pos::new(HPos::Left, VPos::Top));
        root.draw(&Text::new(bar.label.clone(), (left + 19, y + 3), text))
            .map_err(plot_error)?;
        let value = font(13.0).pos(Pos::new(HPos::Right, VPos::Top));
        root.draw(&Text::new(
            bits_per_second(bar.bps, Digits::Three),
            (right, y + 3),
            value,
        ))
        .map_err(plot_error)?;
    }
    Ok(())
}
