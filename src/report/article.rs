//! The figures of the article the reports set beside their measurements: websocket.org's
//! "HTML5 Web Sockets: A Quantum Leap in Scalability for the Web" (Lubbers & Greco, Kaazing,
//! ~2010), as repeated by the 2020 write-up "MQTT和WebSocket 对比". Kept in one place so a
//! chart and a table cannot quote different numbers; each says where in the article it is
//! from and how loose it is.

/// Polling overhead per message as the article counts it: the printable characters of its
/// example request (692) and response (179), with every line ending left out.
pub const POLL_BYTES: f64 = 871.0;
/// The article's example request on the wire: its headers with CRLF line ends and the blank
/// line that closes the header block (what the `websocket-org-2010` profile sends).
pub const POLL_REQUEST_WIRE_BYTES: f64 = 716.0;
/// The article's example response headers on the wire, counted the same way.
pub const POLL_RESPONSE_WIRE_BYTES: f64 = 193.0;
/// The same polling exchange on the wire: 716 + 193.
pub const POLL_WIRE_BYTES: f64 = POLL_REQUEST_WIRE_BYTES + POLL_RESPONSE_WIRE_BYTES;
/// WebSocket overhead per message: the 2-byte header of one small server→client frame
/// (RFC 6455 §5.2: payload ≤ 125 bytes, no mask from server to client).
pub const WEBSOCKET_BYTES: f64 = 2.0;

/// The transport label of the header profile that sends exactly the article's example request
/// and response headers.
pub const PROFILE_LABEL: &str = "http-poll(websocket-org-2010)";
/// The same headers polled over HTTP/2, where HPACK compresses them.
pub const PROFILE_LABEL_H2: &str = "http-poll(websocket-org-2010,h2)";

/// One transport's bandwidth in a use case, from the article's table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bandwidth {
    /// Overhead bytes per message × clients × 8, bit/s (one message per client per second).
    pub bps: f64,
    /// The article's own "Mbps", as it prints it: bit/s ÷ 2^20, not 10^6.
    pub mbps: &'static str,
}

/// One of the article's use cases: every client receives one message per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UseCase {
    /// "Use Case A", "B" or "C" in the article's chart.
    pub letter: char,
    /// The scenario (`scenarios/use-case-*.toml`) that reproduces it.
    pub scenario: &'static str,
    pub clients: u64,
    /// 871 B per message.
    pub polling: Bandwidth,
    /// 2 B per message.
    pub websocket: Bandwidth,
}

/// Use cases A–C in the article's order, with its "Bits per second" chart's values.
pub const USE_CASES: [UseCase; 3] = [
    UseCase {
        letter: 'A',
        scenario: "use-case-a",
        clients: 1_000,
        polling: Bandwidth {
            bps: 6_968_000.0,
            mbps: "6.6",
        },
        websocket: Bandwidth {
            bps: 16_000.0,
            mbps: "0.015",
        },
    },
    UseCase {
        letter: 'B',
        scenario: "use-case-b",
        clients: 10_000,
        polling: Bandwidth {
            bps: 69_680_000.0,
            mbps: "66",
        },
        websocket: Bandwidth {
            bps: 160_000.0,
            mbps: "0.153",
        },
    },
    UseCase {
        letter: 'C',
        scenario: "use-case-c",
        clients: 100_000,
        polling: Bandwidth {
            bps: 696_800_000.0,
            mbps: "665",
        },
        websocket: Bandwidth {
            bps: 1_600_000.0,
            mbps: "1.526",
        },
    },
];

/// The use case a scenario reproduces, by its name.
pub fn use_case(scenario: &str) -> Option<&'static UseCase> {
    USE_CASES.iter().find(|u| u.scenario == scenario)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bandwidths_are_the_overheads_times_the_clients() {
        for u in &USE_CASES {
            let clients = u.clients as f64;
            assert_eq!(u.polling.bps, POLL_BYTES * clients * 8.0, "{}", u.letter);
            assert_eq!(
                u.websocket.bps,
                WEBSOCKET_BYTES * clients * 8.0,
                "{}",
                u.letter
            );
        }
        assert_eq!(POLL_WIRE_BYTES, 909.0);
    }

    #[test]
    fn the_articles_mbps_divide_by_two_to_the_twentieth() {
        for u in &USE_CASES {
            for side in [u.polling, u.websocket] {
                let printed: f64 = side.mbps.parse().unwrap();
                let mbps = side.bps / f64::from(1 << 20);
                // The article cuts to two or three digits ("6.6" for 6.645, "665" for 664.5).
                assert!(((mbps - printed) / mbps).abs() < 0.02, "{}", u.letter);
            }
        }
    }
}
