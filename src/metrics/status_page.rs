//! `GET /`: the status snapshot (the JSON of `GET /status`) as one
//! self-contained HTML page for people: inline style, no script, no external
//! asset; it reloads itself every 5 seconds. Every number carries a
//! `data-field` naming where it sits in `/status`, so a test (or a scraper)
//! can compare the two. Every text from the snapshot is HTML-escaped.

use std::fmt::Write as _;

use serde_json::Value;

/// Certificates expiring within this many days are shown in the warning colour.
const WARN_DAYS: i64 = 14;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}\
h1{font-size:20px}h2{font-size:16px;margin-top:24px}\
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}\
th{background:#f0f0f0}.ok{color:#176f2c;font-weight:600}.bad{color:#b00020;font-weight:600}\
.warn{background:#ffe0a0}.expired{background:#ffb0b0}.muted{color:#777}";

/// The page for `status` (a [`/status`] snapshot).
pub fn render(status: &Value) -> String {
    let mut h = String::with_capacity(8192);
    h.push_str("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(
        "<meta http-equiv=\"refresh\" content=\"5\"><title>portcullis status</title><style>",
    );
    h.push_str(STYLE);
    h.push_str("</style></head><body>");
    let _ = write!(
        h,
        "<h1>portcullis {} <span class=\"muted\">up {} s</span></h1>",
        esc(&text(&status["version"])),
        field("uptime_seconds", &status["uptime_seconds"]),
    );
    let _ = write!(
        h,
        "<p>Configuration generation {} &middot; client connections open {}</p>",
        field("generation", &status["generation"]),
        field("connections_open", &status["connections_open"]),
    );
    listeners(&mut h, status);
    upstream(&mut h, &status["upstream"]);
    users(&mut h, status);
    certificates(&mut h, status);
    acl_log(&mut h, status);
    reloads(&mut h, status);
    h.push_str("</body></html>\n");
    h
}

fn listeners(h: &mut String, status: &Value) {
    h.push_str("<h2>Listeners</h2><table><tr><th>kind</th><th>address (as configured)</th></tr>");
    for l in items(&status["listeners"]) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&text(&l["kind"])),
            esc(&text(&l["addr"]))
        );
    }
    h.push_str("</table>");
}

fn upstream(h: &mut String, up: &Value) {
    let healthy = up["healthy"].as_bool().unwrap_or(false);
    let _ = write!(
        h,
        "<h2>Upstream</h2><p>{} ({}) &middot; <span class=\"{}\" data-field=\"upstream.healthy\">{}</span></p>",
        esc(&text(&up["kind"])),
        esc(&text(&up["mode"])),
        if healthy { "ok" } else { "bad" },
        if healthy { "healthy" } else { "unhealthy" },
    );
    if let Some(name) = up["master_name"].as_str() {
        let _ = write!(h, "<p>Sentinel master name {}</p>", esc(name));
    }
    h.push_str("<table><tr><th>server</th><th>role</th></tr>");
    for s in items(&up["servers"]) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(&text(&s["addr"])),
            esc(&text(&s["role"]))
        );
    }
    h.push_str("</table>");
    if !items(&up["slots"]).is_empty() {
        h.push_str("<h2>Cluster slot map</h2><table><tr><th>slots</th><th>master</th></tr>");
        for s in items(&up["slots"]) {
            let _ = write!(
                h,
                "<tr><td>{}&ndash;{}</td><td>{}</td></tr>",
                text(&s["start"]),
                text(&s["end"]),
                esc(&text(&s["master"]))
            );
        }
        h.push_str("</table>");
    }
}

fn users(h: &mut String, status: &Value) {
    h.push_str(
        "<h2>Users</h2><table><tr><th>user</th><th>connections</th><th>rate (ops/s, burst)</th>\
         <th>forwarded</th><th>denied</th><th>rate limited</th></tr>",
    );
    for u in items(&status["users"]) {
        let name = text(&u["name"]);
        let c = &u["commands"];
        let denied: u64 = ["denied_command", "denied_key", "denied_channel"]
            .iter()
            .filter_map(|r| c[*r].as_u64())
            .sum();
        let rate = match (&u["rate"]["ops_per_sec"], &u["rate"]["burst"]) {
            (Value::Number(o), Value::Number(b)) => format!("{o}, {b}"),
            _ => "unlimited".to_owned(),
        };
        let key = |what: &str| format!("users.{}.{what}", esc(&name));
        let _ = write!(
            h,
            "<tr><td>{}</td><td data-field=\"{}\">{}</td><td>{}</td><td data-field=\"{}\">{}</td>\
             <td data-field=\"{}\">{}</td><td data-field=\"{}\">{}</td></tr>",
            esc(&name),
            key("connections"),
            text(&u["connections"]),
            rate,
            key("commands.forwarded"),
            text(&c["forwarded"]),
            key("denied"),
            denied,
            key("commands.rate_limited"),
            text(&c["rate_limited"]),
        );
    }
    h.push_str("</table>");
}

fn certificates(h: &mut String, status: &Value) {
    let now = status["now"].as_i64().unwrap_or(0);
    h.push_str("<h2>Certificates</h2><table><tr><th>certificate</th><th>expires (UTC)</th><th>days left</th></tr>");
    for c in items(&status["certificates"]) {
        let not_after = c["not_after"].as_i64().unwrap_or(0);
        let days = (not_after - now).div_euclid(86_400);
        let class = if not_after < now {
            "expired"
        } else if days < WARN_DAYS {
            "warn"
        } else {
            ""
        };
        let name = esc(&text(&c["cert"]));
        let _ = write!(
            h,
            "<tr class=\"{class}\"><td>{name}</td><td>{}</td><td data-field=\"certificates.{name}.days_left\">{days}</td></tr>",
            utc(not_after),
        );
    }
    h.push_str("</table>");
}

fn acl_log(h: &mut String, status: &Value) {
    h.push_str(
        "<h2>Newest ACL LOG entries</h2><table><tr><th>count</th><th>reason</th><th>context</th>\
         <th>command</th><th>user</th><th>age (s)</th><th>client</th></tr>",
    );
    for e in items(&status["acl_log"]) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(&e["count"]),
            esc(&text(&e["reason"])),
            esc(&text(&e["context"])),
            esc(&text(&e["object"])),
            esc(&text(&e["username"])),
            text(&e["age_seconds"]),
            esc(&text(&e["client_info"])),
        );
    }
    h.push_str("</table>");
}

fn reloads(h: &mut String, status: &Value) {
    h.push_str("<h2>Reloads</h2><table><tr><th>at (UTC)</th><th>result</th><th>errors</th></tr>");
    for r in items(&status["reloads"]) {
        let ok = r["result"].as_str() == Some("ok");
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            utc(r["at"].as_i64().unwrap_or(0)),
            if ok { "ok" } else { "bad" },
            esc(&text(&r["result"])),
            text(&r["errors"]),
        );
    }
    h.push_str("</table>");
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A number (or text) with its `/status` path for the page's readers.
fn field(path: &str, v: &Value) -> String {
    format!("<span data-field=\"{path}\">{}</span>", esc(&text(v)))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM` for Unix seconds.
fn utc(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t).map_or_else(
        |_| t.to_string(),
        |d| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute()
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_marks_expiring_certificates() {
        let status = serde_json::json!({
            "version": "1<2", "now": 1_000_000, "uptime_seconds": 5, "generation": 1,
            "connections_open": 2,
            "listeners": [{"kind": "tls", "addr": "127.0.0.1:6380"}],
            "upstream": {"kind": "address", "mode": "dedicated", "healthy": true,
                         "servers": [{"addr": "<script>", "role": "master"}]},
            "users": [{"name": "a\"b", "connections": 3, "rate": null,
                       "commands": {"forwarded": 7, "denied_key": 2, "rate_limited": 0}}],
            "certificates": [{"cert": "server", "not_after": 1_000_000 + 86_400 * 3},
                             {"cert": "client_ca", "not_after": 1_000_000 + 86_400 * 300}],
            "acl_log": [], "reloads": [{"at": 0, "result": "failed", "errors": 1}],
        });
        let page = render(&status);
        assert!(
            page.contains("1&lt;2")
                && page.contains("&lt;script&gt;")
                && !page.contains("<script>")
        );
        assert!(page.contains("data-field=\"users.a&quot;b.connections\">3<"));
        assert!(page.contains("data-field=\"users.a&quot;b.denied\">2<"));
        assert!(page.contains("<tr class=\"warn\"><td>server</td>"));
        assert!(page.contains("<tr class=\"\"><td>client_ca</td>"));
        assert!(page.contains("data-field=\"certificates.server.days_left\">3<"));
        assert!(!page.contains("src=") && !page.contains("href="));
    }
}
