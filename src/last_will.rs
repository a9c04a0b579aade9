//! The MQTT Last Will and Testament run: clients connect with a will, are cut off at a known
//! moment without DISCONNECT, and a watcher subscriber measures how many wills the broker
//! publishes and how long after the cut.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::observe::{Observer, Phase};
use crate::plan::{LastWillPlan, MqttPlan, Plan, TransportPlan, WillCut};
use crate::result::RunResult;
use crate::stats::{self, Percentiles, per};
use crate::sys;
use crate::targets::RunningTarget;
use crate::transport::mqtt::{self, Mqtt};
use crate::transport::{ClientSpec, Received, Transport};
use crate::wire::WireCounts;

/// A broker drops a silent client after 1.5 times its keep-alive (MQTT 3.1.1 §3.1.2.10).
pub fn expiry(keep_alive: Duration) -> Duration {
    keep_alive.mul_f64(1.5)
}

/// What the watcher saw.
struct Wills {
    distinct: HashSet<String>,
    duplicated: u64,
    latency: hdrhistogram::Histogram<u64>,
}

/// Runs the Last Will test of `mqtt` against the already started `target`.
pub async fn run(
    plan: &Plan,
    transport: &TransportPlan,
    mqtt_plan: &MqttPlan,
    will: &LastWillPlan,
    target: RunningTarget,
    stop: CancellationToken,
    observer: &dyn Observer,
) -> anyhow::Result<RunResult> {
    let label = transport.label();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let endpoint = Arc::clone(&target.endpoints[0]);
    let run_id: u32 = rand::random();
    let (cpu_start, rss_start) = (sys::own_cpu_s(), sys::reset_own_peak_rss());
    let target_cpu_start = target.cost().map(|c| c.0);

    let watch_topic = will.topic.replace("{client}", "+");
    let watcher_options = mqtt::options(
        &format!("pb-will-watch-{run_id:08x}"),
        &endpoint,
        mqtt_plan,
        None,
    );
    let mut watcher =
        Mqtt::subscribe(watcher_options, endpoint.addr, &watch_topic, mqtt_plan.qos).await?;

    observer.phase(&label, Phase::Connecting, u64::from(plan.clients));
    let connect_start = tokio::time::Instant::now();
    let plan_arc = Arc::new(transport.clone());
    let pace = Duration::from_secs_f64(1.0 / plan.connect_rate_per_s);
    let mut clients = Vec::new();
    let (mut failures, mut setup) = (0u64, WireCounts::default());
    for i in 0..plan.clients as usize {
        if stop.is_cancelled() {
            break;
        }
        let spec = ClientSpec {
            endpoint: Arc::clone(&endpoint),
            channel: (i % plan.channels as usize).to_string(),
            plan: Arc::clone(&plan_arc),
            index: i,
            client_id: format!("pb-{run_id:08x}-{i}"),
        };
        let next = tokio::time::Instant::now() + pace;
        match Mqtt::connect(&spec).await {
            Ok(client) => {
                setup = setup + client.wire();
                clients.push(client);
            }
            Err(_) => failures += 1,
        }
        observer.update(
            clients.len() as u64,
            &format!("{failures} connect failures"),
        );
        tokio::time::sleep_until(next).await;
    }
    let connect_s = connect_start.elapsed().as_secs_f64();
    let connected = clients.len() as u64;

    // Keep the clients alive (answering pings) through the warm-up, then cut them.
    let cut = CancellationToken::new();
    let mut alive = JoinSet::new();
    for mut client in clients {
        let cut = cut.clone();
        alive.spawn(async move {
            loop {
                tokio::select! {
                    _ = cut.cancelled() => return Some(client),
                    polled = client.poll() => if polled.is_err() { return None },
                }
            }
        });
    }
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(plan.warmup) => {}
    }
    let cut_at = SystemTime::now();
    cut.cancel();
    // `Close` drops the clients (the socket closes, no DISCONNECT); `Silence` keeps them
    // open but mute until the run ends, so only the broker's keep-alive can notice.
    let mut silent = Vec::new();
    while let Some(joined) = alive.join_next().await {
        if let Ok(Some(client)) = joined
            && will.cut == WillCut::Silence
        {
            silent.push(client);
        }
    }

    let bound = match will.cut {
        WillCut::Silence => expiry(mqtt_plan.keep_alive),
        WillCut::Close => Duration::ZERO,
    };
    observer.phase(&label, Phase::Draining, connected);
    let wait = plan.duration.max(bound + plan.drain);
    let wills = watch(&mut watcher, connected, cut_at, wait, &stop, observer).await;
    drop(silent);
    observer.done();

    let target_cost = target.cost();
    let target_label = target.label.clone();
    target.stop().await;
    let peak = sys::peak_rss_bytes("self").unwrap_or(0);
    let latency = Percentiles::of(&wills.latency);
    let delivered = wills.distinct.len() as u64;
    Ok(RunResult {
        scenario: plan.name.clone(),
        transport: label,
        transport_kind: transport.kind().to_string(),
        target: target_label,
        started_at,
        complete: !stop.is_cancelled(),
        clients: u64::from(plan.clients),
        channels: u64::from(plan.channels),
        payload_bytes: 0,
        messages_expected: connected,
        messages_delivered: delivered,
        lost: connected.saturating_sub(delivered),
        duplicated: wills.duplicated,
        clients_with_loss: connected.saturating_sub(delivered),
        delivery_ratio: per(delivered as f64, connected as f64),
        bytes_per_message: f64::NAN,
        overhead_bytes_per_message: f64::NAN,
        ip_bytes_per_message: f64::NAN,
        kernel_bytes_per_message: f64::NAN,
        bandwidth_bps: f64::NAN,
        ip_bandwidth_bps: f64::NAN,
        exchanges_per_client_per_s: f64::NAN,
        setup_bytes_per_client: per(setup.total() as f64, connected as f64),
        setup_ip_bytes_per_client: per(setup.ip_bytes as f64, connected as f64),
        latency_p50_us: latency.map(|p| p.p50),
        latency_p90_us: latency.map(|p| p.p90),
        latency_p99_us: latency.map(|p| p.p99),
        latency_p999_us: latency.map(|p| p.p999),
        latency_max_us: latency.map(|p| p.max),
        latency_mean_us: latency.map_or(f64::NAN, |p| p.mean),
        latency_histogram: stats::encode_histogram(&wills.latency)?,
        will_expected_within_us: Some(bound.as_micros() as u64),
        clients_connected: connected,
        connect_failures: failures,
        connect_s,
        window_s: wait.as_secs_f64(),
        fleet_cpu_s: sys::own_cpu_s() - cpu_start,
        fleet_peak_rss_bytes: peak,
        fleet_rss_bytes_per_client: per(
            peak.saturating_sub(rss_start) as f64,
            f64::from(plan.clients),
        ),
        target_cpu_s: target_cost
            .zip(target_cpu_start)
            .map(|((end, _), start)| end - start),
        target_peak_rss_bytes: target_cost.map(|c| c.1),
        ..RunResult::default()
    })
}

/// Collects wills until every connected client's has arrived or `wait` is over.
async fn watch(
    watcher: &mut Mqtt,
    expected: u64,
    cut_at: SystemTime,
    wait: Duration,
    stop: &CancellationToken,
    observer: &dyn Observer,
) -> Wills {
    let mut wills = Wills {
        distinct: HashSet::new(),
        duplicated: 0,
        latency: stats::new_histogram(),
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut received: Vec<Received> = Vec::new();
    while (wills.distinct.len() as u64) < expected {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => break,
            step = watcher.next(&mut received) => if step.is_err() { break },
        }
        for will in received.drain(..) {
            let client = String::from_utf8_lossy(&will.payload).into_owned();
            let after = will.at.duration_since(cut_at).unwrap_or_default();
            stats::record_latency(&mut wills.latency, after.as_micros() as u64);
            if !wills.distinct.insert(client) {
                wills.duplicated += 1;
            }
        }
        observer.update(wills.distinct.len() as u64, "wills received");
    }
    wills
}
