//! Local-file attachments uploaded to each platform the way it documents,
//! checked at a fake platform on loopback (method, path, auth, multipart
//! shape, the bytes); files over the platform's limit or outside
//! `upload_dirs` are refused with a clear error and nothing is sent; a part
//! delivered once is never uploaded again.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{FromRequest, Multipart, Request};
use opticlaw_core::{Attachment, ResponseKind, ResponsePacket};
use opticlaw_gateway::{
    Channel, Gateway, GatewayConfig, MemoryAuditLog, MemoryLedger, MemoryPairingStore, MemorySink,
    PartOutcome, Platform, SendError, Sender,
};
use serde_json::{Value, json};

/// One field of a multipart body: its file name and content type if a file.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

/// One request the fake platform received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    query: Option<String>,
    auth: Option<String>,
    content_type: String,
    fields: Vec<Field>,
    body: Vec<u8>,
}

impl Call {
    fn field(&self, name: &str) -> &Field {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no field {name} in {self:?}"))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Calls = Arc<Mutex<Vec<Call>>>;

/// A fake of every platform's API: records each request (multipart bodies
/// split into fields) and answers with a body every platform's sender and
/// uploader read as success.
async fn fake() -> (String, Calls) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let calls: Calls = Arc::new(Mutex::new(Vec::new()));
    let upload_url = format!("{base}/slack/upload/F0ABC");
    let app = axum::Router::new()
        .fallback(record)
        .with_state((calls.clone(), upload_url));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, calls)
}

async fn record(
    axum::extract::State((recorded, upload_url)): axum::extract::State<(Calls, String)>,
    request: Request,
) -> axum::Json<Value> {
    let (auth, content_type) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (header("authorization"), header("content-type"))
    };
    let mut call = Call {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
        auth,
        content_type: content_type.unwrap_or_default(),
        fields: Vec::new(),
        body: Vec::new(),
    };
    if call.content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(request, &()).await.unwrap();
        while let Some(field) = form.next_field().await.unwrap() {
            call.fields.push(Field {
                name: field.name().unwrap_or_default().to_owned(),
                file_name: field.file_name().map(str::to_owned),
                content_type: field.content_type().map(str::to_owned),
                data: field.bytes().await.unwrap().to_vec(),
            });
        }
    } else {
        call.body = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
    }
    recorded.lock().unwrap().push(call);
    axum::Json(json!({
        "ok": true,
        "result": { "message_id": 501 },
        "id": "1055566778899",
        "messages": [{ "id": "wamid.sent" }],
        "content_uri": "mxc://example.org/uploaded",
        "event_id": "$sent",
        "upload_url": upload_url,
        "file_id": "F0ABC",
        "files": [{ "id": "F0ABC" }],
    }))
}

const CONTENT: &[u8] = b"%PDF-1.4 a small report\n";

fn packet(channel: &Channel, thread: &str, path: &str) -> ResponsePacket {
    ResponsePacket {
        seq: 7,
        in_reply_to: None,
        source: channel.source(),
        user_id: "u".into(),
        thread_id: thread.into(),
        kind: ResponseKind::Reply,
        text: "Here is the report.".into(),
        attachments: vec![Attachment {
            kind: "file".into(),
            name: Some("report.pdf".into()),
            mime_type: Some("application/pdf".into()),
            reference: path.into(),
            size_bytes: None,
        }],
        created_at: chrono::Utc::now(),
    }
}

struct Setup {
    gateway: Gateway<MemorySink, MemoryAuditLog, MemoryPairingStore>,
    sender: Sender<MemoryLedger>,
    calls: Calls,
    dir: tempfile::TempDir,
}

async fn setup(upload_dirs: bool) -> Setup {
    let (base, calls) = fake().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.pdf"), CONTENT).unwrap();
    let mut config: GatewayConfig = common::config(&base);
    config.send_rate_limits = false;
    if upload_dirs {
        config.upload_dirs = vec![dir.path().to_path_buf()];
    }
    let (gateway, sender) = common::memory_world(config);
    Setup {
        gateway,
        sender,
        calls,
        dir,
    }
}

impl Setup {
    fn report(&self) -> String {
        self.dir.path().join("report.pdf").display().to_string()
    }

    /// Renders the reply with its attachment and delivers every part.
    async fn send(
        &self,
        platform: Platform,
        thread: &str,
        path: &str,
    ) -> Result<opticlaw_gateway::Delivery, SendError> {
        let channel = Channel::default_for(platform);
        let parts = self
            .gateway
            .render(&channel, &packet(&channel, thread, path), None)
            .unwrap()
            .unwrap();
        self.sender.deliver(&parts).await
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn file_calls(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.fields.iter().any(|f| f.data == CONTENT) || c.body == CONTENT)
            .collect()
    }
}

#[tokio::test]
async fn telegram_uploads_a_local_file_with_send_document_multipart() {
    let s = setup(true).await;
    let delivery = s
        .send(Platform::Telegram, "1111111", &s.report())
        .await
        .unwrap();
    assert_eq!(delivery.parts.len(), 2, "the text, then the file");
    let calls = s.calls();
    assert!(calls[0].path.ends_with("/sendMessage"));
    let upload = &calls[1];
    assert_eq!(upload.method, "POST");
    assert_eq!(
        upload.path,
        format!("/telegram/bot{}/sendDocument", common::TELEGRAM_TOKEN)
    );
    assert!(upload.content_type.starts_with("multipart/form-data"));
    assert_eq!(upload.field("chat_id").data, b"1111111");
    assert_eq!(upload.field("caption").data, b"report.pdf");
    let document = upload.field("document");
    assert_eq!(document.data, CONTENT);
    assert_eq!(document.file_name.as_deref(), Some("report.pdf"));
    assert_eq!(document.content_type.as_deref(), Some("application/pdf"));
}

#[tokio::test]
async fn discord_uploads_with_payload_json_and_files_0() {
    let s = setup(true).await;
    let report = format!("file://{}", s.report());
    s.send(Platform::Discord, "645027906669510667", &report)
        .await
        .unwrap();
    let uploads = s.file_calls();
    assert_eq!(uploads.len(), 1);
    let upload = &uploads[0];
    assert_eq!(
        upload.path,
        "/discord/api/v10/channels/645027906669510667/messages"
    );
    assert_eq!(
        upload.auth.as_deref(),
        Some(format!("Bot {}", common::DISCORD_BOT_TOKEN).as_str())
    );
    let payload: Value = serde_json::from_slice(&upload.field("payload_json").data).unwrap();
    assert_eq!(payload["attachments"][0]["id"], 0);
    assert_eq!(payload["attachments"][0]["filename"], "report.pdf");
    assert_eq!(
        upload.field("files[0]").file_name.as_deref(),
        Some("report.pdf")
    );
    // The text part does not list the uploaded file as a link.
    let text = &s.calls()[0];
    assert!(
        !text.json()["content"]
            .as_str()
            .unwrap()
            .contains(&s.report())
    );
}

#[tokio::test]
async fn whatsapp_uploads_media_then_sends_it_by_id() {
    let s = setup(true).await;
    s.send(Platform::WhatsApp, "16505551234", &s.report())
        .await
        .unwrap();
    let calls = s.calls();
    let media = calls
        .iter()
        .position(|c| c.path.ends_with("/media"))
        .unwrap();
    let upload = &calls[media];
    assert_eq!(
        upload.path,
        format!("/whatsapp/v21.0/{}/media", common::WHATSAPP_PHONE_ID)
    );
    assert_eq!(
        upload.auth.as_deref(),
        Some(format!("Bearer {}", common::WHATSAPP_ACCESS_TOKEN).as_str())
    );
    assert_eq!(upload.field("messaging_product").data, b"whatsapp");
    assert_eq!(upload.field("type").data, b"application/pdf");
    assert_eq!(upload.field("file").data, CONTENT);
    let message = calls[media + 1].json();
    assert_eq!(message["type"], "document");
    assert_eq!(message["document"]["id"], "1055566778899");
    assert_eq!(message["document"]["filename"], "report.pdf");
    assert!(message["document"].get("link").is_none());
}

#[tokio::test]
async fn slack_gets_an_upload_url_uploads_and_completes_in_the_channel() {
    let s = setup(true).await;
    s.send(Platform::Slack, "C024BE91L", &s.report())
        .await
        .unwrap();
    let calls = s.calls();
    let at = calls
        .iter()
        .position(|c| c.path.ends_with("files.getUploadURLExternal"))
        .unwrap();
    let (get, put, complete) = (&calls[at], &calls[at + 1], &calls[at + 2]);
    let bearer = format!("Bearer {}", common::SLACK_BOT_TOKEN);
    assert_eq!(get.auth.as_deref(), Some(bearer.as_str()));
    assert!(
        get.content_type
            .starts_with("application/x-www-form-urlencoded")
    );
    let args: Vec<(String, String)> = form_urlencoded::parse(&get.body).into_owned().collect();
    assert!(
        args.contains(&("filename".into(), "report.pdf".into())),
        "{args:?}"
    );
    assert!(
        args.contains(&("length".into(), CONTENT.len().to_string())),
        "{args:?}"
    );
    assert_eq!(put.path, "/slack/upload/F0ABC");
    assert_eq!(put.auth, None, "the upload URL needs no token");
    assert_eq!(put.field("file").data, CONTENT);
    assert_eq!(complete.path, "/slack/api/files.completeUploadExternal");
    assert_eq!(complete.auth.as_deref(), Some(bearer.as_str()));
    let body = complete.json();
    assert_eq!(body["channel_id"], "C024BE91L");
    assert_eq!(body["files"][0]["id"], "F0ABC");
    assert_eq!(body["files"][0]["title"], "report.pdf");
}

#[tokio::test]
async fn matrix_uploads_to_the_media_repository_then_sends_an_m_file() {
    let s = setup(true).await;
    s.send(Platform::Matrix, "!room:example.org", &s.report())
        .await
        .unwrap();
    let calls = s.calls();
    let at = calls
        .iter()
        .position(|c| c.path == "/matrix/_matrix/media/v3/upload")
        .unwrap();
    let upload = &calls[at];
    assert_eq!(upload.method, "POST");
    assert_eq!(upload.query.as_deref(), Some("filename=report.pdf"));
    assert_eq!(upload.content_type, "application/pdf");
    assert_eq!(upload.body, CONTENT);
    assert_eq!(
        upload.auth.as_deref(),
        Some(format!("Bearer {}", common::MATRIX_AS_TOKEN).as_str())
    );
    let event = &calls[at + 1];
    assert_eq!(event.method, "PUT");
    assert!(
        event.path.contains("/send/m.room.message/"),
        "{}",
        event.path
    );
    let body = event.json();
    assert_eq!(body["msgtype"], "m.file");
    assert_eq!(body["url"], "mxc://example.org/uploaded");
    assert_eq!(body["body"], "report.pdf");
}

#[tokio::test]
async fn a_file_over_the_platforms_limit_is_refused_naming_it() {
    let s = setup(true).await;
    let big = s.dir.path().join("big.bin");
    // Discord takes 10 MiB unboosted: one byte more (sparse, costs no disk).
    std::fs::File::create(&big)
        .unwrap()
        .set_len(10 * 1024 * 1024 + 1)
        .unwrap();
    let err = s
        .send(
            Platform::Discord,
            "645027906669510667",
            &big.display().to_string(),
        )
        .await
        .unwrap_err();
    match &err {
        SendError::Upload { part, detail, .. } => {
            assert_eq!(*part, 1);
            assert!(detail.contains("big.bin"), "{detail}");
            assert!(detail.contains("10485761 bytes"), "{detail}");
            assert!(detail.contains("limit of 10485760 bytes"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.calls().len(), 1, "only the text went out");
}

#[tokio::test]
async fn files_outside_upload_dirs_never_leave_the_machine() {
    let s = setup(false).await;
    let err = s
        .send(Platform::Telegram, "1111111", &s.report())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Upload { detail, .. } if detail.contains("upload_dirs")),
        "{err:?}"
    );
    assert!(s.file_calls().is_empty());
}

#[tokio::test]
async fn a_delivered_upload_is_never_sent_again() {
    let s = setup(true).await;
    let first = s
        .send(Platform::Telegram, "1111111", &s.report())
        .await
        .unwrap();
    assert!(matches!(first.parts[1].1, PartOutcome::Sent { .. }));
    let again = s
        .send(Platform::Telegram, "1111111", &s.report())
        .await
        .unwrap();
    assert!(
        matches!(again.parts[1].1, PartOutcome::AlreadySent { .. }),
        "{again:?}"
    );
    assert_eq!(s.file_calls().len(), 1);
}
