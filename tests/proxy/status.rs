//! `GET /status` and `GET /` on `metrics_listen`: the JSON's numbers agree
//! with `/metrics`; the HTML page, opened in a real headless Chromium, renders
//! (screenshot under target/) and shows the numbers `/status` gives; neither
//! shows a password, its hash, a key name or a value.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::support::*;

const USERS: &str = "[[users]]\nname = \"app\"\nrules = \"on >secretpw ~app:* +@all\"\n\
                     rate = { ops_per_sec = 1000, burst = 100 }\n\n\
                     [[users]]\nname = \"bob\"\nrules = \"on ~* +@all\"\n";

/// The `data-field` values of a rendered page, by field.
fn fields(dom: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in dom.split("data-field=\"").skip(1) {
        let Some((name, rest)) = part.split_once('"') else {
            continue;
        };
        let Some(value) = rest.split_once('>').and_then(|(_, v)| v.split_once('<')) else {
            continue;
        };
        out.push((name.replace("&quot;", "\""), value.0.to_string()));
    }
    out
}

/// The value at a dotted `path` of `status` (`users.app.connections`: the
/// user named `app`).
fn at(status: &serde_json::Value, path: &str) -> String {
    let mut v = status;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        v = match (p, v) {
            ("users", _) => {
                let name = parts.next().unwrap_or_default();
                let user = v["users"]
                    .as_array()
                    .and_then(|u| u.iter().find(|x| x["name"] == name));
                let Some(user) = user else {
                    return String::new();
                };
                if parts.peek() == Some(&"denied") {
                    let c = &user["commands"];
                    let sum: u64 = ["denied_command", "denied_key", "denied_channel"]
                        .iter()
                        .filter_map(|r| c[*r].as_u64())
                        .sum();
                    return sum.to_string();
                }
                user
            }
            ("certificates", _) => {
                let name = parts.next().unwrap_or_default();
                let cert = v["certificates"]
                    .as_array()
                    .and_then(|c| c.iter().find(|x| x["cert"] == name));
                let Some(cert) = cert else {
                    return String::new();
                };
                let days = (cert["not_after"].as_i64().unwrap_or(0)
                    - status["now"].as_i64().unwrap_or(0))
                .div_euclid(86_400);
                return days.to_string();
            }
            (p, v) => &v[p],
        };
    }
    match v {
        serde_json::Value::Bool(true) => "healthy".into(),
        serde_json::Value::Bool(false) => "unhealthy".into(),
        other => other.to_string().trim_matches('"').to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_and_page_agree_and_hold_no_secret() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(
        &base_config_with_server(
            &pki,
            &redis.addr(),
            "metrics_listen = \"127.0.0.1:0\"",
            USERS,
        ),
        pki.dir(),
    );
    // Traffic: app forwards and is denied a key (secret:key); a failed AUTH.
    let mut app = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    assert!(app.cmd_str(&["AUTH", "app", "secretpw"]).await.is_ok());
    for i in 0..5 {
        assert!(app
            .cmd_str(&["SET", &format!("app:{i}"), "topsecretvalue"])
            .await
            .is_ok());
    }
    assert!(app.cmd_str(&["GET", "secret:key"]).await.is_error());
    let mut stranger = resp_tls(proxy.tls_addr(), &pki, Some("carol")).await;
    assert!(stranger.cmd_str(&["AUTH", "app", "wrong"]).await.is_error());
    proxy.sighup();
    assert!(proxy
        .wait_for_log(std::time::Duration::from_secs(10), |l| l
            .contains("configuration reloaded"))
        .is_some());

    let (code, body) = http_get(proxy.metrics_addr(), "/status").await;
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["upstream"]["healthy"], true);
    assert_eq!(status["upstream"]["servers"][0]["addr"], redis.addr());
    assert_eq!(at(&status, "users.app.connections"), "1");
    assert_eq!(status["users"][0]["rate"]["ops_per_sec"], 1000);
    let (_, metrics) = http_get(proxy.metrics_addr(), "/metrics").await;
    for (user, result) in [("app", "forwarded"), ("app", "denied_key")] {
        let sample = format!("portcullis_commands_total{{user=\"{user}\",result=\"{result}\"}}");
        let json = at(&status, &format!("users.{user}.commands.{result}"));
        assert_eq!(
            json.parse::<f64>().expect("number"),
            metric(&metrics, &sample),
            "{sample}"
        );
    }
    assert!(
        status["acl_log"].as_array().is_some_and(|l| l.len() == 2),
        "{status}"
    );
    assert_eq!(status["reloads"][0]["result"], "ok");
    assert!(at(&status, "certificates.server")
        .parse::<i64>()
        .is_ok_and(|d| d > 14));

    // Nothing secret on either.
    let (_, page) = http_get(proxy.metrics_addr(), "/").await;
    let hash: String = Sha256::digest(b"secretpw")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for text in [&body, &page] {
        for secret in [
            "secretpw",
            hash.as_str(),
            "secret:key",
            "topsecretvalue",
            "app:1",
        ] {
            assert!(!text.contains(secret), "{secret} shown");
        }
    }

    // The page in a real browser: it renders, and its numbers are /status's.
    let url = format!("http://{}/", proxy.metrics_addr());
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page.png");
    std::fs::create_dir_all(shot.parent().expect("dir")).expect("target dir");
    let chromium = |args: &[&str]| {
        let profile = tempfile::tempdir().expect("profile");
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .arg(&url)
            .output()
            .expect("chromium (apt-get install chromium)")
    };
    let shot_arg = format!("--screenshot={}", shot.display());
    let out = chromium(&[&shot_arg, "--window-size=1200,1400"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "screenshot"
    );
    let dom = chromium(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let (_, again) = http_get(proxy.metrics_addr(), "/status").await;
    let now: serde_json::Value = serde_json::from_str(&again).expect("JSON");
    let shown = fields(&dom);
    assert!(shown.len() >= 8, "{dom}");
    for (name, value) in shown {
        if name == "uptime_seconds" {
            continue; // moves on between the two requests
        }
        assert_eq!(value, at(&now, &name), "{name} on the page");
    }
    assert!(
        dom.contains("<h1>portcullis") && dom.contains("Users"),
        "{dom}"
    );
}
