//! What every chart shares: the embedded font, PNG encoding, colours and run labels.

use std::sync::OnceLock;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::article;
use crate::result::RunResult;

/// The chart font, compiled in so charts render the same on a machine without any fonts
/// (DejaVu Sans, Bitstream Vera license: `assets/fonts/LICENSE-DejaVu.txt`).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family every chart asks for; plotters' ab_glyph backend only knows registered fonts.
pub const FAMILY: &str = "sans-serif";

/// A chart area drawn into an RGB buffer.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Registers the embedded font once per process.
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    anyhow::ensure!(ok, "the embedded chart font could not be read");
    Ok(())
}

/// Draws a `width` × `height` chart with `draw` onto a white canvas and returns it as PNG.
pub fn render_png(
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u8>> {
    register_font()?;
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    encode_png(&rgb, width, height)
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("encoding PNG")?;
    writer.write_image_data(rgb).context("encoding PNG")?;
    writer.finish().context("encoding PNG")?;
    Ok(bytes)
}

/// plotters' errors are generic over the backend; charts only need their message.
pub fn plot_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// The legend every chart draws: lower right, on white, in the chart font.
pub fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(font(13.0))
        .draw()
        .map_err(plot_error)
}

/// A text style of the embedded font.
pub fn font(size: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

/// Colour-blind-friendly palette (Okabe–Ito), one colour per transport.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 94, 60),
];

/// Grey of the article's reference bars and marks.
pub const ARTICLE: RGBColor = RGBColor(110, 110, 110);

/// Transports in the order they first appear: the same transport keeps its colour in every chart.
pub fn transports(results: &[RunResult]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for r in results {
        let name = series(results, r);
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen
}

/// What names a run among `results`: its transport label, with its target's name
/// (`mqtt(qos0,tcp)@mosquitto`) when the results mix several targets.
pub fn series(results: &[RunResult], r: &RunResult) -> String {
    let first = results.first().map(|f| f.target_name.as_str());
    if results
        .iter()
        .any(|o| Some(o.target_name.as_str()) != first)
        && !r.target_name.is_empty()
    {
        format!("{}@{}", r.transport, r.target_name)
    } else {
        r.transport.clone()
    }
}

/// The colour of `transport` among `transports`.
pub fn colour(transports: &[String], transport: &str) -> RGBColor {
    let index = transports.iter().position(|t| t == transport).unwrap_or(0);
    PALETTE[index % PALETTE.len()]
}

/// Scenarios in report order: use cases A, B, C first, then the others as they appear.
pub fn scenarios(results: &[RunResult]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in results {
        if !names.contains(&r.scenario) {
            names.push(r.scenario.clone());
        }
    }
    names.sort_by_key(|name| {
        article::USE_CASES
            .iter()
            .position(|u| u.scenario == name)
            .unwrap_or(article::USE_CASES.len())
    });
    names
}

/// "Use Case A" as the article names it, or the scenario's own name.
pub fn group_title(scenario: &str) -> String {
    article::use_case(scenario).map_or_else(
        || scenario.to_string(),
        |u| format!("Use Case {}", u.letter),
    )
}

/// Runs in report order: by scenario, then transport, as they appear.
pub fn ordered(results: &[RunResult]) -> Vec<&RunResult> {
    let order = scenarios(results);
    let mut runs: Vec<&RunResult> = results.iter().collect();
    runs.sort_by_key(|r| order.iter().position(|s| *s == r.scenario));
    runs
}

/// One line naming a run: its transport, and its scenario when the results mix several.
pub fn run_label(results: &[RunResult], r: &RunResult) -> String {
    if scenarios(results).len() > 1 {
        format!("{} · {}", group_title(&r.scenario), series(results, r))
    } else {
        series(results, r)
    }
}

/// Diagonal hatching inside the pixel rectangle `(x0, y0)–(x1, y1)`: marks projected figures.
pub fn hatch(
    area: &Area,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    colour: RGBColor,
) -> anyhow::Result<()> {
    let (left, right) = (x0.min(x1), x0.max(x1));
    let (top, bottom) = (y0.min(y1), y0.max(y1));
    let (width, height) = (right - left, bottom - top);
    let step = 7;
    // Each line runs at 45° from the bottom edge (or the left edge) up and to the right.
    let mut offset = -height;
    while offset < width {
        let start = (left + offset.max(0), bottom - (-offset).max(0));
        let length = (width - offset.max(0)).min(height - (-offset).max(0));
        let end = (start.0 + length, start.1 - length);
        area.draw(&PathElement::new(vec![start, end], colour.stroke_width(1)))
            .map_err(plot_error)?;
        offset += step;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_several_targets_are_named_with_their_target() {
        let run = |target_name: &str| RunResult {
            transport: "mqtt(qos0,tcp)".into(),
            target_name: target_name.into(),
            ..RunResult::default()
        };
        let mixed = [run("embedded"), run("mosquitto")];
        assert_eq!(series(&mixed, &mixed[1]), "mqtt(qos0,tcp)@mosquitto");
        assert_eq!(
            transports(&mixed),
            ["mqtt(qos0,tcp)@embedded", "mqtt(qos0,tcp)@mosquitto"]
        );
        let one = [run("mosquitto"), run("mosquitto")];
        assert_eq!(series(&one, &one[0]), "mqtt(qos0,tcp)");
    }

    #[test]
    fn use_cases_come_first_in_their_order() {
        let run = |s: &str| RunResult {
            scenario: s.into(),
            ..RunResult::default()
        };
        let results = [run("smoke"), run("use-case-c"), run("use-case-a")];
        assert_eq!(scenarios(&results), ["use-case-a", "use-case-c", "smoke"]);
    }
}
