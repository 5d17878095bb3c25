//! Slack and Microsoft Teams notifications: the summary (`autoheal_handlers::summary`) as a
//! Block Kit message or an Adaptive Card, POSTed to the channel's incoming webhook.
//!
//! - **URLs are secrets** (whoever has one can post to the channel). They come from Secrets
//!   Manager or an SSM SecureString ([`WebhookSource`]), read once per container through SSM
//!   `GetParameter` with decryption (a Secrets Manager secret is read through Parameter Store's
//!   `/aws/reference/secretsmanager/<name>`), and never reach a log line: errors name the
//!   channel and the source, not the URL ([`WebhookUrl`]'s `Debug` shows the host only).
//! - **https only.** Plain `http` is refused, except to a loopback address when the sender is
//!   built for tests ([`Webhooks::allowing_loopback_http`]).
//! - **Retries**: 429 and 5xx answers and transport failures are retried with exponential
//!   backoff (1 s, 2 s, 4 s; a `Retry-After` of at most 30 s is honoured), 4 attempts in all;
//!   other 4xx answers are not retried (the payload or the URL is wrong).
//! - **A notification failure never fails the heal**: the notify task reports each channel's
//!   delivery in its result and its log line, and returns normally.

use std::time::Duration;

use autoheal_core::error::PortError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde_json::Value;

use crate::Aws;
use crate::error::{self, Call};

/// A webhook URL: https (or loopback http in tests). `Debug` and `Display` show the host only.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: String,
    host: String,
    https: bool,
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookUrl({}://{}/…)", self.scheme(), self.host)
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}/…", self.scheme(), self.host)
    }
}

impl WebhookUrl {
    /// Checks a URL read for `channel`. The error never repeats the URL (it is a secret).
    pub fn parse(channel: &str, raw: &str) -> Result<WebhookUrl, String> {
        let raw = raw.trim();
        let (https, rest) = if let Some(r) = raw.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = raw.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "the {channel} webhook URL is not an https URL: store the incoming-webhook URL as Slack or Teams shows it (https://…)"
            ));
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if name.is_empty()
            || host.contains('@')
            || raw.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "the {channel} webhook URL is malformed (no host, credentials in it, or spaces): store the incoming-webhook URL exactly as the channel shows it"
            ));
        }
        Ok(WebhookUrl {
            url: raw.to_owned(),
            host: host.to_owned(),
            https,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }

    fn is_loopback(&self) -> bool {
        let name = self.host.rsplit_once(':').map_or(&*self.host, |(h, _)| h);
        matches!(name, "127.0.0.1" | "localhost" | "[::1]")
    }
}

/// Where a channel's URL is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookSource {
    /// A Secrets Manager secret, by name (`AUTOHEAL_<CHANNEL>_WEBHOOK_SECRET`).
    Secret(String),
    /// An SSM SecureString parameter, by name (`AUTOHEAL_<CHANNEL>_WEBHOOK_PARAMETER`).
    Parameter(String),
}

impl WebhookSource {
    /// The channel's source from the environment the stack sets (cdk/README.md).
    pub fn from_env(channel: &str) -> Option<WebhookSource> {
        let var = |suffix: &str| {
            std::env::var(format!(
                "AUTOHEAL_{}_WEBHOOK_{suffix}",
                channel.to_uppercase()
            ))
            .ok()
            .filter(|v| !v.trim().is_empty())
        };
        var("SECRET")
            .map(WebhookSource::Secret)
            .or_else(|| var("PARAMETER").map(WebhookSource::Parameter))
    }

    /// The Parameter Store name to read.
    pub fn parameter_name(&self) -> String {
        match self {
            Self::Secret(name) => format!("/aws/reference/secretsmanager/{name}"),
            Self::Parameter(name) => name.clone(),
        }
    }
}

/// Reads a channel's URL (SSM GetParameter with decryption) and checks it.
pub async fn read_url(
    aws: &Aws,
    channel: &str,
    source: &WebhookSource,
) -> Result<WebhookUrl, PortError> {
    let name = source.parameter_name();
    let out = aws
        .ssm
        .get_parameter()
        .name(&name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| error::map(Call::new("ssm", "GetParameter"), e))?;
    let value = out
        .parameter()
        .and_then(|p| p.value())
        .ok_or_else(|| error::missing(Call::new("ssm", "GetParameter"), "Parameter.Value"))?;
    // A secret may hold the URL itself or JSON with a `url` (or `webhook_url`) field.
    let url = serde_json::from_str::<Value>(value)
        .ok()
        .and_then(|v| {
            ["url", "webhook_url", "webhookUrl"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
        })
        .unwrap_or_else(|| value.to_owned());
    WebhookUrl::parse(channel, &url)
        .map_err(|e| PortError::InvalidRequest(format!("{e} (read from {name})")))
}

/// The configured channels and the client that posts to them.
#[derive(Debug)]
pub struct Channels {
    pub client: Webhooks,
    /// `slack` / `teams` and the URL.
    pub channels: Vec<(String, WebhookUrl)>,
}

impl Channels {
    /// Renders the summary for each channel and posts it; never fails (see [`Delivery`]).
    pub async fn send(&self, summary: &autoheal_handlers::summary::Summary) -> Vec<Delivery> {
        let mut out = Vec::new();
        for (channel, url) in &self.channels {
            let body = if channel == "teams" {
                autoheal_handlers::summary::teams_payload(summary)
            } else {
                autoheal_handlers::summary::slack_payload(summary)
            };
            out.push(self.client.post(channel, url, &body).await);
        }
        out
    }
}

/// How a delivery went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub channel: String,
    pub delivered: bool,
    pub attempts: u32,
    /// The last HTTP status, if an answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed, without the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Retry settings.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_retry_after: Duration,
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            first_backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The HTTP client for webhooks.
#[derive(Clone)]
pub struct Webhooks {
    client: HttpsClient,
    retry: Retry,
    loopback_http: bool,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// A client with the platform's trust roots (rustls, aws-lc-rs: the SDK's own TLS stack).
    pub fn new(retry: Retry) -> Result<Webhooks, PortError> {
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| PortError::InvalidRequest(format!("webhooks: no TLS trust roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Webhooks {
            client: Client::builder(TokioExecutor::new()).build(https),
            retry,
            loopback_http: false,
        })
    }

    /// Also accepts `http://127.0.0.1:…` (tests against a local server).
    pub fn allowing_loopback_http(mut self) -> Webhooks {
        self.loopback_http = true;
        self
    }

    /// POSTs `body` as JSON to `url`, retrying 429, 5xx and transport failures.
    pub async fn post(&self, channel: &str, url: &WebhookUrl, body: &Value) -> Delivery {
        let mut d = Delivery {
            channel: channel.to_owned(),
            delivered: false,
            attempts: 0,
            status: None,
            error: None,
        };
        let allowed = url.https || (self.loopback_http && url.is_loopback());
        if !allowed {
            d.error = Some(format!("{url} is not https: webhook URLs must be https"));
            return d;
        }
        let payload = Bytes::from(body.to_string());
        let mut backoff = self.retry.first_backoff;
        while d.attempts < self.retry.attempts.max(1) {
            d.attempts += 1;
            let wait = match self.once(url, payload.clone()).await {
                Ok((status, retry_after)) => {
                    d.status = Some(status);
                    if (200..300).contains(&status) {
                        d.delivered = true;
                        d.error = None;
                        return d;
                    }
                    d.error = Some(format!("{url} answered HTTP {status}"));
                    if status != 429 && status < 500 {
                        return d;
                    }
                    retry_after
                        .map(|s| Duration::from_secs(s).min(self.retry.max_retry_after))
                        .unwrap_or(backoff)
                }
                Err(e) => {
                    d.error = Some(format!("{url}: {e}"));
                    backoff
                }
            };
            if d.attempts < self.retry.attempts {
                tokio::time::sleep(wait).await;
                backoff *= 2;
            }
        }
        d
    }

    /// One POST: the status and the `Retry-After` seconds, or a transport error (never the URL).
    async fn once(&self, url: &WebhookUrl, payload: Bytes) -> Result<(u16, Option<u64>), String> {
        let req = hyper::Request::post(url.url.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "autoheal")
            .body(Full::new(payload))
            .map_err(|_| "the URL is not a valid request URI".to_owned())?;
        let res = tokio::time::timeout(self.retry.timeout, self.client.request(req))
            .await
            .map_err(|_| format!("no answer within {} s", self.retry.timeout.as_secs()))?
            .map_err(|e| {
                // hyper-util's error text can carry the URI; keep only its kind.
                if e.is_connect() {
                    "cannot connect".to_owned()
                } else {
                    "the request failed".to_owned()
                }
            })?;
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // Read the body so the connection can be reused; its content does not matter.
        let _ = res.into_body().collect().await;
        Ok((status, retry_after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_pass_and_errors_never_repeat_the_url() {
        let ok = WebhookUrl::parse("slack", "https://hooks.slack.com/services/T0/B0/SECRET")
            .expect("valid");
        assert_eq!(format!("{ok:?}"), "WebhookUrl(https://hooks.slack.com/…)");
        assert!(!ok.to_string().contains("SECRET"));
        for bad in [
            "ftp://hooks.slack.com/services/SECRET",
            "hooks.slack.com/services/SECRET",
            "https:///SECRET",
            "https://user:SECRET@example.com/x",
            "https://example.com/a b SECRET",
        ] {
            let e = WebhookUrl::parse("slack", bad).expect_err(bad);
            assert!(!e.contains("SECRET"), "{e}");
            assert!(e.contains("slack webhook URL"), "{e}");
        }
    }

    #[test]
    fn secrets_are_read_through_parameter_store_references() {
        assert_eq!(
            WebhookSource::Secret("autoheal/slack".into()).parameter_name(),
            "/aws/reference/secretsmanager/autoheal/slack"
        );
        assert_eq!(
            WebhookSource::Parameter("/autoheal/teams".into()).parameter_name(),
            "/autoheal/teams"
        );
    }
}
