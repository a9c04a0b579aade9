//! `bytes-per-message.png`: what one delivered message costs on the wire, split into protocol
//! overhead, payload and TCP/IP headers, with the article's per-message figures marked.

use plotters::prelude::*;
use plotters::style::text_anchor::VPos;

use super::charts::{self, ARTICLE, plot_error};
use super::rows;
use crate::result::RunResult;

pub const SIZE: (u32, u32) = (1200, 800);

/// The article's polling overhead as it counts it (characters, no line ends) and on the wire.
pub const ARTICLE_POLL_BYTES: f64 = 871.0;
pub const ARTICLE_POLL_WIRE_BYTES: f64 = 909.0;
/// The article's WebSocket overhead: one small server→client frame header.
pub const ARTICLE_WS_BYTES: f64 = 2.0;

const OVERHEAD: RGBColor = RGBColor(213, 94, 0);
const PAYLOAD: RGBColor = RGBColor(0, 114, 178);
const HEADERS: RGBColor = RGBColor(190, 190, 190);

/// One run's bytes per message, bottom up: overhead first, so its end reads against the
/// article's figures, which count overhead only.
fn segments(r: &RunResult) -> [(f64, RGBColor, &'static str); 3] {
    let tcp_ip = (r.ip_bytes_per_message - r.bytes_per_message).max(0.0);
    [
        (
            r.overhead_bytes_per_message.max(0.0),
            OVERHEAD,
            "protocol overhead",
        ),
        (r.payload_bytes as f64, PAYLOAD, "payload"),
        (tcp_ip, HEADERS, "TCP/IP headers"),
    ]
}

/// The article's figure for a run's transport kind, as a note and the marks to draw.
fn article(r: &RunResult) -> Option<(&'static str, &'static [f64])> {
    match r.transport_kind.as_str() {
        "http-poll" => Some((
            "article: 871 B overhead (909 B with line ends)",
            &[ARTICLE_POLL_BYTES, ARTICLE_POLL_WIRE_BYTES],
        )),
        "websocket" => Some(("article: 2 B overhead", &[ARTICLE_WS_BYTES])),
        _ => None,
    }
}

pub fn render(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let runs = charts::ordered(results);
    let widest = runs
        .iter()
        .map(|r| segments(r).iter().map(|s| s.0).sum::<f64>())
        .fold(ARTICLE_POLL_WIRE_BYTES, f64::max);
    charts::render_png(SIZE, |root| {
        let mut chart = rows::build(
            root,
            "Bytes on the wire per delivered message",
            runs.len(),
            0.0..widest * 1.75,
            "bytes per message (both directions; TCP/IP headers include pure ACKs)",
            &|v| format!("{v:.0} B"),
        )?;
        for (label, colour) in [
            ("protocol overhead", OVERHEAD),
            ("payload", PAYLOAD),
            ("TCP/IP headers", HEADERS),
        ] {
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
                .map_err(plot_error)?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled())
                });
        }
        chart
            .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())
            .map_err(plot_error)?
            .label("the article's figure")
            .legend(|(x, y)| {
                PathElement::new(
                    vec![(x + 7, y - 8), (x + 7, y + 8)],
                    ARTICLE.stroke_width(3),
                )
            });
        for (row, r) in runs.iter().enumerate() {
            draw_run(root, &chart, row, r)?;
            rows::label(root, &chart, row, &charts::run_label(results, r))?;
        }
        charts::legend(&mut chart)?;
        Ok(())
    })
}

fn draw_run(
    root: &charts::Area,
    chart: &rows::RowChart<plotters::coord::types::RangedCoordf64>,
    row: usize,
    r: &RunResult,
) -> anyhow::Result<()> {
    let y = row as f64;
    let mut start = 0.0;
    for (bytes, colour, _) in segments(r) {
        let corners = [(start, y + 0.22), (start + bytes, y + 0.78)];
        chart
            .plotting_area()
            .draw(&Rectangle::new(corners, colour.filled()))
            .map_err(plot_error)?;
        start += bytes;
    }
    let [overhead, payload, tcp_ip] = segments(r).map(|s| s.0);
    let sums = format!(
        "overhead {overhead:.1} + payload {payload:.0} + TCP/IP {tcp_ip:.1} = {:.1} B",
        r.ip_bytes_per_message
    );
    // Notes start right of the bar and of the article's marks, so neither covers the other.
    let notes_x = article(r).map_or(start, |(_, marks)| {
        marks.iter().fold(start, |x, m| x.max(*m))
    });
    rows::note(
        root,
        chart,
        ((notes_x, y + 0.5), VPos::Bottom),
        &sums,
        BLACK,
    )?;
    if let Some((note, marks)) = article(r) {
        for mark in marks {
            let line = vec![(*mark, y + 0.12), (*mark, y + 0.88)];
            chart
                .plotting_area()
                .draw(&PathElement::new(line, ARTICLE.stroke_width(3)))
                .map_err(plot_error)?;
        }
        rows::note(root, chart, ((notes_x, y + 0.5), VPos::Top), note, ARTICLE)?;
    }
    Ok(())
}
