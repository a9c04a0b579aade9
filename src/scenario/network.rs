//! `[network]` and `[[faults]]`: the link's conditions (a named profile, then fields that
//! apply to both directions, then `[network.up]` / `[network.down]` for one of them) and the
//! faults scheduled during the run.

use std::time::Duration;

use super::Result;
use super::source::{Item, Section, Zero};
use crate::link::conditions::{self, PROFILES};
use crate::link::{Conditions, Direction};
use crate::plan::{FaultKind, FaultPlan, NetworkPlan};

const NETWORK_FIELDS: &[&str] = &[
    "profile", "delay", "jitter", "loss", "reorder", "rate", "up", "down", "serve",
];
const DIRECTION_FIELDS: &[&str] = &["delay", "jitter", "loss", "reorder", "rate"];
const FAULT_FIELDS: &[&str] = &["kind", "at", "duration"];
const RATE_FORMS: &str = "a bit rate such as \"1mbit\", \"750kbit\" or \"10gbit\"";
const SHARE_FORMS: &str = "a percentage such as \"1%\" or \"0.5%\"";

/// `[network]` and `[[faults]]`; `None` when the scenario has neither.
/// `publishing` is how long the run publishes (warm-up and measured window): faults start
/// within it. `no_restart` says why the scenario's target cannot be restarted, if it cannot;
/// `external`: the target is a server of the user's, which `serve` starts behind the link.
pub(super) fn parse(
    root: &Section,
    publishing: Duration,
    no_restart: Option<&str>,
    external: bool,
) -> Result<Option<NetworkPlan>> {
    let faults = match root.get("faults") {
        Some(item) => faults(&item, publishing, no_restart)?,
        None => Vec::new(),
    };
    let Some(item) = root.get("network") else {
        if let Some(item) = root.get("faults") {
            return Err(item.key_error(
                "faults act on the link between fleet and target: add a [network] table \
                 (an empty one is a link with no delay, loss or rate limit)",
            ));
        }
        return Ok(None);
    };
    let section = item.table()?;
    section.reject_unknown(NETWORK_FIELDS)?;
    let mut c = match section.get("profile") {
        Some(item) => profile(&item)?,
        None => Conditions::default(),
    };
    apply(&section, &mut c.up)?;
    apply(&section, &mut c.down)?;
    for (key, way) in [("up", &mut c.up), ("down", &mut c.down)] {
        if let Some(item) = section.get(key) {
            let table = item.table()?;
            table.reject_unknown(DIRECTION_FIELDS)?;
            apply(&table, way)?;
        }
    }
    reorder_needs_a_delay(&section, &c)?;
    let serve = serve(&section, &item, external)?;
    Ok(Some(NetworkPlan {
        conditions: c,
        faults,
        serve,
    }))
}

/// A direction that lets packets skip its delay must have one (netem refuses it too).
fn reorder_needs_a_delay(section: &Section, c: &Conditions) -> Result<()> {
    for (key, way) in [("up", &c.up), ("down", &c.down)] {
        if way.reorder == 0.0 || !way.delay.is_zero() {
            continue;
        }
        let own = section
            .get(key)
            .and_then(|t| t.table().ok()?.get("reorder"));
        if let Some(item) = own.or_else(|| section.get("reorder")) {
            return Err(item.error(format!(
                "reorder lets packets skip the delay, and the {key} direction has none: \
                 add a delay"
            )));
        }
    }
    Ok(())
}

/// `serve`: the command that starts an external target inside the link's target namespace,
/// which only pushbench can reach (it is made afresh for every run).
fn serve(section: &Section, network: &Item, external: bool) -> Result<Option<String>> {
    match (section.get("serve"), external) {
        (Some(item), true) => {
            let command = item.string("the command that starts the server, as one string")?;
            if command.trim().is_empty() {
                return Err(item.error("an empty command starts no server"));
            }
            Ok(Some(command.to_string()))
        }
        (Some(item), false) => Err(item.key_error(
            "`serve` starts an external server (target.kind = \"external\") behind the link; \
             the embedded target is started there by pushbench itself",
        )),
        (None, true) => Err(network.key_error(
            "an external target behind the link must be started inside the link's namespace, \
             which each run makes afresh: give network.serve = \"COMMAND\" (run there as \
             `sh -c`, listening on every address at the ports of target.urls), or hold a \
             link with `pushbench link up` and point a scenario without [network] at it",
        )),
        (None, false) => Ok(None),
    }
}

fn profile(item: &Item) -> Result<Conditions> {
    let names: Vec<String> = PROFILES.iter().map(|p| format!("{:?}", p.name)).collect();
    let name = item.string("a profile name")?;
    conditions::profile(name)
        .map(|p| (p.conditions)())
        .ok_or_else(|| {
            item.error(format!(
                "unknown network profile {name:?}: expected one of {}",
                names.join(", ")
            ))
        })
}

/// The fields of `section` that are present, over what `way` already has.
fn apply(section: &Section, way: &mut Direction) -> Result<()> {
    if let Some(item) = section.get("delay") {
        way.delay = item.duration(Zero::Allowed)?;
    }
    if let Some(item) = section.get("jitter") {
        way.jitter = item.duration(Zero::Allowed)?;
    }
    if way.jitter > way.delay
        && let Some(item) = section.get("jitter").or_else(|| section.get("delay"))
    {
        return Err(item.error(format!(
            "jitter ({}) is larger than the delay ({}): a packet's delay is delay ± jitter and \
             cannot be negative",
            humantime::format_duration(way.jitter),
            humantime::format_duration(way.delay)
        )));
    }
    if let Some(item) = section.get("loss") {
        way.loss = share(&item)?;
    }
    if let Some(item) = section.get("reorder") {
        way.reorder = share(&item)?;
    }

    if let Some(item) = section.get("rate") {
        way.rate_bps = Some(bit_rate(&item)?);
    }
    Ok(())
}

/// `"2%"` → 0.02: a loss or a reorder share.
fn share(item: &Item) -> Result<f64> {
    let text = item.string(SHARE_FORMS)?;
    text.trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|p| (0.0..=100.0).contains(p))
        .map(|p| p / 100.0)
        .ok_or_else(|| {
            item.error(format!(
                "{text:?} is not a share of packets: expected {SHARE_FORMS}, from 0% to 100%"
            ))
        })
}

/// `"1mbit"`, `"750kbit"`, `"1.6Mbit/s"` → bit/s.
fn bit_rate(item: &Item) -> Result<u64> {
    let text = item.string(RATE_FORMS)?;
    parse_bit_rate(text)
        .ok_or_else(|| item.error(format!("{text:?} is not a bit rate: expected {RATE_FORMS}")))
}

fn parse_bit_rate(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let unit_at = lower.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = lower.split_at(unit_at);
    let scale = match unit.trim_end_matches("/s").trim_end_matches("ps") {
        "bit" | "b" => 1.0,
        "kbit" | "kb" => 1e3,
        "mbit" | "mb" => 1e6,
        "gbit" | "gb" => 1e9,
        _ => return None,
    };
    let bps = number.trim().parse::<f64>().ok()? * scale;
    // tbf and netem take at least 8 bit/s; below a few kbit/s not even a TCP handshake fits.
    (bps.is_finite() && bps >= 1000.0).then_some(bps.round() as u64)
}

/// `[[faults]]`, sorted by time.
fn faults(item: &Item, publishing: Duration, no_restart: Option<&str>) -> Result<Vec<FaultPlan>> {
    let list = item.array("an array of tables, written as [[faults]] sections")?;
    let mut faults = list
        .iter()
        .enumerate()
        .map(|(i, value)| fault(&item.element(i, value).table()?, publishing, no_restart))
        .collect::<Result<Vec<_>>>()?;
    faults.sort_by_key(|f| f.at);
    Ok(faults)
}

fn fault(section: &Section, publishing: Duration, no_restart: Option<&str>) -> Result<FaultPlan> {
    section.reject_unknown(FAULT_FIELDS)?;
    let kinds = [
        ("blackhole", Some(true)),
        ("cut", Some(false)),
        ("restart", None),
    ];
    let kind_item = section.required("kind", "\"blackhole\", \"cut\" or \"restart\"")?;
    let Some(blackhole) = kind_item.choice("fault kind", &kinds)? else {
        return restart(section, &kind_item, publishing, no_restart);
    };
    let at = start(section, publishing)?;
    let kind = match (blackhole, section.get("duration")) {
        (true, Some(item)) => FaultKind::Blackhole {
            duration: item.duration(Zero::Forbidden)?,
        },
        (true, None) => {
            return Err(section.missing(
                "duration",
                "how long the blackhole lasts, e.g. duration = \"10s\"",
            ));
        }
        (false, Some(item)) => {
            return Err(item.key_error(
                "a cut resets every connection at once and has no duration; \
                 remove `duration` or use kind = \"blackhole\"",
            ));
        }
        (false, None) => FaultKind::Cut,
    };
    Ok(FaultPlan { at, kind })
}

/// `at`: within publishing.
fn start(section: &Section, publishing: Duration) -> Result<Duration> {
    let at_item = section.required(
        "at",
        "when the fault starts, counted from the first publish, e.g. at = \"10s\"",
    )?;
    let at = at_item.duration(Zero::Allowed)?;
    if at >= publishing {
        return Err(at_item.error(format!(
            "the run publishes for {} (warmup + duration): a fault must start before that",
            humantime::format_duration(publishing)
        )));
    }
    Ok(at)
}

/// A `restart`: it lasts as long as the target takes to come back, so it has no duration.
fn restart(
    section: &Section,
    kind: &Item,
    publishing: Duration,
    no_restart: Option<&str>,
) -> Result<FaultPlan> {
    if let Some(why) = no_restart {
        return Err(kind.error(format!("kind = \"restart\" is not possible here: {why}")));
    }
    if let Some(item) = section.get("duration") {
        return Err(item.key_error(
            "a restart lasts until the target listens again and has no duration; remove \
             `duration`, or use kind = \"blackhole\" for an outage of a chosen length",
        ));
    }
    Ok(FaultPlan {
        at: start(section, publishing)?,
        kind: FaultKind::Restart,
    })
}

/// One line for `validate`: the conditions each way, the faults, and that it needs root.
pub(super) fn describe(plan: &NetworkPlan) -> String {
    let way = |d: &Direction| {
        let rate = d
            .rate_bps
            .map_or_else(|| "unlimited".to_string(), |r| format!("{r} bit/s"));
        let reorder = if d.reorder > 0.0 {
            format!(", reorder {}%", d.reorder * 100.0)
        } else {
            String::new()
        };
        format!(
            "delay {} ± {}, loss {}%{reorder}, rate {rate}",
            humantime::format_duration(d.delay),
            humantime::format_duration(d.jitter),
            d.loss * 100.0
        )
    };
    let c = &plan.conditions;
    let profile = c
        .profile
        .as_ref()
        .map_or_else(String::new, |p| format!("profile {p}; "));
    let faults: Vec<String> = plan
        .faults
        .iter()
        .map(|f| {
            let lasting = match f.kind.duration() {
                Duration::ZERO => String::new(),
                d => format!(" for {}", humantime::format_duration(d)),
            };
            format!(
                "{} at {}{lasting}",
                f.kind.name(),
                humantime::format_duration(f.at)
            )
        })
        .collect();
    format!(
        "needs root; {profile}up: {}; down: {}{}{}",
        way(&c.up),
        way(&c.down),
        if faults.is_empty() {
            String::new()
        } else {
            format!("; faults: {}", faults.join(", "))
        },
        plan.serve
            .as_ref()
            .map_or_else(String::new, |cmd| format!("; the target served by `{cmd}`"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "clients = 10\nduration = \"10s\"\nwarmup = \"2s\"\n\
                        [messages]\nrate = \"1/s\"\n[[transports]]\nkind = \"websocket\"\n";

    fn parse(extra: &str) -> std::result::Result<NetworkPlan, String> {
        crate::scenario::parse(&format!("{BASE}{extra}"), "t.toml")
            .map(|plan| plan.network.unwrap_or_default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_profile_is_the_start_and_direction_tables_override_it() {
        let n = parse(
            "[network]\nprofile = \"4g\"\nloss = \"1%\"\n[network.down]\ndelay = \"100ms\"\n",
        )
        .unwrap();
        let c = n.conditions;
        assert_eq!(c.profile.as_deref(), Some("4g"));
        assert_eq!(
            (c.up.delay, c.down.delay),
            (Duration::from_millis(75), Duration::from_millis(100))
        );
        assert_eq!((c.up.loss, c.down.loss), (0.01, 0.01));
        assert_eq!(c.up.rate_bps, Some(750_000));
    }

    #[test]
    fn errors_name_the_line_the_field_and_what_is_valid() {
        let e = parse("[network]\nprofile = \"5g\"\n").unwrap_err();
        assert!(e.starts_with("t.toml:9:11: `network.profile`:"), "{e}");
        assert!(
            e.contains("\"4g\", \"3g\", \"lossy-wifi\", \"satellite\""),
            "{e}"
        );
        let e = parse("[network]\nloss = \"0.02\"\n").unwrap_err();
        assert!(
            e.starts_with("t.toml:9:8: `network.loss`:") && e.contains("\"1%\""),
            "{e}"
        );
        let e = parse("[network]\nreorder = \"25%\"\n").unwrap_err();
        assert!(
            e.contains("network.reorder") && e.contains("add a delay"),
            "{e}"
        );
        let e = parse("[network.up]\ndelay = \"5ms\"\nreorder = \"125%\"\n").unwrap_err();
        assert!(
            e.contains("network.up.reorder") && e.contains("from 0% to 100%"),
            "{e}"
        );
        let n = parse("[network]\ndelay = \"5ms\"\n[network.down]\nreorder = \"25%\"\n").unwrap();
        assert_eq!(
            (n.conditions.up.reorder, n.conditions.down.reorder),
            (0.0, 0.25)
        );
        let e = parse("[network]\ndelay = \"5ms\"\njitter = \"10ms\"\n").unwrap_err();
        assert!(
            e.contains("network.jitter") && e.contains("larger than the delay"),
            "{e}"
        );
    }

    #[test]
    fn faults_need_a_link_a_duration_and_a_time_within_publishing() {
        let e = parse("[[faults]]\nkind = \"cut\"\nat = \"1s\"\n").unwrap_err();
        assert!(e.contains("add a [network] table"), "{e}");
        let e = parse("[network]\n[[faults]]\nkind = \"blackhole\"\nat = \"1s\"\n").unwrap_err();
        assert!(
            e.contains("faults[0].duration") && e.contains("missing"),
            "{e}"
        );
        let e = parse("[network]\n[[faults]]\nkind = \"cut\"\nat = \"12s\"\n").unwrap_err();
        assert!(e.contains("faults[0].at") && e.contains("12s"), "{e}");
        let n = parse(
            "[network]\n[[faults]]\nkind = \"blackhole\"\nat = \"5s\"\nduration = \"2s\"\n\
             [[faults]]\nkind = \"cut\"\nat = \"1s\"\n",
        )
        .unwrap();
        let kinds: Vec<&str> = n.faults.iter().map(|f| f.kind.name()).collect();
        assert_eq!(kinds, ["cut", "blackhole"]);
    }

    #[test]
    fn a_restart_has_no_duration_and_needs_the_embedded_target() {
        let n = parse("[network]\n[[faults]]\nkind = \"restart\"\nat = \"3s\"\n").unwrap();
        assert_eq!(n.faults[0].kind, FaultKind::Restart);
        let e =
            parse("[network]\n[[faults]]\nkind = \"restart\"\nat = \"3s\"\nduration = \"1s\"\n")
                .unwrap_err();
        assert!(
            e.contains("faults[0].duration") && e.contains("has no duration"),
            "{e}"
        );
        let mqtt = BASE.replace("\"websocket\"", "\"mqtt\"");
        let n = crate::scenario::parse(
            &format!("{mqtt}[network]\n[[faults]]\nkind = \"restart\"\nat = \"3s\"\n"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(n.network.unwrap().faults[0].kind, FaultKind::Restart);
        let e = crate::scenario::parse(
            &format!("{BASE}[tls]\n[network]\n[[faults]]\nkind = \"restart\"\nat = \"3s\"\n"),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`faults[0].kind`") && e.contains("new certificate"),
            "{e}"
        );
    }

    #[test]
    fn an_external_target_behind_the_link_is_served_there() {
        let external = "[target]\nkind = \"external\"\nurls = [\"mqtt://127.0.0.1:1883\"]\n";
        let mqtt = BASE.replace("\"websocket\"", "\"mqtt\"");
        let plan = |extra: &str| {
            crate::scenario::parse(&format!("{mqtt}{extra}"), "t.toml").map_err(|e| e.to_string())
        };
        let n = plan(&format!(
            "{external}[network]\nserve = \"mosquitto -c m.conf\"\n"
        ))
        .unwrap()
        .network
        .unwrap();
        assert_eq!(n.serve.as_deref(), Some("mosquitto -c m.conf"));
        assert!(describe(&n).ends_with("the target served by `mosquitto -c m.conf`"));
        let e = plan(&format!("{external}[network]\ndelay = \"5ms\"\n")).unwrap_err();
        assert!(
            e.contains("`network`") && e.contains("network.serve"),
            "{e}"
        );
        let e = plan("[network]\nserve = \"mosquitto\"\n").unwrap_err();
        assert!(
            e.contains("`network.serve`") && e.contains("kind = \"external\""),
            "{e}"
        );
    }

    #[test]
    fn bit_rates_read_in_their_units() {
        assert_eq!(parse_bit_rate("1mbit"), Some(1_000_000));
        assert_eq!(parse_bit_rate("750kbit"), Some(750_000));
        assert_eq!(parse_bit_rate("1.6Mbit/s"), Some(1_600_000));
        assert_eq!(parse_bit_rate("10 gbit"), Some(10_000_000_000));
        assert_eq!(parse_bit_rate("5 furlongs"), None);
        assert_eq!(parse_bit_rate("10bit"), None);
    }
}
