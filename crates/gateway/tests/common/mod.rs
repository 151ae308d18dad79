//! Shared test harness: a real gateway server on 127.0.0.1, signing helpers
//! that sign exactly as each platform does, and a fake platform API server.
#![allow(dead_code)]

pub mod fake_platform;

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::Utc;
use ed25519_dalek::{Signer, SigningKey};
use opticlaw_gateway::platforms::{slack, whatsapp};
use opticlaw_gateway::{
    DEFAULT_ACCOUNT, DiscordConfig, Gateway, GatewayConfig, MatrixConfig, MemoryAuditLog,
    MemoryPairingStore, MemorySink, Secret, SlackConfig, TelegramConfig, TelegramParseMode,
    WhatsAppConfig, webhook_router,
};
use tokio::task::JoinHandle;

pub const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
pub const SLACK_BOT_TOKEN: &str = "xoxb-test-token";
pub const TELEGRAM_TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
pub const TELEGRAM_SECRET: &str = "telegram-webhook-secret_42";
/// A second bot, the `work` account in multi-account tests.
pub const TELEGRAM_WORK_TOKEN: &str = "654321:WORK-bot-token";
pub const TELEGRAM_WORK_SECRET: &str = "telegram-work-secret_7";
pub const DISCORD_APP_ID: &str = "1107430150000000000";
pub const DISCORD_BOT_TOKEN: &str = "discord-bot-token";
pub const WHATSAPP_APP_SECRET: &str = "whatsapp-app-secret";
pub const WHATSAPP_VERIFY_TOKEN: &str = "meatyhamhock";
pub const WHATSAPP_ACCESS_TOKEN: &str = "EAAG-whatsapp-access";
pub const WHATSAPP_PHONE_ID: &str = "106540352242922";
pub const MATRIX_HS_TOKEN: &str = "hs-token-from-registration";
pub const MATRIX_AS_TOKEN: &str = "as-token-from-registration";
pub const MATRIX_BOT: &str = "@opticlaw:example.org";

/// The fixed Discord application key pair used by tests.
pub fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// A config with every platform, allow-listing the fixtures' senders.
/// `api` is the fake platform's base URL.
pub fn config(api: &str) -> GatewayConfig {
    GatewayConfig {
        slack: vec![SlackConfig {
            account: DEFAULT_ACCOUNT.into(),
            signing_secret: Secret::new(SLACK_SECRET),
            bot_token: Secret::new(SLACK_BOT_TOKEN),
            allow_from: vec!["U2147483697".into()],
            api_base: format!("{api}/slack/api"),
        }],
        telegram: vec![TelegramConfig {
            account: DEFAULT_ACCOUNT.into(),
            bot_token: Secret::new(TELEGRAM_TOKEN),
            webhook_secret: Some(Secret::new(TELEGRAM_SECRET)),
            allow_from: vec!["1111111".into()],
            api_base: format!("{api}/telegram"),
            parse_mode: TelegramParseMode::MarkdownV2,
            long_poll: false,
            poll_timeout_secs: 50,
        }],
        discord: vec![DiscordConfig {
            account: DEFAULT_ACCOUNT.into(),
            application_id: DISCORD_APP_ID.into(),
            public_key: hex::encode(discord_key().verifying_key().as_bytes()),
            bot_token: Some(Secret::new(DISCORD_BOT_TOKEN)),
            allow_from: vec!["53908232506183680".into()],
            api_base: format!("{api}/discord/api/v10"),
        }],
        whatsapp: vec![WhatsAppConfig {
            account: DEFAULT_ACCOUNT.into(),
            app_secret: Secret::new(WHATSAPP_APP_SECRET),
            verify_token: Secret::new(WHATSAPP_VERIFY_TOKEN),
            access_token: Secret::new(WHATSAPP_ACCESS_TOKEN),
            phone_number_id: WHATSAPP_PHONE_ID.into(),
            allow_from: vec!["16505551234".into()],
            api_base: format!("{api}/whatsapp/v21.0"),
        }],
        matrix: vec![MatrixConfig {
            account: DEFAULT_ACCOUNT.into(),
            hs_token: Some(Secret::new(MATRIX_HS_TOKEN)),
            as_token: Secret::new(MATRIX_AS_TOKEN),
            sync: false,
            sync_timeout_secs: 50,
            sync_timeline_limit: 100,
            homeserver_url: format!("{api}/matrix"),
            bot_user_id: MATRIX_BOT.into(),
            allow_from: vec!["@alice:example.org".into()],
        }],
        ..GatewayConfig::default()
    }
}

/// A running gateway on loopback with in-memory sink, audit log and pairing.
pub struct Harness {
    pub base: String,
    pub sink: Arc<MemorySink>,
    pub audit: Arc<MemoryAuditLog>,
    pub pairing: Arc<MemoryPairingStore>,
    pub client: reqwest::Client,
    server: JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Harness {
    pub async fn start(config: GatewayConfig) -> Self {
        let sink = Arc::new(MemorySink::new());
        let audit = Arc::new(MemoryAuditLog::new());
        let pairing = Arc::new(MemoryPairingStore::new());
        let gateway = Gateway::new(config, sink.clone(), audit.clone(), pairing.clone())
            .expect("gateway config is valid");
        let app = webhook_router(Arc::new(gateway));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Self {
            base: format!("http://{addr}"),
            sink,
            audit,
            pairing,
            client: reqwest::Client::new(),
            server,
        }
    }

    /// Starts with the default all-platform config (outbound unused).
    pub async fn start_default() -> Self {
        Self::start(config("http://127.0.0.1:9")).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs a body signed the way Slack signs it, at `ts`.
    pub async fn post_slack(
        &self,
        body: &[u8],
        ts: i64,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let ts = ts.to_string();
        let mut req = self
            .client
            .post(self.url("/hooks/slack/default"))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", &ts)
            .header("x-slack-signature", slack::sign(SLACK_SECRET, &ts, body))
            .body(body.to_vec());
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    pub async fn post_telegram(&self, body: &[u8], secret: &str) -> reqwest::Response {
        self.post_telegram_at("/hooks/telegram/default", body, secret)
            .await
    }

    /// POSTs a Telegram update to `path` with `secret` as the secret token.
    pub async fn post_telegram_at(
        &self,
        path: &str,
        body: &[u8],
        secret: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("x-telegram-bot-api-secret-token", secret)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// POSTs a body signed with `key` the way Discord signs interactions.
    pub async fn post_discord(&self, body: &[u8], key: &SigningKey, ts: i64) -> reqwest::Response {
        let ts = ts.to_string();
        let mut message = ts.as_bytes().to_vec();
        message.extend_from_slice(body);
        let signature = key.sign(&message);
        self.client
            .post(self.url("/hooks/discord/default"))
            .header("content-type", "application/json")
            .header("x-signature-ed25519", hex::encode(signature.to_bytes()))
            .header("x-signature-timestamp", ts)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub async fn post_whatsapp(&self, body: &[u8], secret: &str) -> reqwest::Response {
        self.client
            .post(self.url("/hooks/whatsapp/default"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", whatsapp::sign(secret, body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub async fn put_matrix(
        &self,
        txn: &str,
        body: &[u8],
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .put(self.url(&format!(
                "/hooks/matrix/default/_matrix/app/v1/transactions/{txn}"
            )))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn now() -> i64 {
    Utc::now().timestamp()
}

/// A gateway with in-memory sink, audit log and pairing, and a sender with
/// an in-memory ledger, both from `config`.
pub fn memory_world(
    config: GatewayConfig,
) -> (
    Gateway<MemorySink, MemoryAuditLog, MemoryPairingStore>,
    opticlaw_gateway::Sender<opticlaw_gateway::MemoryLedger>,
) {
    let gateway = Gateway::new(
        config.clone(),
        Arc::new(MemorySink::new()),
        Arc::new(MemoryAuditLog::new()),
        Arc::new(MemoryPairingStore::new()),
    )
    .unwrap();
    let ledger = Arc::new(opticlaw_gateway::MemoryLedger::new());
    let sender = opticlaw_gateway::Sender::new(reqwest::Client::new(), config, ledger);
    (gateway, sender)
}
