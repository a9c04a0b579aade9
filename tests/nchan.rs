//! pushbench against a server nobody here wrote: nginx + nchan, started by
//! `scripts/targets/nchan.sh` on a free port of 127.0.0.1 and stopped at the end of each test,
//! also when it fails. nginx and libnginx-mod-nchan must be installed (`scripts/test.sh`
//! installs them): without them these tests fail, they do not skip.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{run_in_process, small_plan};
use pushbench::plan::{HttpVersion, TargetPlan, TransportPlan};
use pushbench::profile::HeaderProfile;
use pushbench::result::RunResult;

/// One nginx + nchan instance; stopped (by its PID, through the script) when dropped.
struct Nchan {
    port: u16,
    run_dir: PathBuf,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/targets/nchan.sh")
}

impl Nchan {
    fn start() -> Nchan {
        // A port the kernel just handed out and took back: free unless someone races for it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let run_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("nchan-{port}"));
        let out = Command::new(script())
            .args(["start", &port.to_string()])
            .env("NCHAN_RUN_DIR", &run_dir)
            .output()
            .expect("running scripts/targets/nchan.sh");
        assert!(
            out.status.success(),
            "nginx + nchan did not start (install them: apt-get install -y nginx \
             libnginx-mod-nchan, or run scripts/test.sh as root):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Nchan { port, run_dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nchan {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.port.to_string()])
            .env("NCHAN_RUN_DIR", &self.run_dir)
            .status();
    }
}

/// 50 clients, 5 warm-up and 10 measured messages at 10/s, against a fresh nchan.
async fn run_against_nchan(transport: TransportPlan) -> RunResult {
    let nchan = Nchan::start();
    let mut plan = small_plan(50, 16, transport);
    plan.target = TargetPlan::External {
        urls: vec![nchan.url()],
    };
    let result = run_in_process(&plan).await;
    drop(nchan);
    result
}

fn assert_everything_delivered(r: &RunResult) {
    assert_eq!(r.messages_expected, 50 * 10, "{r:?}");
    assert_eq!(r.messages_delivered, 50 * 10, "{r:?}");
    assert_eq!((r.lost, r.duplicated, r.out_of_order), (0, 0, 0), "{r:?}");
    assert_eq!(
        r.publish_errors, 0,
        "nchan answers every publish 2xx: {r:?}"
    );
    assert_eq!(r.reconnects, 0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_interval_polling_delivers_every_message() {
    let r = run_against_nchan(TransportPlan::HttpPoll {
        http: HttpVersion::Http11,
        interval: Duration::from_millis(50),
        headers: HeaderProfile::Minimal,
    })
    .await;
    assert_everything_delivered(&r);
    // Headers are most of what a poll costs: nchan's answer alone (status line, Server,
    // Date, Content-Length, Connection, Vary and the validators) is more than 200 bytes, the
    // request with its validators about 100.
    assert!(r.overhead_bytes_per_message > 2.0 * 150.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_long_polling_delivers_every_message_once() {
    let r = run_against_nchan(TransportPlan::HttpLongpoll {
        http: HttpVersion::Http11,
        headers: HeaderProfile::Minimal,
        timeout: Duration::from_secs(30),
    })
    .await;
    assert_everything_delivered(&r);
    assert_eq!(r.window_messages, 500, "one message per answer: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nchan_websocket_frame_costs_exactly_2_bytes() {
    let r = run_against_nchan(TransportPlan::Websocket {
        read_buffer_bytes: 4096,
    })
    .await;
    assert_everything_delivered(&r);
    assert_eq!(r.window_messages, 500, "{r:?}");
    assert_eq!(r.overhead_bytes_per_message, 2.0, "{r:?}");
    assert_eq!(
        r.window_bytes_up, 0,
        "the client sends nothing in steady state"
    );
}
