//! A small client for the daemon's local API, used by `chat` and `status`.

use anyhow::{Context, Result, bail};
use futures_util::{Stream, StreamExt};
use opticlaw_core::ResponsePacket;
use serde_json::{Value, json};

use crate::config::Config;
use crate::home::Home;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn for_home(home: &Home) -> Result<Self> {
        let config = Config::load(&home.config_file())?;
        Ok(Self {
            http: reqwest::Client::new(),
            base: format!("http://{}", config.server.bind),
            token: home.read_token()?,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether an opticlaw daemon answers; something else holding the port
    /// (which may accept and never answer) counts as no.
    pub async fn healthy(&self) -> bool {
        self.http
            .get(format!("{}/healthz", self.base))
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    pub async fn status(&self) -> Result<Value> {
        self.get_json("/v1/status").await
    }

    /// Posts a message; returns the submission (`event_id`, `seq`, ...).
    pub async fn send(&self, thread_id: &str, text: &str) -> Result<Value> {
        let request = self
            .http
            .post(format!("{}/v1/local/messages", self.base))
            .json(&json!({ "text": text, "thread_id": thread_id }));
        self.call_json(request).await
    }

    /// The thread's replies after `after`, then each new one as it comes.
    pub async fn stream(
        &self,
        thread_id: &str,
        after: i64,
    ) -> Result<impl Stream<Item = Result<ResponsePacket>> + use<>> {
        use eventsource_stream::Eventsource;
        let response = self
            .http
            .get(format!("{}/v1/local/stream", self.base))
            .query(&[("thread_id", thread_id), ("after", &after.to_string())])
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the daemon at {} (is `opticlaw serve` running?)",
                    self.base
                )
            })?
            .error_for_status()?;
        Ok(response.bytes_stream().eventsource().map(|event| {
            let event = event.context("the reply stream broke")?;
            serde_json::from_str(&event.data).context("the daemon sent an unreadable reply")
        }))
    }

    /// The newest reply seq of the thread, to stream only what comes next.
    pub async fn last_reply_seq(&self, thread_id: &str) -> Result<i64> {
        let mut after = 0;
        loop {
            let page = self
                .get_json(&format!(
                    "/v1/local/replies?thread_id={thread_id}&after={after}&limit=1000"
                ))
                .await?;
            let replies = page["replies"].as_array().cloned().unwrap_or_default();
            match replies.last() {
                Some(last) => after = last["seq"].as_i64().unwrap_or(after),
                None => return Ok(after),
            }
            if replies.len() < 1000 {
                return Ok(after);
            }
        }
    }

    /// Posts `body` to `path` of the local API.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.call_json(request).await
    }

    async fn get_json(&self, path: &str) -> Result<Value> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.call_json(request).await
    }

    /// Sends an authorized request; the JSON body, or the daemon's error.
    async fn call_json(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| {
                format!(
                    "cannot reach the daemon at {} (is `opticlaw serve` running?)",
                    self.base
                )
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("the daemon answered {status}: {}", body["error"]["message"]);
        }
        Ok(body)
    }
}
