//! Scenario files: the shipped ones parse, and bad ones fail with a positioned, named error.

use std::path::Path;
use std::time::Duration;

use pushbench::plan::{
    HttpVersion, MqttClient, MqttOver, MqttPlan, MqttVersion, Plan, TargetPlan, TargetProcesses,
    TransportPlan,
};
use pushbench::profile::HeaderProfile;
use pushbench::scenario::{self, ScenarioError};

/// A valid scenario; tests append to it or replace one of its lines.
const BASE: &str = r#"clients = 10
duration = "3s"

[messages]
rate = "1/s"

[[transports]]
kind = "websocket"
"#;

fn parse(source: &str) -> Result<Plan, ScenarioError> {
    scenario::parse(source, "scenarios/test.toml")
}

/// Parses `source`, expecting an error at `line:column` on `field` whose text contains `needle`.
fn assert_error(source: &str, line: usize, column: usize, field: &str, needle: &str) {
    let error = match parse(source) {
        Ok(plan) => panic!("expected an error, got {plan:?}"),
        Err(error) => error,
    };
    let text = error.to_string();
    let position = format!("scenarios/test.toml:{line}:{column}: ");
    assert!(
        text.starts_with(&position),
        "expected {position:?} in:\n{text}"
    );
    if !field.is_empty() {
        assert!(
            text.contains(&format!("`{field}`")),
            "expected field {field:?} in:\n{text}"
        );
    }
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    match error {
        ScenarioError::Invalid { field: f, .. } => assert_eq!(f, field),
        ScenarioError::Read { .. } => panic!("expected Invalid, got {error:?}"),
    }
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            let plan = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            // A variant of a use case (use-case-c-scaled) keeps its name, so that reports
            // group its runs with the use case's.
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            assert!(
                stem.starts_with(&plan.name),
                "{stem} is named {}",
                plan.name
            );
            assert!(!scenario::describe(&plan).is_empty());
            count += 1;
        }
    }
    assert!(
        count >= 4,
        "expected the shipped scenarios in {}",
        dir.display()
    );
}

#[test]
fn use_case_a_maps_to_the_articles_numbers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/use-case-a.toml");
    let plan = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.name, "use-case-a");
    assert_eq!(plan.clients, 1000);
    assert_eq!(plan.channels, 1);
    assert_eq!(plan.connect_rate_per_s, 500.0);
    assert_eq!(plan.warmup, Duration::from_secs(5));
    assert_eq!(plan.duration, Duration::from_secs(30));
    assert_eq!(plan.drain, Duration::from_secs(5));
    assert_eq!(plan.message_rate_per_s, 1.0);
    assert_eq!(plan.payload_bytes, 20);
    assert_eq!(plan.target, TargetPlan::Embedded);
    let second = Duration::from_secs(1);
    assert_eq!(
        plan.transports
            .iter()
            .map(|run| run.transport.clone())
            .collect::<Vec<_>>(),
        vec![
            TransportPlan::HttpPoll {
                http: HttpVersion::Http11,
                interval: second,
                headers: HeaderProfile::WebsocketOrg2010
            },
            TransportPlan::HttpPoll {
                http: HttpVersion::Http11,
                interval: second,
                headers: HeaderProfile::Minimal
            },
            TransportPlan::HttpLongpoll {
                http: HttpVersion::Http11,
                headers: HeaderProfile::Minimal,
                timeout: Duration::from_secs(30)
            },
            TransportPlan::Websocket {
                read_buffer_bytes: 512,
                ping: None,
            },
            TransportPlan::Mqtt(MqttPlan {
                qos: 0,
                version: MqttVersion::V311,
                over: MqttOver::Tcp,
                topic: "bench/{channel}".into(),
                keep_alive: Duration::from_secs(60),
                clean_session: true,
                retain: false,
                inflight: 10,
                client: MqttClient::Rumqttc,
                last_will: None,
            }),
            TransportPlan::HttpPoll {
                http: HttpVersion::Http2,
                interval: second,
                headers: HeaderProfile::WebsocketOrg2010
            },
            TransportPlan::HttpPoll {
                http: HttpVersion::Http2,
                interval: second,
                headers: HeaderProfile::Minimal
            },
            TransportPlan::HttpLongpoll {
                http: HttpVersion::Http2,
                headers: HeaderProfile::Minimal,
                timeout: Duration::from_secs(30)
            },
            TransportPlan::Sse {
                headers: HeaderProfile::Minimal,
                keepalive: None,
                http: HttpVersion::Http11,
            },
        ]
    );
}

#[test]
fn defaults_fill_optional_fields() {
    let plan = parse(BASE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.name, "test");
    assert_eq!(plan.description, "");
    assert_eq!(plan.channels, 1);
    assert_eq!(plan.connect_rate_per_s, 1000.0);
    assert_eq!(plan.warmup, Duration::from_secs(5));
    assert_eq!(plan.drain, Duration::from_secs(5));
    assert_eq!(plan.payload_bytes, 20);
}

#[test]
fn rates_accept_every_unit() {
    for (rate, per_s) in [
        ("0.5/s", 0.5),
        ("60/min", 1.0),
        ("3600/h", 1.0),
        ("500/s", 500.0),
    ] {
        let source = BASE.replace("\"1/s\"", &format!("{rate:?}"));
        let plan = parse(&source).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.message_rate_per_s, per_s, "{rate}");
    }
}

#[test]
fn custom_headers_keep_file_order_and_external_urls_map() {
    let source = format!(
        "{BASE}\n[[transports]]\nkind = \"http-longpoll\"\nheaders = \"custom\"\n\
         custom_headers = {{ \"X-Zeta\" = \"1\", \"X-Alpha\" = \"two words\" }}\n\
         [target]\nkind = \"external\"\nurls = [\"http://127.0.0.1:8080\"]\n"
    );
    let plan = parse(&source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.transports[1].transport,
        TransportPlan::HttpLongpoll {
            http: HttpVersion::Http11,
            headers: HeaderProfile::Custom(vec![
                ("X-Zeta".to_string(), "1".to_string()),
                ("X-Alpha".to_string(), "two words".to_string()),
            ]),
            timeout: Duration::from_secs(30),
        }
    );
    assert_eq!(
        plan.target,
        TargetPlan::External {
            urls: vec!["http://127.0.0.1:8080".to_string()],
            processes: None,
            name: None,
        }
    );
}

#[test]
fn error_shows_the_line_and_a_caret() {
    let source = BASE.replace("clients = 10", "clients = -5");
    let text = parse(&source).map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        text,
        "scenarios/test.toml:1:11: `clients`: -5 is not a valid client count: \
         expected a whole number from 1 to 1000000\n  1 | clients = -5\n    |           ^"
    );
}

#[test]
fn unknown_top_level_field() {
    let source = BASE.replace("duration", "colour = \"blue\"\nduration");
    assert_error(
        &source,
        2,
        1,
        "colour",
        "valid fields here are name, description",
    );
}

#[test]
fn unknown_transport_field() {
    let source = format!("{BASE}flavour = 1\n");
    assert_error(
        &source,
        9,
        1,
        "transports[0].flavour",
        "valid fields for a websocket transport are kind, read_buffer_bytes",
    );
}

#[test]
fn field_of_another_transport_kind() {
    let source = format!("{BASE}interval = \"1s\"\n");
    assert_error(
        &source,
        9,
        1,
        "transports[0].interval",
        "only http-poll transports accept it",
    );
}

#[test]
fn http_version_of_polling_transports() {
    let source = BASE.replace(
        "kind = \"websocket\"",
        "kind = \"http-poll\"\nhttp = \"2\"\n\n[[transports]]\nkind = \"http-longpoll\"",
    );
    let plan = parse(&source).unwrap_or_else(|e| panic!("{e}"));
    let versions: Vec<HttpVersion> = plan
        .transports
        .iter()
        .map(|t| match &t.transport {
            TransportPlan::HttpPoll { http, .. } | TransportPlan::HttpLongpoll { http, .. } => {
                *http
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(versions, [HttpVersion::Http2, HttpVersion::Http11]);
    let labels: Vec<String> = plan.transports.iter().map(|t| t.label()).collect();
    assert_eq!(labels, ["http-poll(minimal,h2)", "http-longpoll(minimal)"]);
    assert!(scenario::describe(&plan).contains("1. http-poll(minimal,h2): interval 1s, HTTP/2"));
}

#[test]
fn unknown_http_version() {
    let source = BASE.replace("kind = \"websocket\"", "kind = \"http-poll\"\nhttp = \"3\"");
    assert_error(
        &source,
        9,
        8,
        "transports[0].http",
        "\"3\" is not a valid HTTP version: expected one of \"1.1\", \"2\"",
    );
}

#[test]
fn http_version_of_a_websocket() {
    let source = format!("{BASE}http = \"2\"\n");
    assert_error(
        &source,
        9,
        1,
        "transports[0].http",
        "only http-poll and http-longpoll and sse transports accept it",
    );
}

#[test]
fn negative_clients() {
    let source = BASE.replace("clients = 10", "clients = -5");
    assert_error(&source, 1, 11, "clients", "from 1 to 1000000");
}

#[test]
fn zero_clients() {
    let source = BASE.replace("clients = 10", "clients = 0");
    assert_error(&source, 1, 11, "clients", "0 is not a valid client count");
}

#[test]
fn bad_duration() {
    let source = BASE.replace("\"3s\"", "\"30 parsecs\"");
    assert_error(&source, 2, 12, "duration", "\"500ms\", \"30s\", \"2m\"");
}

#[test]
fn bad_rate() {
    let source = BASE.replace("\"1/s\"", "\"fast\"");
    assert_error(&source, 5, 8, "messages.rate", "\"60/min\" or \"3600/h\"");
}

#[test]
fn rate_above_the_limit() {
    let source = BASE.replace("\"1/s\"", "\"200000/s\"");
    assert_error(&source, 5, 8, "messages.rate", "at most 100000/s");
}

#[test]
fn payload_smaller_than_its_header() {
    let source = BASE.replace("rate = \"1/s\"", "rate = \"1/s\"\npayload_bytes = 8");
    assert_error(
        &source,
        6,
        17,
        "messages.payload_bytes",
        "expected a whole number from 16 to 1048576",
    );
}

#[test]
fn article_headers_need_a_single_channel() {
    let source = format!(
        "channels = 2\n{BASE}\n[[transports]]\nkind = \"http-poll\"\nheaders = \"websocket-org-2010\"\n"
    );
    assert_error(
        &source,
        13,
        11,
        "transports[1].headers",
        "channels = 1, but this scenario has channels = 2",
    );
}

#[test]
fn external_target_without_urls() {
    let source = format!("{BASE}\n[target]\nkind = \"external\"\n");
    assert_error(
        &source,
        10,
        1,
        "target.urls",
        "urls = [\"http://127.0.0.1:8080\"]",
    );
}

#[test]
fn embedded_target_with_urls() {
    let source = format!("{BASE}\n[target]\nurls = [\"http://127.0.0.1:8080\"]\n");
    assert_error(
        &source,
        11,
        1,
        "target.urls",
        "only applies to kind = \"external\"",
    );
}

#[test]
fn external_url_without_port() {
    let source = format!("{BASE}\n[target]\nkind = \"external\"\nurls = [\"http://h\"]\n");
    assert_error(&source, 12, 9, "target.urls[0]", "it has no port");
}

#[test]
fn missing_duration() {
    let source = BASE.replace("duration = \"3s\"\n", "");
    assert_error(
        &source,
        1,
        1,
        "duration",
        "missing required field `duration`",
    );
}

#[test]
fn custom_headers_without_custom_profile() {
    let source = format!(
        "{BASE}\n[[transports]]\nkind = \"http-poll\"\ncustom_headers = {{ \"X-A\" = \"1\" }}\n"
    );
    assert_error(
        &source,
        12,
        1,
        "transports[1].custom_headers",
        "only sent with headers = \"custom\"",
    );
}

#[test]
fn custom_profile_without_custom_headers() {
    let source = format!("{BASE}\n[[transports]]\nkind = \"http-poll\"\nheaders = \"custom\"\n");
    assert_error(
        &source,
        12,
        11,
        "transports[1].headers",
        "needs a `custom_headers` table",
    );
}

#[test]
fn invalid_custom_header_name() {
    let source = format!(
        "{BASE}\n[[transports]]\nkind = \"http-poll\"\nheaders = \"custom\"\n\
         custom_headers = {{ \"X A\" = \"1\" }}\n"
    );
    assert_error(
        &source,
        13,
        20,
        "transports[1].custom_headers.X A",
        "not a valid HTTP header name",
    );
}

#[test]
fn wrong_type() {
    let source = BASE.replace("clients = 10", "clients = \"ten\"");
    assert_error(
        &source,
        1,
        11,
        "clients",
        "\"ten\" is not a valid client count",
    );
}

#[test]
fn unknown_transport_kind() {
    let source = BASE.replace("\"websocket\"", "\"carrier-pigeon\"");
    assert_error(
        &source,
        8,
        8,
        "transports[0].kind",
        "expected one of \"http-poll\"",
    );
}

#[test]
fn toml_syntax_error() {
    let source = BASE.replace("rate = \"1/s\"", "rate = \"1/s");
    assert_error(&source, 5, 12, "", "invalid TOML");
}

#[test]
fn invalid_default_name_from_the_file_stem() {
    let error = scenario::parse(BASE, "scenarios/Use Case.toml").map(|_| ());
    let text = error.unwrap_err().to_string();
    assert!(text.contains("`name`"), "{text}");
    assert!(text.contains("\"Use Case\""), "{text}");
}

#[test]
fn dot_dot_is_not_a_name() {
    let source = format!("name = \"..\"\n{BASE}");
    assert_error(&source, 1, 8, "name", "not a valid name");
}

#[test]
fn describe_summarises_the_plan_and_its_run_time() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/use-case-a.toml");
    let plan = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let summary = scenario::describe(&plan);
    println!("{summary}");
    for needle in [
        "1000 over 1 channel",
        "500/s",
        "1/s per channel, 20-byte payload",
        "embedded",
        "1. http-poll(websocket-org-2010): interval 1s",
        "3. http-longpoll(minimal): timeout 30s",
        "4. websocket: read buffer 512 bytes",
        "5. mqtt(qos0,tcp): topic \"bench/{channel}\"",
        // 9 runs × (2s ramp + 5s warmup + 30s duration + 5s drain)
        "about 6m 18s",
    ] {
        assert!(
            summary.contains(needle),
            "expected {needle:?} in:\n{summary}"
        );
    }
}

#[test]
fn describe_survives_extreme_values() {
    let source = BASE.replace("\"1/s\"", "\"1/h\"").replace(
        "clients = 10",
        "clients = 10\nconnect_rate = \"1e-300/s\"\nwarmup = \"500years\"",
    );
    let plan = parse(&source).unwrap_or_else(|e| panic!("{e}"));
    let summary = scenario::describe(&plan);
    assert!(summary.contains("2.778e-4/s per channel"), "{summary}");
}

#[test]
fn missing_messages_table() {
    let source = BASE.replace("[messages]\nrate = \"1/s\"\n", "");
    assert_error(
        &source,
        1,
        1,
        "messages",
        "missing required field `messages`",
    );
}

#[test]
fn missing_transport_kind() {
    let source = BASE.replace("kind = \"websocket\"", "read_buffer_bytes = 4096");
    assert_error(
        &source,
        7,
        1,
        "transports[0].kind",
        "\"http-longpoll\", \"sse\", \"websocket\"",
    );
}

#[test]
fn transports_must_be_an_array_of_tables() {
    let source = BASE.replace("[[transports]]", "[transports]");
    assert_error(&source, 7, 1, "transports", "[[transports]]");
}

#[test]
fn unreadable_file() {
    let error = scenario::load(Path::new("scenarios/does-not-exist.toml")).map(|_| ());
    assert!(matches!(error, Err(ScenarioError::Read { .. })));
}

#[test]
fn a_non_utf8_file_names_itself_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.toml");
    std::fs::write(&path, b"name = \"caf\xe9\"\n").unwrap();
    let error = scenario::load(&path).map(|_| ());
    let error = anyhow::Error::from(error.expect_err("a non-UTF-8 file is an error"));
    assert_eq!(
        format!("{error:#}"),
        format!(
            "cannot read scenario file {}: stream did not contain valid UTF-8",
            path.display()
        )
    );
}

/// `BASE` with a poll transport added (so labels and kinds differ) and a `[thresholds]` table
/// whose entries start on line 14.
fn with_thresholds(entries: &str) -> String {
    format!("{BASE}\n[[transports]]\nkind = \"http-poll\"\n\n[thresholds]\n{entries}")
}

#[test]
fn thresholds_apply_to_all_a_kind_or_a_label() {
    let source = with_thresholds(
        "all = [\"delivery_ratio >= 0.999\"]\n\
         websocket = [\"overhead_bytes_per_message <= 2\", \"connect_failures == 0\"]\n\
         \"http-poll(minimal)\" = [\"latency_p99_us<50000\"]\n",
    );
    let plan = parse(&source).unwrap_or_else(|e| panic!("{e}"));
    let shown: Vec<String> = plan
        .thresholds
        .iter()
        .map(|t| format!("{}: {t}", t.scope))
        .collect();
    assert_eq!(
        shown,
        [
            "all: delivery_ratio >= 0.999",
            "websocket: overhead_bytes_per_message <= 2",
            "websocket: connect_failures == 0",
            "http-poll(minimal): latency_p99_us < 50000",
        ]
    );
    let summary = scenario::describe(&plan);
    assert!(
        summary.contains("http-poll(minimal): latency_p99_us < 50000"),
        "{summary}"
    );
    assert!(parse(BASE).unwrap().thresholds.is_empty());
}

#[test]
fn threshold_on_an_unknown_column() {
    assert_error(
        &with_thresholds("all = [\"lost == 0\", \"latency_p98_us < 5\"]\n"),
        14,
        21,
        "thresholds.all[1]",
        "unknown result column `latency_p98_us`",
    );
}

#[test]
fn threshold_on_a_text_column() {
    assert_error(
        &with_thresholds("all = [\"transport == 1\"]\n"),
        14,
        8,
        "thresholds.all[0]",
        "unknown result column `transport`",
    );
}

#[test]
fn threshold_with_a_bad_operator() {
    assert_error(
        &with_thresholds("websocket = [\"lost =< 5\"]\n"),
        14,
        14,
        "thresholds.websocket[0]",
        "\"=<\" is not an operator",
    );
}

#[test]
fn threshold_with_a_bad_number() {
    assert_error(
        &with_thresholds("websocket = [\"lost < five\"]\n"),
        14,
        14,
        "thresholds.websocket[0]",
        "\"five\" is not a number",
    );
}

#[test]
fn threshold_for_a_transport_the_scenario_lacks() {
    assert_error(
        &with_thresholds("all = [\"lost == 0\"]\nmqtt = [\"lost == 0\"]\n"),
        15,
        1,
        "thresholds.mqtt",
        "names no transport of this scenario: expected one of all, websocket, http-poll, http-poll(minimal)",
    );
}

#[test]
fn threshold_that_is_not_a_list_of_strings() {
    assert_error(
        &with_thresholds("all = \"lost == 0\"\n"),
        14,
        7,
        "thresholds.all",
        "expected an array of expressions",
    );
    assert_error(
        &with_thresholds("all = [0]\n"),
        14,
        8,
        "thresholds.all[0]",
        "expected an expression",
    );
}

#[test]
fn an_external_target_names_its_processes_one_way() {
    let external = |extra: &str| {
        format!(
            "{BASE}\n[target]\nkind = \"external\"\nurls = [\"http://127.0.0.1:8080\"]\n{extra}\n"
        )
    };
    let plan = parse(&external("pidfile = \"run/server.pid\"")).unwrap();
    let TargetPlan::External { processes, .. } = plan.target else {
        panic!("external")
    };
    assert_eq!(
        processes,
        Some(TargetProcesses::Pidfile("scenarios/run/server.pid".into())),
        "relative to the scenario file"
    );
    let plan = parse(&external("process = \"nginx\"")).unwrap();
    assert!(matches!(
        plan.target,
        TargetPlan::External { processes: Some(TargetProcesses::Name(ref n)), .. } if n == "nginx"
    ));
    assert_error(
        &external("pid = 12\nprocess = \"nginx\""),
        14,
        1,
        "target.process",
        "one way",
    );
    assert_error(&external("pid = 0"), 13, 7, "target.pid", "process id");
    assert_error(
        &format!("{BASE}\n[target]\npid = 12\n"),
        11,
        1,
        "target.pid",
        "kind = \"external\"",
    );
}

#[test]
fn sse_takes_headers_and_an_optional_keep_alive() {
    let source = format!(
        "{BASE}\n[[transports]]\nkind = \"sse\"\nheaders = \"browser\"\nkeepalive = \"15s\"\n\
         \n[[transports]]\nkind = \"sse\"\n"
    );
    let plan = parse(&source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.transports[1..]
            .iter()
            .map(|run| run.transport.clone())
            .collect::<Vec<_>>(),
        [
            TransportPlan::Sse {
                headers: HeaderProfile::Browser,
                http: HttpVersion::Http11,
                keepalive: Some(Duration::from_secs(15)),
            },
            TransportPlan::Sse {
                headers: HeaderProfile::Minimal,
                http: HttpVersion::Http11,
                keepalive: None,
            },
        ]
    );
    assert_eq!(plan.transports[1].label(), "sse(browser,keepalive=15s)");
    assert_eq!(plan.transports[2].label(), "sse(minimal)");
}

#[test]
fn sse_takes_an_http_version_named_in_its_label_and_description() {
    let source = format!(
        "{BASE}\n[[transports]]\nkind = \"sse\"\nhttp = \"2\"\nkeepalive = \"15s\"\n\
         \n[[transports]]\nkind = \"sse\"\nhttp = \"2\"\n"
    );
    let plan = parse(&source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.transports[1].transport,
        TransportPlan::Sse {
            headers: HeaderProfile::Minimal,
            http: HttpVersion::Http2,
            keepalive: Some(Duration::from_secs(15)),
        }
    );
    assert_eq!(plan.transports[1].label(), "sse(minimal,h2,keepalive=15s)");
    assert_eq!(plan.transports[2].label(), "sse(minimal,h2)");
    let described = scenario::describe(&plan);
    assert!(
        described.contains("sse(minimal,h2): no keep-alive, HTTP/2"),
        "{described}"
    );
    let bad = format!("{BASE}\n[[transports]]\nkind = \"sse\"\nhttp = \"3\"\n");
    assert!(parse(&bad).is_err());
}

#[test]
fn sse_keep_alive_must_be_positive_and_belongs_to_sse_only() {
    let zero = format!("{BASE}\n[[transports]]\nkind = \"sse\"\nkeepalive = \"0s\"\n");
    assert_error(&zero, 12, 13, "transports[1].keepalive", "too short");
    let websocket = format!("{BASE}keepalive = \"15s\"\n");
    assert_error(
        &websocket,
        9,
        1,
        "transports[0].keepalive",
        "only sse transports accept it",
    );
}

#[test]
fn websocket_takes_an_optional_ping_named_in_its_label_and_description() {
    let source = format!("{BASE}\n[[transports]]\nkind = \"websocket\"\nping = \"2s\"\n");
    let plan = parse(&source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.transports[1].transport,
        TransportPlan::Websocket {
            read_buffer_bytes: 512,
            ping: Some(Duration::from_secs(2)),
        }
    );
    assert_eq!(plan.transports[1].label(), "websocket(ping=2s)");
    let described = scenario::describe(&plan);
    assert!(
        described.contains("ping after 2s of silence, dead after 2s more"),
        "{described}"
    );
    let zero = format!("{BASE}\n[[transports]]\nkind = \"websocket\"\nping = \"0s\"\n");
    assert_error(&zero, 12, 8, "transports[1].ping", "too short");
    let sse = format!("{BASE}\n[[transports]]\nkind = \"sse\"\nping = \"2s\"\n");
    assert_error(
        &sse,
        12,
        1,
        "transports[1].ping",
        "only websocket transports accept it",
    );
}

/// A scenario with one MQTT transport of the lean client and `extra` lines after it.
fn lean_mqtt(extra: &str) -> String {
    BASE.replace(
        "kind = \"websocket\"",
        &format!("kind = \"mqtt\"\nclient = \"lean\"\n{extra}"),
    )
}

#[test]
fn lean_mqtt_client_is_labelled_and_described() {
    let plan = parse(&lean_mqtt("qos = 1\n")).unwrap_or_else(|e| panic!("{e}"));
    let TransportPlan::Mqtt(m) = &plan.transports[0].transport else {
        panic!("expected MQTT, got {:?}", plan.transports[0].transport)
    };
    assert_eq!(m.client, MqttClient::Lean);
    assert_eq!(plan.transports[0].label(), "mqtt(qos1,tcp,lean)");
    assert!(scenario::describe(&plan).contains("lean client"));
}

#[test]
fn lean_mqtt_client_rejects_what_it_does_not_speak() {
    let needle = "client = \"lean\" speaks MQTT 3.1.1 over TCP or TLS, without a will";
    let cases = [
        (
            "over = \"websocket\"",
            8,
            "transports[0].over",
            "over = \"tcp\"",
        ),
        (
            "version = \"5\"",
            11,
            "transports[0].version",
            "version = \"3.1.1\"",
        ),
        (
            "last_will = { topic = \"w/{client}\" }",
            13,
            "transports[0].last_will",
            "no last_will",
        ),
    ];
    for (line, column, field, valid) in cases {
        let source = lean_mqtt(line);
        assert_error(&source, 10, column, field, needle);
        assert_error(&source, 10, column, field, valid);
    }
}

#[test]
fn unknown_mqtt_client() {
    let source = BASE.replace("kind = \"websocket\"", "kind = \"mqtt\"\nclient = \"paho\"");
    assert_error(
        &source,
        9,
        10,
        "transports[0].client",
        "\"paho\" is not a valid MQTT client: expected one of \"rumqttc\", \"lean\"",
    );
}
