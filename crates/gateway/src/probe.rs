//! `opticlaw channels test`: one real, read-only call per account that
//! proves its credentials, where the platform has one:
//!
//! | platform | call | reference |
//! |---|---|---|
//! | Telegram | `getMe` | <https://core.telegram.org/bots/api#getme> |
//! | Slack | `auth.test` | <https://api.slack.com/methods/auth.test> |
//! | Discord | `GET /users/@me` with the bot token | <https://discord.com/developers/docs/resources/user#get-current-user> |
//! | WhatsApp | `GET /{phone-number-id}?fields=display_phone_number,verified_name` | <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/phone-numbers> |
//! | Matrix | `GET /_matrix/client/v3/account/whoami` | <https://spec.matrix.org/latest/client-server-api/#get_matrixclientv3accountwhoami> |
//!
//! Inbound secrets (signing secrets, public keys, `hs_token`) cannot be
//! probed: only the platform uses them.

use std::time::Duration;

use serde_json::Value;

use crate::{Channel, GatewayConfig, Platform};

/// Why a probe failed; never contains a credential.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0} is not configured")]
    NotConfigured(Channel),
    #[error("{channel}: nothing to probe: {detail}")]
    Unprobeable { channel: Channel, detail: String },
    #[error("{channel}: request failed: {detail}")]
    Transport { channel: Channel, detail: String },
    #[error("{channel}: refused (HTTP {status}): {detail}")]
    Refused {
        channel: Channel,
        status: u16,
        detail: String,
    },
}

/// Probes one account; returns who the platform says the credentials belong to.
pub async fn probe(
    client: &reqwest::Client,
    config: &GatewayConfig,
    channel: &Channel,
) -> Result<String, ProbeError> {
    let missing = || ProbeError::NotConfigured(channel.clone());
    let base = |b: &str| b.trim_end_matches('/').to_owned();
    let request = match channel.platform {
        Platform::Telegram => {
            let c = find(&config.telegram, channel, |c| &c.account).ok_or_else(missing)?;
            let url = format!("{}/bot{}/getMe", base(&c.api_base), c.bot_token.expose());
            client.get(url)
        }
        Platform::Slack => {
            let c = find(&config.slack, channel, |c| &c.account).ok_or_else(missing)?;
            client
                .post(format!("{}/auth.test", base(&c.api_base)))
                .bearer_auth(c.bot_token.expose())
        }
        Platform::Discord => {
            let c = find(&config.discord, channel, |c| &c.account).ok_or_else(missing)?;
            let token = c
                .bot_token
                .as_ref()
                .ok_or_else(|| ProbeError::Unprobeable {
                    channel: channel.clone(),
                    detail: "no bot_token (interactions need none; add one to probe)".into(),
                })?;
            client
                .get(format!("{}/users/@me", base(&c.api_base)))
                .header("authorization", format!("Bot {}", token.expose()))
        }
        Platform::WhatsApp => {
            let c = find(&config.whatsapp, channel, |c| &c.account).ok_or_else(missing)?;
            client
                .get(format!(
                    "{}/{}?fields=display_phone_number,verified_name",
                    base(&c.api_base),
                    c.phone_number_id
                ))
                .bearer_auth(c.access_token.expose())
        }
        Platform::Matrix => {
            let c = find(&config.matrix, channel, |c| &c.account).ok_or_else(missing)?;
            client
                .get(format!(
                    "{}/_matrix/client/v3/account/whoami",
                    base(&c.homeserver_url)
                ))
                .bearer_auth(c.as_token.expose())
        }
    };
    let response = request
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .map_err(|e| ProbeError::Transport {
            channel: channel.clone(),
            // without the URL: Telegram's carries the bot token
            detail: e.without_url().to_string(),
        })?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    identity(channel.platform, status, &body).ok_or_else(|| ProbeError::Refused {
        channel: channel.clone(),
        status,
        detail: refusal(&body),
    })
}

fn find<'a, T>(items: &'a [T], channel: &Channel, account: fn(&T) -> &String) -> Option<&'a T> {
    items.iter().find(|c| *account(c) == channel.account)
}

/// The identity in a successful answer, `None` for a refusal.
fn identity(platform: Platform, status: u16, body: &Value) -> Option<String> {
    let ok = (200..300).contains(&status);
    let s = |v: &Value| v.as_str().map(str::to_owned);
    match platform {
        Platform::Telegram => (body["ok"] == true).then(|| {
            let username = s(&body["result"]["username"]).unwrap_or_default();
            format!("@{username} (id {})", body["result"]["id"])
        }),
        Platform::Slack => (ok && body["ok"] == true).then(|| {
            format!(
                "{} in team {}",
                s(&body["user"]).unwrap_or_default(),
                s(&body["team"]).unwrap_or_default()
            )
        }),
        Platform::Discord => ok.then(|| s(&body["username"]))?,
        Platform::WhatsApp => ok.then(|| {
            format!(
                "{} ({})",
                s(&body["display_phone_number"]).unwrap_or_default(),
                s(&body["verified_name"]).unwrap_or_default()
            )
        }),
        Platform::Matrix => ok.then(|| s(&body["user_id"]))?,
    }
}

/// The platform's own words for a refusal.
fn refusal(body: &Value) -> String {
    [
        &body["description"],
        &body["error"]["message"],
        &body["error"],
        &body["message"],
    ]
    .into_iter()
    .find_map(|v| v.as_str())
    .unwrap_or("no error text")
    .to_owned()
}
