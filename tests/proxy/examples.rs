//! The shipped monitoring examples: `examples/grafana-dashboard.json` is a
//! valid dashboard and `examples/alerts.yml` valid Prometheus rules, and every
//! metric either one queries exists on a running proxy's `/metrics`.

use std::collections::BTreeSet;

use crate::support::*;

/// Every `portcullis_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("portcullis_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The sample names `/metrics` can hold: from each `# TYPE family kind`
/// line, the family with its kind's suffixes.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in metrics.lines() {
        let mut words = line.strip_prefix("# TYPE ").unwrap_or_default().split(' ');
        let (Some(family), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        out.insert(family.to_string());
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[],
        };
        out.extend(suffixes.iter().map(|s| format!("{family}{s}")));
    }
    out
}

#[tokio::test]
async fn dashboard_and_alerts_use_only_exported_metrics() {
    let redis = RedisServer::start();
    let pki = TestPki::new();
    let proxy = Proxy::start(
        &base_config_with_server(&pki, &redis.addr(), "metrics_listen = \"127.0.0.1:0\"", ""),
        pki.dir(),
    );
    // Families with labels appear with their first value: one command, one
    // failed handshake.
    let mut c = resp_tls(proxy.tls_addr(), &pki, Some("alice")).await;
    c.cmd_str(&["PING"]).await;
    let mut garbage = tokio::net::TcpStream::connect(proxy.tls_addr())
        .await
        .expect("tcp");
    tokio::io::AsyncWriteExt::write_all(&mut garbage, b"not TLS\r\n\r\n")
        .await
        .expect("write");
    drop(garbage);
    let mut metrics = String::new();
    for _ in 0..50 {
        let (status, text) = http_get(proxy.metrics_addr(), "/metrics").await;
        assert_eq!(status, 200);
        metrics = text;
        if metrics.contains("portcullis_tls_handshake_failures_total{") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let exported = exported(&metrics);
    assert!(
        exported.contains("portcullis_commands_total"),
        "{exported:?}"
    );

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let dashboard =
        std::fs::read_to_string(root.join("grafana-dashboard.json")).expect("dashboard");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
    let panels = json["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    let mut exprs = String::new();
    for p in panels {
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{p}");
        for t in p["targets"].as_array().expect("targets") {
            exprs.push_str(t["expr"].as_str().expect("expr"));
            exprs.push('\n');
        }
    }
    let alerts = std::fs::read_to_string(root.join("alerts.yml")).expect("alerts");
    let yaml: serde_norway::Value = serde_norway::from_str(&alerts).expect("valid YAML");
    let rules = yaml["groups"][0]["rules"].as_sequence().expect("rules");
    let mut alert_names = BTreeSet::new();
    for r in rules {
        alert_names.insert(r["alert"].as_str().expect("alert name").to_string());
        exprs.push_str(r["expr"].as_str().expect("expr"));
        exprs.push('\n');
    }
    for needed in [
        "PortcullisCertificateExpiringSoon",
        "PortcullisAuthFailureSpike",
        "PortcullisUpstreamDown",
        "PortcullisReloadFailed",
    ] {
        assert!(alert_names.contains(needed), "{needed}");
    }
    let used = metric_names(&exprs);
    assert!(used.len() >= 10, "{used:?}");
    let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(missing.is_empty(), "not in /metrics: {missing:?}");
    // The check itself can fail: a made-up name is caught.
    assert!(!exported.contains("portcullis_no_such_metric_total"));
}
