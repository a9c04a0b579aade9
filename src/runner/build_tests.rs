//! Fast tests of the result builder: hand-made counts in, exact figures out.

use std::time::Duration;

use super::*;
use crate::fleet::FleetOutcome;
use crate::plan::{
    HttpVersion, LastWillPlan, MqttClient, MqttOver, MqttPlan, MqttVersion, TargetPlan, WillCut,
};
use crate::stats::{DeliveryCounts, new_histogram, record_latency};
use crate::wire::WireCounts;

/// 10 clients, 10 messages/s: 5 warm-up (0..=4) and 10 measured (5..=14) messages.
fn plan() -> Plan {
    Plan {
        name: "unit".into(),
        description: String::new(),
        clients: 10,
        channels: 1,
        connect_rate_per_s: 1000.0,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs(1),
        drain: Duration::from_secs(1),
        message_rate_per_s: 10.0,
        payload_bytes: 16,
        target: TargetPlan::Embedded,
        transports: vec![
            TransportPlan::Websocket {
                read_buffer_bytes: 4096,
                ping: None,
            }
            .into(),
        ],
        thresholds: Vec::new(),
        project_rate_per_s: None,
        scale: Default::default(),
        network: None,
        adapter: Default::default(),
    }
}

const SEQS: MeasuredSeqs = MeasuredSeqs { first: 5, last: 14 };

/// Every client got every measured message in 18-byte frames, 1 ms late.
fn all_delivered() -> Merged {
    let mut latency = new_histogram();
    for _ in 0..100 {
        record_latency(&mut latency, 1_000);
    }
    let mut fleet = Merged::new(latency);
    fleet.outcome = FleetOutcome {
        delivery: DeliveryCounts {
            expected: 100,
            delivered: 100,
            ..DeliveryCounts::default()
        },
        setup: WireCounts {
            sent: 2_000,
            received: 1_500,
            ..WireCounts::default()
        },
        clients_connected: 10,
        window_wire: WireCounts {
            received: 1_800,
            ..WireCounts::default()
        },
        total_wire: WireCounts::default(),
        window_messages: 100,
        window_exchanges: 100,
        ..FleetOutcome::default()
    };
    fleet.counts.connected = 10;
    fleet
}

fn on_time() -> PublishOutcome {
    PublishOutcome {
        published: 15,
        achieved_rate_per_s: 10.0,
        window: Some(Duration::from_secs(1)),
        highest_attempted: Some(14),
        last_ok_at: Some(Duration::from_millis(1400)),
        ..PublishOutcome::default()
    }
}

fn measured(fleet: Merged, stimulus: Stimulus, due_through: u64) -> Measured {
    Measured {
        seqs: SEQS,
        due_through,
        fleet,
        stimulus,
        connect_s: 0.1,
        hub: None,
        exited_shards: Vec::new(),
        complete: true,
        endpoints: 1,
    }
}

fn build(m: &Measured, transport: &TransportPlan) -> RunResult {
    let cost = Cost {
        fleet_cpu_s: 0.5,
        ..Cost::default()
    };
    build_result(
        &plan(),
        &transport.clone().into(),
        "embedded".into(),
        String::new(),
        m,
        &cost,
    )
    .unwrap()
}

fn websocket() -> TransportPlan {
    plan().transports[0].transport.clone()
}

#[test]
fn a_complete_stream_gives_exact_per_message_figures() {
    let m = measured(all_delivered(), Stimulus::Stream(on_time()), SEQS.last);
    let r = build(&m, &websocket());
    assert_eq!(
        (r.messages_expected, r.messages_delivered, r.lost),
        (100, 100, 0)
    );
    assert_eq!(r.bytes_per_message, 18.0);
    assert_eq!(r.overhead_bytes_per_message, 2.0);
    assert_eq!(r.setup_bytes_per_client, 350.0);
    assert_eq!(r.bandwidth_bps, 14_400.0);
    assert_eq!(r.latency_p50_us, Some(1_000));
    assert_eq!(r.fleet_cpu_us_per_message, 5_000.0);
    assert!(r.target_cpu_s.is_none() && r.target_cpu_us_per_message.is_nan());
    assert!(!r.saturated && r.fault.is_empty());
}

#[test]
fn header_bytes_are_per_poll_and_only_measured_for_http() {
    let mut fleet = all_delivered();
    fleet.outcome.window_wire.request_header_bytes = 4_000;
    fleet.outcome.window_wire.response_header_bytes = 6_000;
    let m = measured(fleet, Stimulus::Stream(on_time()), SEQS.last);
    let poll = TransportPlan::HttpPoll {
        interval: Duration::from_millis(100),
        headers: crate::profile::HeaderProfile::Minimal,
        http: HttpVersion::Http2,
    };
    let r = build(&m, &poll);
    assert_eq!(r.request_header_bytes_per_exchange, 40.0);
    assert_eq!(r.response_header_bytes_per_exchange, 60.0);
    let r = build(&m, &websocket());
    assert!(r.request_header_bytes_per_exchange.is_nan());
    assert!(r.response_header_bytes_per_exchange.is_nan());
}

#[test]
fn a_run_that_delivered_nothing_measures_no_latency_and_no_bytes_per_message() {
    let mut fleet = Merged::new(new_histogram());
    fleet.counts.connected = 10;
    fleet.outcome.clients_connected = 10;
    let r = build(
        &measured(fleet, Stimulus::Stream(on_time()), SEQS.last),
        &websocket(),
    );
    assert_eq!((r.messages_expected, r.lost), (100, 100));
    assert_eq!(r.latency_p50_us, None);
    assert_eq!(r.latency_max_us, None);
    assert!(r.latency_mean_us.is_nan());
    assert!(r.bytes_per_message.is_nan() && r.fleet_cpu_us_per_message.is_nan());
    assert!(
        !r.saturated,
        "no latency is not a latency over the interval"
    );
}

#[test]
fn an_interrupted_run_expects_what_was_due() {
    let mut m = measured(all_delivered(), Stimulus::Stream(on_time()), 8);
    m.complete = false;
    let r = build(&m, &websocket());
    assert_eq!(r.messages_expected, 10 * 4, "seqs 5..=8 were due");
    assert!(!r.complete);
}

#[test]
fn saturation_is_the_publisher_the_pollers_or_the_median_falling_behind() {
    let slow = PublishOutcome {
        achieved_rate_per_s: 9.4,
        ..on_time()
    };
    let r = build(
        &measured(all_delivered(), Stimulus::Stream(slow), SEQS.last),
        &websocket(),
    );
    assert!(r.saturated, "9.4/s of 10/s is under 95%");

    let mut behind = all_delivered();
    behind.latency = new_histogram();
    for _ in 0..100 {
        record_latency(&mut behind.latency, 150_000);
    }
    let r = build(
        &measured(behind, Stimulus::Stream(on_time()), SEQS.last),
        &websocket(),
    );
    assert!(r.saturated, "a 150 ms median is over the 100 ms interval");

    let poll = TransportPlan::HttpPoll {
        http: HttpVersion::Http11,
        interval: Duration::from_millis(100),
        headers: crate::profile::HeaderProfile::Minimal,
    };
    let mut few_polls = all_delivered();
    few_polls.outcome.window_exchanges = 90;
    let r = build(
        &measured(few_polls, Stimulus::Stream(on_time()), SEQS.last),
        &poll,
    );
    assert_eq!(r.exchanges_per_client_per_s, 9.0);
    assert!(r.saturated, "9 polls/s of 10/s is under 95%");
}

#[test]
fn a_dead_target_is_a_fault_not_saturation() {
    let dead = PublishOutcome {
        published: 5,
        errors: 10,
        achieved_rate_per_s: 2.8,
        first_error_at: Some(Duration::from_millis(510)),
        last_ok_at: Some(Duration::from_millis(400)),
        ended_failing: true,
        ..on_time()
    };
    let mut fleet = all_delivered();
    fleet.counts.disconnects = 10;
    fleet.counts.connect_failures = 240;
    let r = build(
        &measured(fleet, Stimulus::Stream(dead), SEQS.last),
        &websocket(),
    );
    assert_eq!(
        r.fault,
        "target stopped answering 0.4 s into publishing: 10 of 15 publishes failed \
         (the first 0.5 s into publishing), 10 connections broke, 240 connects failed"
    );
    assert!(!r.saturated);
}

#[test]
fn publishes_a_scheduled_restart_refused_are_no_fault_and_one_more_is() {
    let restarted = PublishOutcome {
        published: 100,
        errors: 2,
        scheduled_errors: 2,
        first_error_at: Some(Duration::from_millis(2000)),
        ..on_time()
    };
    let build_with = |outcome: PublishOutcome| {
        build(
            &measured(all_delivered(), Stimulus::Stream(outcome), SEQS.last),
            &websocket(),
        )
    };
    let r = build_with(restarted.clone());
    assert_eq!((r.fault.as_str(), r.publish_errors), ("", 2));
    let r = build_with(PublishOutcome {
        errors: 3,
        ..restarted.clone()
    });
    assert!(
        r.fault.starts_with("3 of 103 publishes failed"),
        "{}",
        r.fault
    );
    // An MQTT publisher's connection that the restart broke is no fault; one more break is.
    let broken = |n| PublishOutcome {
        connections_broken: n,
        scheduled_broken: 1,
        ..restarted.clone()
    };
    assert_eq!(build_with(broken(1)).fault, "");
    let r = build_with(broken(2));
    assert!(
        r.fault
            .contains("closed the publisher's connection 2 times"),
        "{}",
        r.fault
    );
}

#[test]
fn a_last_will_run_measures_wills_and_nothing_of_a_stream() {
    let mut latency = new_histogram();
    record_latency(&mut latency, 4_000_000);
    let wills = Wills {
        expected: 10,
        delivered: 9,
        duplicated: 0,
        latency,
        bound: Duration::from_millis(7_500),
        waited: Duration::from_secs(9),
    };
    let transport = TransportPlan::Mqtt(MqttPlan {
        qos: 1,
        version: MqttVersion::V311,
        over: MqttOver::Tcp,
        topic: "bench/{channel}".into(),
        keep_alive: Duration::from_secs(5),
        clean_session: true,
        retain: false,
        inflight: 10,
        client: MqttClient::Rumqttc,
        last_will: Some(LastWillPlan {
            topic: "will/{client}".into(),
            cut: WillCut::Silence,
        }),
    });
    let r = build(
        &measured(all_delivered(), Stimulus::Wills(wills), SEQS.last),
        &transport,
    );
    assert_eq!(
        (r.messages_expected, r.messages_delivered, r.lost),
        (10, 9, 1)
    );
    assert_eq!(r.will_expected_within_us, Some(7_500_000));
    // Within the histogram's three significant digits.
    assert!(
        r.latency_max_us
            .is_some_and(|us| us.abs_diff(4_000_000) < 4_000)
    );
    for (name, value) in [
        ("bytes_per_message", r.bytes_per_message),
        ("bandwidth_bps", r.bandwidth_bps),
        (
            "publish_rate_requested_per_s",
            r.publish_rate_requested_per_s,
        ),
        ("publish_rate_achieved_per_s", r.publish_rate_achieved_per_s),
        ("fleet_cpu_us_per_message", r.fleet_cpu_us_per_message),
        ("target_cpu_us_per_message", r.target_cpu_us_per_message),
    ] {
        assert!(value.is_nan(), "{name} is {value}, not 'not measured'");
    }
    assert_eq!(r.fleet_cpu_s, 0.5, "the cost is measured all the same");
    assert!(!r.saturated);
}

#[test]
fn a_lower_granted_qos_shows_in_the_label() {
    let mut fleet = all_delivered();
    fleet.outcome.granted_qos1 = 10;
    let transport = TransportPlan::Mqtt(MqttPlan {
        qos: 2,
        version: MqttVersion::V311,
        over: MqttOver::Tcp,
        topic: "bench/{channel}".into(),
        keep_alive: Duration::from_secs(60),
        clean_session: true,
        retain: false,
        inflight: 10,
        client: MqttClient::Rumqttc,
        last_will: None,
    });
    let r = build(
        &measured(fleet, Stimulus::Stream(on_time()), SEQS.last),
        &transport,
    );
    assert_eq!(r.qos_granted, Some(1));
    assert_eq!(r.transport, "mqtt(qos2→1,tcp)");
}

#[test]
fn a_saturated_run_names_the_fleet_when_it_had_the_machine() {
    let slow = || PublishOutcome {
        achieved_rate_per_s: 9.0,
        ..on_time()
    };
    let m = measured(all_delivered(), Stimulus::Stream(slow()), SEQS.last);
    let cores = 2.0;
    let result = |fleet_cores: f64, target_cores: f64| {
        let cost = Cost {
            fleet_cpu_s: fleet_cores * 10.0,
            target_shard_cpu_s: vec![target_cores * 10.0],
            target_shard_peak_rss_bytes: vec![1],
            wall_s: 10.0,
            machine_cores: 2,
            ..Cost::default()
        };
        build_result(
            &plan(),
            &websocket().into(),
            "embedded".into(),
            String::new(),
            &m,
            &cost,
        )
        .unwrap()
    };
    let r = result(0.7 * cores, 0.25 * cores);
    assert!(r.saturated && r.fleet_saturated, "{r:?}");
    assert_eq!(r.fleet_cpu_cores, 0.7 * cores);
    let r = result(0.3 * cores, 0.65 * cores);
    assert!(
        r.saturated && !r.fleet_saturated,
        "the target had more of the machine"
    );
    let r = result(0.5 * cores, 0.2 * cores);
    assert!(r.saturated && !r.fleet_saturated, "the cores were not busy");
    let held = measured(all_delivered(), Stimulus::Stream(on_time()), SEQS.last);
    let cost = Cost {
        fleet_cpu_s: cores * 10.0,
        wall_s: 10.0,
        ..Cost::default()
    };
    let r = build_result(
        &plan(),
        &websocket().into(),
        "e".into(),
        String::new(),
        &held,
        &cost,
    )
    .unwrap();
    assert!(
        !r.fleet_saturated,
        "a run that held its rate is not saturated at all"
    );
}

/// The connect phase's figures: connections made over its seconds, and each side's CPU per
/// connection; the target's stays empty where its CPU is not measured.
#[test]
fn the_connect_phase_gives_connects_per_second_and_cpu_per_connection() {
    let m = measured(all_delivered(), Stimulus::Stream(on_time()), SEQS.last);
    let mut cost = Cost {
        connect: ConnectCost {
            connections: 10,
            fleet_cpu_s: 0.004,
            target_cpu_s: None,
        },
        ..Cost::default()
    };
    let run: RunPlan = websocket().into();
    let r = build_result(&plan(), &run, "e".into(), String::new(), &m, &cost).unwrap();
    assert_eq!(r.connects_per_s, 100.0, "10 connections in 0.1 s");
    assert_eq!(r.fleet_connect_cpu_us_per_connection, Some(400.0));
    assert_eq!(r.target_connect_cpu_us_per_connection, None);
    cost.connect.target_cpu_s = Some(0.002);
    let r = build_result(&plan(), &run, "e".into(), String::new(), &m, &cost).unwrap();
    assert_eq!(r.target_connect_cpu_us_per_connection, Some(200.0));
    cost.connect.connections = 0;
    let r = build_result(&plan(), &run, "e".into(), String::new(), &m, &cost).unwrap();
    assert_eq!(r.connects_per_s, 0.0);
    assert_eq!(r.fleet_connect_cpu_us_per_connection, None);
}

/// What delivering cost apart from connecting: the run's CPU less the connect phase's, per
/// message delivered (warm-up included), as the floor counts it; the target's only where both
/// its run and its connect phase were measured.
#[test]
fn delivery_cpu_leaves_the_connect_phase_out() {
    let mut fleet = all_delivered();
    fleet.counts.delivered = 125; // the 100 measured and 25 of warm-up
    let m = measured(fleet, Stimulus::Stream(on_time()), SEQS.last);
    let mut cost = Cost {
        fleet_cpu_s: 0.5,
        target_shard_cpu_s: vec![0.2, 0.1],
        connect: ConnectCost {
            connections: 10,
            fleet_cpu_s: 0.4,
            target_cpu_s: None,
        },
        ..Cost::default()
    };
    let run: RunPlan = websocket().into();
    let r = build_result(&plan(), &run, "e".into(), String::new(), &m, &cost).unwrap();
    assert_eq!(r.messages_delivered, 100);
    assert_eq!(r.fleet_cpu_us_per_message, 5_000.0);
    assert!((r.fleet_delivery_cpu_us_per_message - 800.0).abs() < 1e-6);
    assert!(r.target_delivery_cpu_us_per_message.is_nan());
    cost.connect.target_cpu_s = Some(0.25);
    let r = build_result(&plan(), &run, "e".into(), String::new(), &m, &cost).unwrap();
    assert!((r.target_cpu_us_per_message - 3_000.0).abs() < 1e-6);
    assert!((r.target_delivery_cpu_us_per_message - 400.0).abs() < 1e-6);
}
