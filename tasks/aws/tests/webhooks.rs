//! Slack and Teams webhooks against a local HTTP server on 127.0.0.1 (a free port, stopped
//! with the test): the exact payloads posted, retries on 429 / 5xx with backoff and
//! `Retry-After`, no retry on other 4xx, and https enforced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoheal_aws::webhook::{Channels, Retry, WebhookUrl, Webhooks};
use autoheal_core::TargetGroupArn;
use autoheal_core::ports::{Notification, Severity};
use autoheal_handlers::summary::{Summary, slack_payload, teams_payload};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request the server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    body: Value,
    at: Instant,
}

/// A server answering each request with the next scripted `(status, extra headers)`, then 200.
async fn server(script: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&got);
    tokio::spawn(async move {
        let mut script = script.into_iter();
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0_u8; 4096];
            let (head, body) = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    let mut body = buf[end + 4..].to_vec();
                    while body.len() < len {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    break (head, body);
                }
            };
            let path = head
                .lines()
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or_default()
                .to_owned();
            let content_type = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-type:")
                        .map(|v| v.trim().to_owned())
                })
                .unwrap_or_default();
            seen.lock().expect("lock").push(Received {
                path,
                content_type,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                at: Instant::now(),
            });
            let (status, extra) = script.next().unwrap_or((200, ""));
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n{extra}\r\nok"
            );
            let _ = sock.write_all(reply.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (format!("http://{addr}"), got)
}

fn fast() -> Retry {
    Retry {
        attempts: 4,
        first_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
    }
}

fn summary() -> Summary {
    Summary::from_notification(&Notification {
        subject: "autoheal: 0 incident(s) in web".to_owned(),
        severity: Severity::Warning,
        target_group: TargetGroupArn::parse(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
        )
        .expect("arn"),
        incidents: Vec::new(),
        held_back: vec!["a dependency outage is suspected: 5 of 6 targets fail".to_owned()],
        execution_url: Some("https://us-east-1.console.aws.amazon.com/states/home".to_owned()),
        approval_token: None,
    })
}

fn client() -> Webhooks {
    Webhooks::new(fast())
        .expect("client")
        .allowing_loopback_http()
}

#[tokio::test]
async fn slack_and_teams_get_their_exact_payloads() {
    let (base, got) = server(vec![]).await;
    let channels = Channels {
        client: client(),
        channels: vec![
            (
                "slack".to_owned(),
                WebhookUrl::parse("slack", &format!("{base}/services/T0/B0/x")).expect("url"),
            ),
            (
                "teams".to_owned(),
                WebhookUrl::parse("teams", &format!("{base}/webhookb2/y")).expect("url"),
            ),
        ],
    };
    let s = summary();
    let deliveries = channels.send(&s).await;
    assert!(
        deliveries.iter().all(|d| d.delivered && d.attempts == 1),
        "{deliveries:?}"
    );
    let got = got.lock().expect("lock").clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].path, "/services/T0/B0/x");
    assert_eq!(got[0].content_type, "application/json");
    assert_eq!(got[0].body, slack_payload(&s));
    assert_eq!(got[1].path, "/webhookb2/y");
    assert_eq!(got[1].body, teams_payload(&s));
    assert_eq!(
        got[1].body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_with_backoff_and_retry_after() {
    let (base, got) = server(vec![(429, "retry-after: 1\r\n"), (503, ""), (200, "")]).await;
    let url = WebhookUrl::parse("slack", &format!("{base}/hook")).expect("url");
    let d = client()
        .post("slack", &url, &slack_payload(&summary()))
        .await;
    assert!(d.delivered, "{d:?}");
    assert_eq!((d.attempts, d.status), (3, Some(200)));
    let got = got.lock().expect("lock").clone();
    assert_eq!(got.len(), 3);
    // Retry-After: 1 was honoured; the 503 waited the (doubled) backoff.
    assert!(got[1].at - got[0].at >= Duration::from_millis(950));
    assert!(got[2].at - got[1].at >= Duration::from_millis(40));
    assert!(got.iter().all(|r| r.body == got[0].body));
}

#[tokio::test]
async fn a_failing_webhook_gives_up_after_four_attempts_and_never_names_the_url() {
    let (base, got) = server(vec![(500, ""), (502, ""), (503, ""), (504, ""), (200, "")]).await;
    let url = WebhookUrl::parse("teams", &format!("{base}/secret-path-token")).expect("url");
    let d = client()
        .post("teams", &url, &teams_payload(&summary()))
        .await;
    assert!(!d.delivered);
    assert_eq!((d.attempts, d.status), (4, Some(504)));
    assert_eq!(got.lock().expect("lock").len(), 4);
    let error = d.error.expect("error");
    assert!(!error.contains("secret-path-token"), "{error}");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (base, got) = server(vec![(400, "")]).await;
    let url = WebhookUrl::parse("slack", &format!("{base}/hook")).expect("url");
    let d = client()
        .post("slack", &url, &slack_payload(&summary()))
        .await;
    assert_eq!((d.delivered, d.attempts, d.status), (false, 1, Some(400)));
    assert_eq!(got.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn plain_http_is_refused_outside_loopback_tests() {
    let url = WebhookUrl::parse("slack", "http://hooks.example.com/services/x").expect("parses");
    let strict = Webhooks::new(fast()).expect("client");
    let d = strict.post("slack", &url, &Value::Null).await;
    assert_eq!((d.delivered, d.attempts), (false, 0));
    assert!(d.error.expect("error").contains("must be https"));
    // Loopback http is accepted only by a client built for tests.
    let (base, _) = server(vec![]).await;
    let local = WebhookUrl::parse("slack", &format!("{base}/x")).expect("url");
    assert!(!strict.post("slack", &local, &Value::Null).await.delivered);
}

#[tokio::test]
async fn an_unreachable_webhook_is_a_transport_error_retried_then_reported() {
    // A port that was free a moment ago: nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = WebhookUrl::parse("slack", &format!("http://127.0.0.1:{port}/x")).expect("url");
    let d = client().post("slack", &url, &Value::Null).await;
    assert_eq!((d.delivered, d.attempts, d.status), (false, 4, None));
    assert!(d.error.expect("error").contains("cannot connect"));
}
