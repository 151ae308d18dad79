//! Matrix as a plain bot user: the client-server `/sync` long-poll
//! (<https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3sync>).
//! Each call passes the previous `next_batch` as `since` and a `timeout`: the
//! homeserver holds the request until an event arrives or the timeout
//! passes, so an idle bot makes one request per timeout and arms no timer.
//! Invites are accepted with `POST /_matrix/client/v3/join/{roomIdOrAlias}`;
//! who may talk is still decided by the allow-list and pairing.
//!
//! The first sync of a bot that has no saved `since` only takes the position
//! (and the pending invites): history from before the bot was set up is not
//! answered.

use std::time::Duration;

use opticlaw_core::EventEnvelope;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::matrix::MatrixAdapter;
use crate::MatrixConfig;

const P: crate::Platform = crate::Platform::Matrix;

/// Why a `/sync` or `/join` call failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Network or timeout.
    #[error("matrix transport error: {0}")]
    Transport(#[from] reqwest::Error),
    /// `M_LIMIT_EXCEEDED`: wait this long before the next call.
    #[error("matrix rate limited; retry after {0:?}")]
    RateLimited(Duration),
    /// Any other refusal (`M_UNKNOWN_TOKEN`...).
    #[error("matrix refused ({status} {errcode}): {error}")]
    Refused {
        status: u16,
        errcode: String,
        error: String,
    },
}

/// One `/sync` answer, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncBatch {
    /// Save this as the next call's `since` once `events` are stored.
    pub next_batch: String,
    /// New messages from others, oldest first.
    pub events: Vec<EventEnvelope>,
    /// Rooms the bot was invited to.
    pub invites: Vec<String>,
}

/// A `/sync` long-poll client for one bot account.
#[derive(Debug)]
pub struct MatrixSyncer {
    client: reqwest::Client,
    base: String,
    token: crate::Secret,
    timeout: Duration,
    adapter: MatrixAdapter,
}

/// Only messages, no presence or account data: smaller answers, fewer wakes.
const FILTER: &str = r#"{"presence":{"types":[]},"account_data":{"types":[]},"room":{"timeline":{"limit":100,"types":["m.room.message"]},"ephemeral":{"types":[]},"account_data":{"types":[]},"state":{"lazy_load_members":true}}}"#;

impl MatrixSyncer {
    /// A syncer for `config` (its `as_token` is the bot's access token).
    pub fn new(client: reqwest::Client, config: &MatrixConfig) -> Self {
        Self {
            client,
            base: config.homeserver_url.trim_end_matches('/').to_owned(),
            token: config.as_token.clone(),
            timeout: Duration::from_secs(config.sync_timeout_secs),
            adapter: MatrixAdapter::new(config.clone()),
        }
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, SyncError> {
        let response = request
            .bearer_auth(self.token.expose())
            .timeout(self.timeout + Duration::from_secs(15))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == 429 || body["errcode"] == "M_LIMIT_EXCEEDED" {
            let ms = body["retry_after_ms"].as_u64().unwrap_or(1000);
            return Err(SyncError::RateLimited(Duration::from_millis(ms)));
        }
        if !(200..300).contains(&status) {
            return Err(SyncError::Refused {
                status,
                errcode: body["errcode"].as_str().unwrap_or("").to_owned(),
                error: body["error"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(body)
    }

    /// One `/sync`: blocks at the homeserver until something happens (or the
    /// timeout passes). With no `since`, returns at once with the position.
    pub async fn sync(&self, since: Option<&str>) -> Result<SyncBatch, SyncError> {
        let mut url = format!(
            "{}/_matrix/client/v3/sync?filter={}",
            self.base,
            utf8_percent_encode(FILTER, NON_ALPHANUMERIC)
        );
        match since {
            Some(since) => url.push_str(&format!(
                "&timeout={}&since={}",
                self.timeout.as_millis(),
                utf8_percent_encode(since, NON_ALPHANUMERIC)
            )),
            None => url.push_str("&timeout=0"),
        }
        let body = self.call(self.client.get(url)).await?;
        let next_batch = body["next_batch"]
            .as_str()
            .ok_or_else(|| SyncError::Refused {
                status: 200,
                errcode: "M_BAD_JSON".into(),
                error: "sync answer has no next_batch".into(),
            })?
            .to_owned();
        let mut events = Vec::new();
        if since.is_some() {
            let joined = body["rooms"]["join"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (room_id, room) in joined {
                if room["timeline"]["limited"] == json!(true) {
                    // Normal on a fresh join; otherwise over 100 messages
                    // came at once and the oldest were not fetched.
                    tracing::info!(%room_id, "matrix timeline limited to its latest 100 events");
                }
                let timeline = room["timeline"]["events"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for mut raw in timeline {
                    raw["room_id"] = json!(room_id);
                    if let Some(n) = self.adapter.normalize(raw, &next_batch) {
                        events.push(n.into_envelope(P, "matrix-sync-access-token"));
                    }
                }
            }
        }
        let invites = body["rooms"]["invite"]
            .as_object()
            .map(|rooms| rooms.keys().cloned().collect())
            .unwrap_or_default();
        Ok(SyncBatch {
            next_batch,
            events,
            invites,
        })
    }

    /// Joins a room the bot was invited to.
    pub async fn join(&self, room_id: &str) -> Result<(), SyncError> {
        let url = format!(
            "{}/_matrix/client/v3/join/{}",
            self.base,
            utf8_percent_encode(room_id, NON_ALPHANUMERIC)
        );
        self.call(self.client.post(url).json(&json!({}))).await?;
        Ok(())
    }
}
