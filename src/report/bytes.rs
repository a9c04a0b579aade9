//! `bytes-per-message.png`: what one delivered message costs on the wire, split into protocol
//! overhead, TLS records (on a TLS run), payload and TCP/IP headers, with the article's
//! per-message figures marked.

use plotters::prelude::*;
use plotters::style::text_anchor::VPos;

use super::article;
use super::charts::{self, ARTICLE, plot_error};
use super::rows;
use super::units::{self, Digits};
use crate::result::RunResult;

pub const SIZE: (u32, u32) = (1200, 800);

/// The layers of a bar, bottom up, with their colours: overhead first, so its end reads
/// against the article's figures, which count overhead only; then what TLS adds to it.
const LAYERS: [(&str, RGBColor); 4] = [
    ("protocol overhead", RGBColor(213, 94, 0)),
    ("TLS records", RGBColor(204, 121, 167)),
    ("payload", RGBColor(0, 114, 178)),
    ("TCP/IP headers", RGBColor(190, 190, 190)),
];

/// One run's bytes per message in the order of `LAYERS`; none when it delivered nothing.
fn segments(r: &RunResult) -> Option<[f64; 4]> {
    if !r.bytes_per_message.is_finite() {
        return None;
    }
    let tcp_ip = (r.ip_bytes_per_message - r.bytes_per_message).max(0.0);
    let tls = if r.tls_overhead_bytes_per_message.is_finite() {
        r.tls_overhead_bytes_per_message.max(0.0)
    } else {
        0.0
    };
    Some([
        (r.overhead_bytes_per_message - tls).max(0.0),
        tls,
        r.payload_bytes as f64,
        tcp_ip,
    ])
}

/// The article's figure for a run's transport kind, as a note and the marks to draw.
fn article_figure(r: &RunResult) -> Option<(String, &'static [f64])> {
    match r.transport_kind.as_str() {
        "http-poll" => Some((
            format!(
                "article: {} B overhead ({} B with line ends)",
                article::POLL_BYTES,
                article::POLL_WIRE_BYTES
            ),
            &[article::POLL_BYTES, article::POLL_WIRE_BYTES],
        )),
        "websocket" => Some((
            format!("article: {} B overhead", article::WEBSOCKET_BYTES),
            &[article::WEBSOCKET_BYTES],
        )),
        _ => None,
    }
}

pub fn render(results: &[RunResult]) -> anyhow::Result<Vec<u8>> {
    let runs = charts::ordered(results);
    let widest = runs
        .iter()
        .filter_map(|r| segments(r))
        .map(|s| s.iter().sum::<f64>())
        .fold(article::POLL_WIRE_BYTES, f64::max);
    charts::render_png(SIZE, |root| {
        let mut chart = rows::build(
            root,
            "Bytes on the wire per delivered message",
            runs.len(),
            0.0..widest * 1.75,
            "bytes per message (both directions; TCP/IP headers include pure ACKs)",
            &|v| units::bytes(*v, Digits::Fixed(0)),
        )?;
        for (label, colour) in LAYERS {
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
    let sums = match segments(r) {
        Some(segments) => {
            for (bytes, (_, colour)) in segments.iter().zip(LAYERS) {
                let corners = [(start, y + 0.22), (start + bytes, y + 0.78)];
                chart
                    .plotting_area()
                    .draw(&Rectangle::new(corners, colour.filled()))
                    .map_err(plot_error)?;
                start += bytes;
            }
            let [overhead, tls, payload, tcp_ip] = segments;
            let tls = if tls > 0.0 {
                format!(" + TLS {}", units::figure(tls, Digits::Fixed(1)))
            } else {
                String::new()
            };
            format!(
                "overhead {}{tls} + payload {} + TCP/IP {} = {}",
                units::figure(overhead, Digits::Fixed(1)),
                units::figure(payload, Digits::Fixed(0)),
                units::figure(tcp_ip, Digits::Fixed(1)),
                units::bytes(r.ip_bytes_per_message, Digits::Fixed(1))
            )
        }
        None => "no messages delivered".to_string(),
    };
    // Notes start right of the bar and of the article's marks, so neither covers the other.
    let notes_x = article_figure(r).map_or(start, |(_, marks)| {
        marks.iter().fold(start, |x, m| x.max(*m))
    });
    rows::note(
        root,
        chart,
        ((notes_x, y + 0.5), VPos::Bottom),
        &sums,
        BLACK,
    )?;
    if let Some((note, marks)) = article_figure(r) {
        for mark in marks {
            let line = vec![(*mark, y + 0.12), (*mark, y + 0.88)];
            chart
                .plotting_area()
                .draw(&PathElement::new(line, ARTICLE.stroke_width(3)))
                .map_err(plot_error)?;
        }
        rows::note(root, chart, ((notes_x, y + 0.5), VPos::Top), &note, ARTICLE)?;
    }
    Ok(())
}
