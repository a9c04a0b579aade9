//! The link checks itself: what the target's TCP connections saw of it, from the kernel's
//! own per-socket figures (`ss -ti`, i.e. `TCP_INFO` of every socket in the target's
//! namespace), to stand beside the configured conditions.

use serde::{Deserialize, Serialize};

use super::command::{Cmd, LinkError};

/// The target side's TCP view of the link, over its established connections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpHealth {
    pub connections: u64,
    /// Median over connections of the kernel's smoothed RTT, ms.
    pub rtt_p50_ms: Option<f64>,
    /// Median of each connection's lowest RTT seen, ms (what queueing did not add).
    pub min_rtt_p50_ms: Option<f64>,
    pub segments_out: u64,
    /// Segments sent again (the total of `retrans:N/TOTAL`).
    pub segments_retransmitted: u64,
}

impl TcpHealth {
    /// Retransmitted ÷ sent segments; `None` when nothing was sent.
    pub fn retrans_ratio(&self) -> Option<f64> {
        (self.segments_out > 0)
            .then(|| self.segments_retransmitted as f64 / self.segments_out as f64)
    }
}

/// Reads every established TCP socket of namespace `netns`.
pub fn tcp_health(netns: &str) -> Result<TcpHealth, LinkError> {
    let out = Cmd::new("ss", &["-tinH", "state", "established"])
        .within(netns)
        .run()?;
    Ok(parse(&out))
}

/// `ss -tinH` prints each socket as an address line followed by an indented detail line.
fn parse(ss: &str) -> TcpHealth {
    let mut health = TcpHealth::default();
    let (mut rtts, mut min_rtts) = (Vec::new(), Vec::new());
    for line in ss.lines().filter(|l| l.starts_with(char::is_whitespace)) {
        health.connections += 1;
        for word in line.split_whitespace() {
            if let Some(v) = word.strip_prefix("rtt:") {
                rtts.extend(v.split('/').next().and_then(|x| x.parse::<f64>().ok()));
            } else if let Some(v) = word.strip_prefix("minrtt:") {
                min_rtts.extend(v.parse::<f64>().ok());
            } else if let Some(v) = word.strip_prefix("segs_out:") {
                health.segments_out += v.parse::<u64>().unwrap_or(0);
            } else if let Some(v) = word.strip_prefix("retrans:") {
                let total = v.rsplit('/').next().and_then(|x| x.parse::<u64>().ok());
                health.segments_retransmitted += total.unwrap_or(0);
            }
        }
    }
    health.rtt_p50_ms = median(&mut rtts);
    health.min_rtt_p50_ms = median(&mut min_rtts);
    health
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_figures_add_up_and_rtts_take_the_median() {
        let ss = "0 0 10.222.0.2:80 10.223.0.1:5000\n\t cubic rto:304 rtt:101.5/2.1 \
                  mss:1448 segs_out:40 segs_in:30 retrans:0/2 minrtt:100.2\n\
                  0 0 10.222.0.2:80 10.223.0.1:5001\n\t cubic rtt:103/1 segs_out:10 \
                  minrtt:100.4\n\
                  0 0 10.222.0.2:80 10.223.0.1:5002\n\t cubic rtt:150/9 segs_out:50 \
                  retrans:1/3 minrtt:100.9\n";
        let h = parse(ss);
        assert_eq!(h.connections, 3);
        assert_eq!(h.rtt_p50_ms, Some(103.0));
        assert_eq!(h.min_rtt_p50_ms, Some(100.4));
        assert_eq!((h.segments_out, h.segments_retransmitted), (100, 5));
        assert_eq!(h.retrans_ratio(), Some(0.05));
    }
}
