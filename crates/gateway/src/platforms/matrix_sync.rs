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
//! answered. When a room's timeline is `limited` (more messages arrived than
//! one answer holds, e.g. while the daemon was down), the gap between the
//! saved `since` and the timeline's `prev_batch` is fetched with
//! `GET /rooms/{roomId}/messages?dir=f&from=since&to=prev_batch`
//! (<https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3roomsroomidmessages>),
//! so nothing is skipped.

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
    timeline_limit: u32,
    bot_user_id: String,
    adapter: MatrixAdapter,
}

/// Only messages (and memberships, to see where the bot joined), no
/// presence or account data: smaller answers, fewer wakes.
fn sync_filter(timeline_limit: u32) -> String {
    json!({
        "presence": {"types": []},
        "account_data": {"types": []},
        "room": {
            "timeline": {"limit": timeline_limit, "types": ["m.room.message", "m.room.member"]},
            "ephemeral": {"types": []},
            "account_data": {"types": []},
            "state": {"lazy_load_members": true},
        },
    })
    .to_string()
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

impl MatrixSyncer {
    /// A syncer for `config` (its `as_token` is the bot's access token).
    pub fn new(client: reqwest::Client, config: &MatrixConfig) -> Self {
        Self {
            client,
            base: config.homeserver_url.trim_end_matches('/').to_owned(),
            token: config.as_token.clone(),
            timeout: Duration::from_secs(config.sync_timeout_secs),
            timeline_limit: config.sync_timeline_limit.max(1),
            bot_user_id: config.bot_user_id.clone(),
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
            encode(&sync_filter(self.timeline_limit))
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
        if let Some(since) = since {
            let joined = body["rooms"]["join"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (room_id, room) in joined {
                let mut timeline = Vec::new();
                if room["timeline"]["limited"] == json!(true)
                    && let Some(prev_batch) = room["timeline"]["prev_batch"].as_str()
                {
                    timeline = self.gap(&room_id, since, prev_batch).await?;
                }
                timeline.extend(
                    room["timeline"]["events"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                );
                // In a room just joined, what was said before the bot came
                // in is history, not a message to it.
                if let Some(join) = timeline.iter().rposition(|e| self.is_own_join(e)) {
                    timeline.drain(..join);
                }
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

    fn is_own_join(&self, event: &Value) -> bool {
        event["type"] == "m.room.member"
            && event["state_key"] == self.bot_user_id.as_str()
            && event["content"]["membership"] == "join"
    }

    /// The messages of `room_id` between `from` (our saved position) and
    /// `to` (where the sync's timeline starts), oldest first.
    async fn gap(&self, room_id: &str, from: &str, to: &str) -> Result<Vec<Value>, SyncError> {
        let filter = encode(r#"{"types":["m.room.message","m.room.member"]}"#);
        let mut events = Vec::new();
        let mut from = from.to_owned();
        // Bounded: a gap of more than 100 pages is left to the log.
        for _ in 0..100 {
            let url = format!(
                "{}/_matrix/client/v3/rooms/{}/messages?dir=f&limit=100&from={}&to={}&filter={filter}",
                self.base,
                encode(room_id),
                encode(&from),
                encode(to),
            );
            let page = self.call(self.client.get(url)).await?;
            let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
            let end = page["end"].as_str().map(str::to_owned);
            let done = chunk.is_empty() || end.is_none();
            events.extend(chunk);
            match end {
                Some(end) if !done => from = end,
                _ => return Ok(events),
            }
        }
        tracing::warn!(%room_id, "matrix gap over 10,000 messages; older ones skipped");
        Ok(events)
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
