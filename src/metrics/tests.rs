use std::collections::HashSet;

use super::*;

/// The sample lines of `text` (no comments), for exact-line assertions.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

fn has_line(text: &str, line: &str) -> bool {
    samples(text).contains(&line)
}

#[test]
fn limit_labels_are_distinct_snake_case_and_all_is_in_order() {
    let mut seen = HashSet::new();
    for (i, limit) in Limit::ALL.into_iter().enumerate() {
        assert_eq!(limit as usize, i);
        let s = limit.as_str();
        assert!(
            s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{s}"
        );
        assert!(seen.insert(s), "duplicate {s}");
    }
    assert_eq!(Limit::MaxClientsPerIp.as_str(), "max_clients_per_ip");
    assert_eq!(Limit::UnauthMultibulkLen.as_str(), "unauth_multibulk_len");
    for (i, result) in CommandResult::ALL.into_iter().enumerate() {
        assert_eq!(result as usize, i);
    }
}

#[test]
fn limit_hits_count_per_limit() {
    let m = Metrics::new();
    for limit in Limit::ALL {
        assert_eq!(m.limit_hits(limit), 0);
    }
    m.limit_hit(Limit::RateReject);
    m.limit_hit(Limit::RateReject);
    m.limit_hit(Limit::ProtocolError);
    assert_eq!(m.limit_hits(Limit::RateReject), 2);
    assert_eq!(m.limit_hits(Limit::ProtocolError), 1);
    assert_eq!(m.limit_hits(Limit::RateDelay), 0);
}

#[test]
fn fresh_registry_has_the_unlabelled_and_pre_created_families() {
    let text = Metrics::new().encode();
    assert!(text.ends_with("# EOF\n"), "{text}");
    for limit in Limit::ALL {
        let line = format!(
            "portcullis_limit_hits_total{{limit=\"{}\"}} 0",
            limit.as_str()
        );
        assert!(has_line(&text, &line), "missing {line} in\n{text}");
    }
    for line in [
        "portcullis_connections_open 0",
        "portcullis_connections_accepted_total 0",
        "portcullis_auth_failures_total 0",
        "portcullis_upstream_connect_errors_total 0",
        "portcullis_command_duration_seconds_count 0",
        "portcullis_config_reloads_total{result=\"ok\"} 0",
        "portcullis_config_reloads_total{result=\"failed\"} 0",
        "portcullis_upstream_connections{kind=\"dedicated\"} 0",
        "portcullis_upstream_connections{kind=\"pooled\"} 0",
        "portcullis_upstream_connections{kind=\"pinned\"} 0",
        "portcullis_upstream_redirects_total{kind=\"moved\"} 0",
        "portcullis_upstream_redirects_total{kind=\"ask\"} 0",
    ] {
        assert!(has_line(&text, line), "missing {line} in\n{text}");
    }
    assert!(text.contains("# TYPE portcullis_command_duration_seconds histogram"));
    assert!(text.contains("# UNIT portcullis_command_duration_seconds seconds"));
}

#[test]
fn upstream_connections_count_while_their_guards_live() {
    let m = Metrics::new();
    let a = m.upstream_opened(UpstreamKind::Pinned);
    let b = m.upstream_opened(UpstreamKind::Pinned);
    let c = m.upstream_opened(UpstreamKind::Dedicated);
    let text = m.encode();
    assert!(has_line(
        &text,
        "portcullis_upstream_connections{kind=\"pinned\"} 2"
    ));
    assert!(has_line(
        &text,
        "portcullis_upstream_connections{kind=\"dedicated\"} 1"
    ));
    drop((a, c));
    let text = m.encode();
    assert!(has_line(
        &text,
        "portcullis_upstream_connections{kind=\"pinned\"} 1"
    ));
    assert!(has_line(
        &text,
        "portcullis_upstream_connections{kind=\"dedicated\"} 0"
    ));
    drop(b);
}

#[test]
fn encode_has_every_family_with_its_values_after_bumps() {
    let m = Metrics::new();
    m.limit_hit(Limit::MaxClients);
    m.limit_hit(Limit::MaxClients);
    m.limit_hit(Limit::IdleTimeout);
    m.connection_opened();
    m.connection_opened();
    m.connection_opened();
    m.connection_closed();
    m.handshake_failed("timeout");
    m.handshake_failed("timeout");
    m.handshake_failed("tls");
    m.command("alice", CommandResult::Forwarded);
    m.command("alice", CommandResult::Forwarded);
    m.command("alice", CommandResult::DeniedKey);
    m.command("bob", CommandResult::Local);
    m.auth_failure();
    m.upstream_connect_error();
    m.upstream_connect_error();
    m.observe_latency(0.000_01); // below the first bucket (50 µs)
    m.observe_latency(0.003);
    m.observe_latency(5.0); // only in +Inf
    m.reload(true);
    m.reload(false);
    m.reload(false);
    m.set_cert_expiry("server", 1_900_000_000);
    m.set_cert_expiry("server", 1_900_000_001);
    m.set_cert_expiry("client_ca", 2_000_000_000);

    let text = m.encode();
    for line in [
        "portcullis_limit_hits_total{limit=\"max_clients\"} 2",
        "portcullis_limit_hits_total{limit=\"idle_timeout\"} 1",
        "portcullis_limit_hits_total{limit=\"rate_reject\"} 0",
        "portcullis_connections_open 2",
        "portcullis_connections_accepted_total 3",
        "portcullis_tls_handshake_failures_total{reason=\"timeout\"} 2",
        "portcullis_tls_handshake_failures_total{reason=\"tls\"} 1",
        "portcullis_commands_total{user=\"alice\",result=\"forwarded\"} 2",
        "portcullis_commands_total{user=\"alice\",result=\"denied_key\"} 1",
        "portcullis_commands_total{user=\"alice\",result=\"denied_command\"} 0",
        "portcullis_commands_total{user=\"alice\",result=\"denied_channel\"} 0",
        "portcullis_commands_total{user=\"alice\",result=\"rate_limited\"} 0",
        "portcullis_commands_total{user=\"bob\",result=\"local\"} 1",
        "portcullis_commands_total{user=\"bob\",result=\"forwarded\"} 0",
        "portcullis_auth_failures_total 1",
        "portcullis_upstream_connect_errors_total 2",
        "portcullis_command_duration_seconds_count 3",
        "portcullis_command_duration_seconds_bucket{le=\"0.00005\"} 1",
        "portcullis_command_duration_seconds_bucket{le=\"0.0032\"} 2",
        "portcullis_command_duration_seconds_bucket{le=\"0.8192\"} 2",
        "portcullis_command_duration_seconds_bucket{le=\"+Inf\"} 3",
        "portcullis_config_reloads_total{result=\"ok\"} 1",
        "portcullis_config_reloads_total{result=\"failed\"} 2",
        "portcullis_certificate_expiry_timestamp_seconds{cert=\"server\"} 1900000001",
        "portcullis_certificate_expiry_timestamp_seconds{cert=\"client_ca\"} 2000000000",
    ] {
        assert!(has_line(&text, line), "missing {line} in\n{text}");
    }
    let sum = samples(&text)
        .into_iter()
        .find_map(|l| l.strip_prefix("portcullis_command_duration_seconds_sum "))
        .expect("histogram sum");
    let sum: f64 = sum.parse().expect("sum is a number");
    assert!((sum - 5.00301).abs() < 1e-9, "{sum}");
    for ty in [
        "# TYPE portcullis_limit_hits counter",
        "# TYPE portcullis_connections_open gauge",
        "# TYPE portcullis_connections_accepted counter",
        "# TYPE portcullis_tls_handshake_failures counter",
        "# TYPE portcullis_commands counter",
        "# TYPE portcullis_auth_failures counter",
        "# TYPE portcullis_upstream_connect_errors counter",
        "# TYPE portcullis_command_duration_seconds histogram",
        "# TYPE portcullis_config_reloads counter",
        "# TYPE portcullis_certificate_expiry_timestamp_seconds gauge",
    ] {
        assert!(text.lines().any(|l| l == ty), "missing {ty} in\n{text}");
    }
}

#[test]
fn bucket_bounds_run_from_50us_to_about_one_second() {
    let buckets: Vec<f64> = latency_buckets().collect();
    assert_eq!(buckets.len(), 15);
    assert!((buckets[0] - 50e-6).abs() < 1e-12);
    let last = buckets[buckets.len() - 1];
    assert!((0.5..=1.0).contains(&last), "{last}");
}

#[test]
fn free_form_label_values_are_escaped() {
    let m = Metrics::new();
    m.command("we\"ird\\us\ner", CommandResult::DeniedChannel);
    m.handshake_failed("a\"b");
    let text = m.encode();
    assert!(
        has_line(
            &text,
            "portcullis_commands_total{user=\"we\\\"ird\\\\us\\ner\",result=\"denied_channel\"} 1"
        ),
        "{text}"
    );
    assert!(
        has_line(
            &text,
            "portcullis_tls_handshake_failures_total{reason=\"a\\\"b\"} 1"
        ),
        "{text}"
    );
}

#[test]
fn commands_from_many_threads_all_count() {
    let m = std::sync::Arc::new(Metrics::new());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let m = std::sync::Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..250 {
                    let user = if (t + i) % 2 == 0 { "alice" } else { "bob" };
                    m.command(user, CommandResult::Forwarded);
                    m.limit_hit(Limit::RateDelay);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let text = m.encode();
    assert!(has_line(
        &text,
        "portcullis_commands_total{user=\"alice\",result=\"forwarded\"} 500"
    ));
    assert!(has_line(
        &text,
        "portcullis_commands_total{user=\"bob\",result=\"forwarded\"} 500"
    ));
    assert_eq!(m.limit_hits(Limit::RateDelay), 1000);
}
