//! `opticlaw channels add|list|test|remove`, run as a user would, with
//! `test` probing a fake Telegram Bot API on loopback (`getMe`), which
//! refuses any other token as Telegram does.

mod common;

use serde_json::json;

const TOKEN: &str = "123456:REAL-token";

/// A fake Bot API answering `getMe` for [`TOKEN`] only.
fn fake_bot_api() -> String {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/{*path}",
        get(|axum::extract::Path(path): axum::extract::Path<String>| async move {
            if path == format!("bot{TOKEN}/getMe") {
                let me = json!({"id": 123456, "is_bot": true, "first_name": "Opti", "username": "opti_bot"});
                (StatusCode::OK, axum::Json(json!({"ok": true, "result": me})))
            } else {
                let refusal = json!({"ok": false, "error_code": 401, "description": "Unauthorized"});
                (StatusCode::UNAUTHORIZED, axum::Json(refusal))
            }
        }),
    );
    common::serve_in_thread(app, 30).0
}

/// `opticlaw channels add telegram --account ACCOUNT` with `token` from the environment.
fn add_telegram(home: &common::Home, account: &str, token: &str, extra: &[&str]) {
    let mut args = vec![
        "channels",
        "add",
        "telegram",
        "--account",
        account,
        "--secret-env",
        "bot_token=TEST_TG_TOKEN",
    ];
    args.extend_from_slice(extra);
    let add = home
        .command(&args)
        .env("TEST_TG_TOKEN", token)
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn channels_add_list_test_and_remove() {
    let home = common::Home::init();
    let api = fake_bot_api();
    let before = std::fs::read_to_string(home.config_file()).unwrap();

    let api_base = format!("api_base={api}");
    add_telegram(
        &home,
        "work",
        TOKEN,
        &["--set", "long_poll=true", "--set", &api_base],
    );
    let config = std::fs::read_to_string(home.config_file()).unwrap();
    let mut kept = config.lines();
    for line in before.lines() {
        assert!(
            kept.any(|l| l == line),
            "line {line:?} of the old file (comments too) is kept, in order:\n{config}"
        );
    }
    assert!(config.contains("[[gateway.telegram]]") && config.contains(TOKEN));

    let list = home.run(&["channels", "list"]);
    assert!(list.status.success());
    let text = stdout(&list);
    assert!(
        text.contains("telegram") && text.contains("work") && text.contains("getUpdates long-poll"),
        "{text}"
    );

    let probe = home.run(&["channels", "test"]);
    assert!(probe.status.success(), "{probe:?}");
    let text = stdout(&probe);
    assert!(
        text.contains("telegram/work: ok, @opti_bot (id 123456)"),
        "{text}"
    );

    // A second account with a wrong token: the probe fails, names the
    // account, does not print the token, and the exit code says so.
    add_telegram(&home, "old", "999:STALE-token", &["--set", &api_base]);
    let probe = home.run(&["channels", "test", "telegram/old"]);
    assert!(!probe.status.success());
    let text = stdout(&probe);
    assert!(
        text.contains("telegram/old: FAILED") && text.contains("Unauthorized"),
        "{text}"
    );
    assert!(!text.contains("STALE"), "token leaked: {text}");

    for account in ["old", "work"] {
        let remove = home.run(&["channels", "remove", "telegram", "--account", account]);
        assert!(remove.status.success(), "{remove:?}");
    }
    assert_eq!(
        std::fs::read_to_string(home.config_file())
            .unwrap()
            .trim_end(),
        before.trim_end()
    );
    let remove = home.run(&["channels", "remove", "telegram", "--account", "work"]);
    assert!(!remove.status.success());
    assert!(String::from_utf8_lossy(&remove.stderr).contains("telegram/work is not configured"));
}
