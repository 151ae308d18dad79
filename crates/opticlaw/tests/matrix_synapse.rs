//! Matrix against a REAL homeserver: Synapse, installed from PyPI by
//! `scripts/install-synapse` into `.cache/synapse/venv`, runs on loopback
//! with registration by shared secret. A user and the bot are registered,
//! the user invites the bot and writes `/help`, and the daemon (a plain bot
//! user on `/sync` long-poll) answers in the room; what was said before it
//! joined is not answered. The daemon is then stopped, the user writes six
//! more times (more than one `/sync` timeline holds, here 2), and after a
//! restart the bot answers each once, fetching the gap with `/messages`, and
//! the first message not again (the `since` token is stored).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SHARED_SECRET: &str = "opticlaw-test-registration-secret";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Synapse virtualenv, installed by `scripts/install-synapse` if missing.
fn synapse_venv() -> PathBuf {
    let script = repo_root().join("scripts/install-synapse");
    let output = Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", script.display()));
    assert!(
        output.status.success(),
        "the Matrix test needs Synapse (PyPI `matrix-synapse`), and scripts/install-synapse \
         could not install it (it needs python3 with venv and a reachable PyPI):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// A running Synapse on a free loopback port; killed on drop.
struct Synapse {
    child: Child,
    base: String,
    venv: PathBuf,
    config: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Synapse {
    fn start() -> Self {
        let venv = synapse_venv();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = common::free_port();
        let limit = "{per_second: 1000, burst_count: 1000}";
        let config = dir.path().join("homeserver.yaml");
        std::fs::write(
            &config,
            format!(
                r#"server_name: "localhost"
pid_file: "{d}/homeserver.pid"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{d}/homeserver.db"
media_store_path: "{d}/media_store"
signing_key_path: "{d}/localhost.signing.key"
registration_shared_secret: "{SHARED_SECRET}"
enable_registration: false
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
url_preview_enabled: false
presence:
  enabled: false
macaroon_secret_key: "opticlaw-test-macaroon"
form_secret: "opticlaw-test-form"
rc_message: {limit}
rc_registration: {limit}
rc_login:
  address: {limit}
  account: {limit}
  failed_attempts: {limit}
rc_joins:
  local: {limit}
  remote: {limit}
rc_invites:
  per_room: {limit}
  per_user: {limit}
  per_issuer: {limit}
"#
            ),
        )
        .unwrap();
        let python = venv.join("bin/python");
        let keys = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "--generate-keys", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            keys.status.success(),
            "synapse --generate-keys failed: {}",
            String::from_utf8_lossy(&keys.stderr)
        );
        let log = dir.path().join("synapse.log");
        let child = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let synapse = Synapse {
            child,
            base: format!("http://127.0.0.1:{port}"),
            venv,
            config,
            log,
            _dir: dir,
        };
        synapse.wait_ready();
        synapse
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = unsafe_child_status(&self.child) {
                panic!("synapse exited ({status}):\n{}", self.log_tail());
            }
            if block(reqwest::Client::new().get(format!("{}/_matrix/client/versions", self.base)))
                .map(|(status, _)| status == 200)
                .unwrap_or(false)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("synapse did not start within 180 s:\n{}", self.log_tail());
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Registers `user` with the shared secret (Synapse's own tool), then logs in.
    fn register(&self, user: &str) -> String {
        let output = Command::new(self.venv.join("bin/register_new_matrix_user"))
            .args(["-u", user, "-p", "correct-horse", "--no-admin", "-c"])
            .arg(&self.config)
            .arg(&self.base)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "registering {user} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let (status, body) = self.call(
            "POST",
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": "correct-horse"}),
        );
        assert_eq!(status, 200, "login of {user}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let client = reqwest::Client::new();
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "GET" => client.get(url),
            "PUT" => client.put(url).json(&body),
            _ => client.post(url).json(&body),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (status, text) = block(request).expect("synapse answers");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn unsafe_child_status(child: &Child) -> std::io::Result<Option<std::process::ExitStatus>> {
    // try_wait needs &mut; peek through /proc instead so Drop keeps ownership.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id()))?;
    let zombie = stat
        .split(") ")
        .nth(1)
        .is_some_and(|rest| rest.starts_with('Z'));
    Ok(zombie.then(std::process::ExitStatus::default))
}

fn block(request: reqwest::RequestBuilder) -> Result<(u16, String), reqwest::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = request.timeout(Duration::from_secs(60)).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    })
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The bot's messages in `room`, read by `alice` from the room's history.
fn bot_messages(synapse: &Synapse, alice: &str, room: &str) -> Vec<String> {
    let (status, body) = synapse.call(
        "GET",
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
            encode(room)
        ),
        Some(alice),
        Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    let mut texts: Vec<String> = body["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.message" && e["sender"] == "@opticlaw:localhost")
        .map(|e| e["content"]["body"].as_str().unwrap_or("").to_owned())
        .collect();
    texts.reverse();
    texts
}

fn wait_until<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(value) = check() {
            return value;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {within:?} waiting for {what}");
}

fn say(synapse: &Synapse, alice: &str, room: &str, txn: &str, text: &str) {
    let (status, body) = synapse.call(
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/{txn}",
            encode(room)
        ),
        Some(alice),
        json!({"msgtype": "m.text", "body": text}),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn bot_user_answers_in_a_real_synapse_room_and_resumes_after_restart() {
    let synapse = Synapse::start();
    let alice = synapse.register("alice");
    let bot = synapse.register("opticlaw");
    let (status, created) = synapse.call(
        "POST",
        "/_matrix/client/v3/createRoom",
        Some(&alice),
        json!({"preset": "private_chat", "invite": ["@opticlaw:localhost"], "name": "assistant"}),
    );
    assert_eq!(status, 200, "{created}");
    let room = created["room_id"].as_str().unwrap().to_owned();
    // Said before the bot is in the room: history, never answered.
    say(&synapse, &alice, &room, "t0", "/time");

    let home = common::Home::init();
    let mut config = std::fs::read_to_string(home.config_file()).unwrap();
    config.push_str(&format!(
        "\n[gateway.matrix]\nsync = true\nsync_timeout_secs = 30\nsync_timeline_limit = 2\nas_token = \"{bot}\"\nhomeserver_url = \"{}\"\nbot_user_id = \"@opticlaw:localhost\"\nallow_from = [\"@alice:localhost\"]\n",
        synapse.base
    ));
    std::fs::write(home.config_file(), config).unwrap();
    let daemon = home.serve();

    // The bot accepts the invite from its own /sync.
    wait_until("the bot to join", Duration::from_secs(60), || {
        let (_, members) = synapse.call(
            "GET",
            &format!("/_matrix/client/v3/rooms/{}/joined_members", encode(&room)),
            Some(&alice),
            Value::Null,
        );
        members["joined"]["@opticlaw:localhost"]
            .is_object()
            .then_some(())
    });

    say(&synapse, &alice, &room, "t1", "/help");
    let replies = wait_until("the /help reply", Duration::from_secs(60), || {
        Some(bot_messages(&synapse, &alice, &room)).filter(|m| !m.is_empty())
    });
    assert!(
        replies[0].contains("/help"),
        "the rule-path help text: {replies:?}"
    );

    // Down: more messages than one /sync timeline holds arrive meanwhile.
    drop(daemon);
    let while_down = [
        "what time is it?",
        "/help",
        "/time",
        "/help",
        "/time",
        "/help",
    ];
    for (i, text) in while_down.iter().enumerate() {
        say(&synapse, &alice, &room, &format!("down{i}"), text);
    }
    let expected = 1 + while_down.len();
    let daemon = home.serve();
    let replies = wait_until("the replies after restart", Duration::from_secs(60), || {
        Some(bot_messages(&synapse, &alice, &room)).filter(|m| m.len() >= expected)
    });
    // Give a re-processed /help (or an answer to its own reply) time to show.
    std::thread::sleep(Duration::from_secs(3));
    let replies_later = bot_messages(&synapse, &alice, &room);
    assert_eq!(
        replies_later.len(),
        expected,
        "one answer per message since the bot joined, none twice, none to itself: {replies_later:?}"
    );
    assert_eq!(replies_later, replies);
    drop(daemon);
}

#[test]
fn a_local_file_is_uploaded_to_synapse_and_posted_as_an_m_file() {
    use opticlaw_gateway::{
        Channel, Gateway, GatewayConfig, MatrixConfig, MemoryAuditLog, MemoryLedger,
        MemoryPairingStore, MemorySink, Platform, Secret, Sender,
    };
    let synapse = Synapse::start();
    let bot = synapse.register("opticlaw");
    let (status, created) = synapse.call(
        "POST",
        "/_matrix/client/v3/createRoom",
        Some(&bot),
        json!({"preset": "private_chat", "name": "files"}),
    );
    assert_eq!(status, 200, "{created}");
    let room = created["room_id"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let content = b"quarterly numbers: 1, 2, 3\n";
    std::fs::write(dir.path().join("report.txt"), content).unwrap();

    let config = GatewayConfig {
        send_rate_limits: false,
        upload_dirs: vec![dir.path().to_path_buf()],
        matrix: vec![MatrixConfig {
            account: "default".into(),
            hs_token: None,
            as_token: Secret::new(bot.clone()),
            sync: true,
            sync_timeout_secs: 30,
            sync_timeline_limit: 10,
            homeserver_url: synapse.base.clone(),
            bot_user_id: "@opticlaw:localhost".into(),
            allow_from: Vec::new(),
        }],
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(
        config.clone(),
        std::sync::Arc::new(MemorySink::new()),
        std::sync::Arc::new(MemoryAuditLog::new()),
        std::sync::Arc::new(MemoryPairingStore::new()),
    )
    .unwrap();
    let sender = Sender::new(
        reqwest::Client::new(),
        config,
        std::sync::Arc::new(MemoryLedger::new()),
    );
    let packet = opticlaw_core::ResponsePacket {
        seq: 1,
        in_reply_to: None,
        source: "matrix".into(),
        user_id: "@alice:localhost".into(),
        thread_id: room.clone(),
        kind: opticlaw_core::ResponseKind::Reply,
        text: "The report:".into(),
        attachments: vec![opticlaw_core::Attachment {
            kind: "file".into(),
            name: Some("report.txt".into()),
            mime_type: Some("text/plain".into()),
            reference: dir.path().join("report.txt").display().to_string(),
            size_bytes: None,
        }],
        created_at: chrono::Utc::now(),
    };
    let parts = gateway
        .render(&Channel::default_for(Platform::Matrix), &packet, None)
        .unwrap()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(sender.deliver(&parts)).unwrap();

    // The room holds an m.file event whose mxc:// URI serves the same bytes.
    let (status, messages) = synapse.call(
        "GET",
        &format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=10",
            encode(&room)
        ),
        Some(&bot),
        Value::Null,
    );
    assert_eq!(status, 200, "{messages}");
    let file = messages["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["content"]["msgtype"] == "m.file")
        .unwrap_or_else(|| panic!("no m.file event: {messages}"))
        .clone();
    assert_eq!(file["content"]["body"], "report.txt");
    let uri = file["content"]["url"].as_str().unwrap();
    let media = uri.strip_prefix("mxc://").expect("an mxc:// URI");
    let download = reqwest::Client::new()
        .get(format!(
            "{}/_matrix/client/v1/media/download/{media}",
            synapse.base
        ))
        .bearer_auth(&bot);
    let bytes = runtime.block_on(async {
        let response = download.send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap()
    });
    assert_eq!(&bytes[..], content);
}
