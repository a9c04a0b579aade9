//! Horizontal-bar layout shared by the per-run charts: one row per run, its label at the left,
//! so long transport names stay readable however many runs there are.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::charts::{Area, font, plot_error};

/// A chart whose y axis counts rows (row `i` spans `i..i+1`, drawn top down).
pub type RowChart<'a, 'b, X> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, RangedCoordf64>>;

/// Pixels left of the plot for the row labels.
pub const LABEL_PX: u32 = 300;

/// Builds a chart of `rows` rows over `x`, with its mesh and the x axis described by `x_desc`.
pub fn build<'a, 'b, X>(
    area: &'a Area<'b>,
    caption: &str,
    rows: usize,
    x: X,
    x_desc: &str,
    x_format: &dyn Fn(&f64) -> String,
) -> anyhow::Result<RowChart<'a, 'b, X::CoordDescType>>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(22.0))
        .margin(14)
        .margin_right(36)
        .x_label_area_size(48)
        .y_label_area_size(LABEL_PX)
        .build_cartesian_2d(x, rows.max(1) as f64..0.0)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .x_label_formatter(x_format)
        .x_desc(x_desc)
        .label_style(font(13.0))
        .axis_desc_style(font(14.0))
        .draw()
        .map_err(plot_error)?;
    Ok(chart)
}

/// Writes `label` left of row `row`, right-aligned against the plot.
pub fn label<X>(area: &Area, chart: &RowChart<X>, row: usize, label: &str) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64>,
{
    let left = chart.plotting_area().get_pixel_range().0.start;
    let y = chart
        .backend_coord(&(chart.x_range().start, row as f64 + 0.5))
        .1;
    let style = font(13.0).pos(Pos::new(HPos::Right, VPos::Center));
    let at = within(area, (left - 8, y));
    area.draw(&Text::new(label.to_string(), at, style))
        .map_err(plot_error)
}

/// Writes `text` just right of data point `at`; `anchor` says which edge of the text sits at it.
pub fn note<X>(
    area: &Area,
    chart: &RowChart<X>,
    (at, anchor): ((f64, f64), VPos),
    text: &str,
    colour: RGBColor,
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64>,
{
    let (x, y) = chart.backend_coord(&at);
    // A little air between notes stacked above and below the same point.
    let y = match anchor {
        VPos::Bottom => y - 2,
        VPos::Top => y + 3,
        VPos::Center => y,
    };
    let style = font(12.0).color(&colour).pos(Pos::new(HPos::Left, anchor));
    area.draw(&Text::new(
        text.to_string(),
        within(area, (x + 5, y)),
        style,
    ))
    .map_err(plot_error)
}

/// A backend pixel as a position inside `area`, which may be a panel of the canvas.
fn within(area: &Area, (x, y): (i32, i32)) -> (i32, i32) {
    let (base_x, base_y) = area.get_base_pixel();
    (x - base_x, y - base_y)
}
