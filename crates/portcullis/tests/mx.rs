//! Port 25 against the real process, with a real DNS server on loopback serving the test
//! domains (MX, A, PTR, SPF, DKIM keys, DMARC): mail from other servers over plaintext and
//! STARTTLS, who really sent it (SPF, DKIM, DMARC, FCrDNS) in one Authentication-Results field,
//! the policies (DMARC p=reject and p=quarantine, SPF -all, null MX, no MX/A/AAAA, temporary
//! DNS failures), the refusals of the MX role (AUTH, relaying, early talkers, pipelining before
//! it was offered), the guard's limits and harvest defence, and no login timeout on 25.
//! Senders are 127.0.0.x addresses. Only the last test needs a program from outside (swaks,
//! with the shared skip rule); Postfix is mx_postfix.rs.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::mx::*;
use common::{Settings, TestServer, BOB};
use portcullis_testdns::Fault;

fn server(world: &World) -> TestServer {
    TestServer::start_with(Settings::mx(world.addr()))
}

fn server_with(world: &World, extra: &[&str]) -> TestServer {
    let mut settings = Settings::mx(world.addr());
    settings.sections.extend(extra.iter().map(|s| s.to_string()));
    TestServer::start_with(settings)
}

#[test]
fn signed_mail_over_starttls_is_stored_with_its_verdict_and_tls_recorded() {
    let world = World::start();
    let server = server(&world);
    let from = format!("alice@{GOOD}");
    let signed = world.signer().sign_message(message(&from, BOB, "signed over tls").as_bytes()).unwrap();
    let reply = deliver(&server, GOOD_IP, true, &from, BOB, &signed);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");

    let inbox = stored(&server, BOB, "INBOX");
    assert_eq!(inbox.len(), 1);
    let stored = &inbox[0];
    let results = authentication_results(stored);
    assert!(results.starts_with(&format!("{AUTHSERV_ID};")), "authserv-id first: {results}");
    for word in ["spf=pass", "dkim=pass", "dmarc=pass", &format!("header.d={GOOD}")] {
        assert!(results.contains(word), "{word} missing from {results}");
    }
    // FCrDNS is recorded, but a loopback sender cannot pass it: the resolver answers the PTR of
    // 127.0.0.0/8 itself as "localhost" (RFC 6761 §6.3), never asking the test DNS server, and
    // "localhost" leads back to 127.0.0.1 only. crates/sender-auth tests the pass case.
    assert!(results.contains(&format!("iprev=fail policy.iprev={GOOD_IP}")), "{results}");
    assert!(header(stored, "Received-SPF").unwrap().starts_with("pass"), "{stored}");
    let received = header(stored, "Received").unwrap();
    assert!(received.contains(&format!("from mx.sender.test ([{GOOD_IP}])")), "unconfirmed name left out: {received}");
    assert!(received.contains("with ESMTPS") && received.contains("(using TLSv1."), "{received}");
    // The message itself is as it was sent: the signature still verifies after us.
    assert!(stored.ends_with(std::str::from_utf8(&signed).unwrap()), "the sent message is intact below our fields");

    let verdict = server.wait_event(|e| e["event"] == "sender_verdict");
    assert_eq!((verdict["spf"].as_str(), verdict["dkim"].as_str()), (Some("pass"), Some("pass")));
    assert_eq!((verdict["dmarc"].as_str(), verdict["decision"].as_str()), (Some("pass"), Some("accept")));
    let received = server.wait_event(|e| e["event"] == "message_received");
    assert_eq!(received["mailbox"], "INBOX");
    assert!(received["tls_version"].as_str().unwrap().starts_with("TLSv1."), "{received}");
    assert!(received["tls_cipher"].as_str().is_some_and(|c| !c.is_empty()), "{received}");

    // The dashboard's numbers and the metrics say the same.
    let (status, json) = server.api("GET", "/api/v1/status", None);
    assert_eq!(status, 200);
    assert_eq!(json["inbound"]["messages"]["accept"], 1, "{json}");
    assert_eq!(json["inbound"]["results"]["dkim"]["pass"], 1, "{json}");
    let metrics = server.http("GET", "/metrics", Some(&server.admin_token()), None).body;
    assert!(metrics.contains("portcullis_inbound_messages_total{decision=\"accept\"} 1"), "{metrics}");
    assert!(metrics.contains("portcullis_sender_auth_results_total{method=\"dmarc\",result=\"pass\"} 1"));
}

#[test]
fn mail_to_an_alias_is_stored_for_its_account_under_one_return_path() {
    let world = World::start();
    let server = server(&world);
    server.cli_ok(&["account", "alias", "add", "info@example.test", BOB], None);
    let from = format!("alice@{GOOD}");
    // A Return-Path from the sender is not the envelope's: final delivery replaces it.
    let sent =
        format!("Return-Path: <forged@elsewhere.test>\r\n{}", message(&from, "info@example.test", "to an alias"));
    let reply = deliver(&server, GOOD_IP, false, &from, "info@example.test", sent.as_bytes());
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let inbox = stored(&server, BOB, "INBOX");
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].starts_with(&format!("Return-Path: <{from}>\r\nAuthentication-Results: ")), "{}", inbox[0]);
    assert_eq!(headers(&inbox[0], "Return-Path").len(), 1, "{}", inbox[0]);
}

#[test]
fn plaintext_is_allowed_and_recorded_as_such_and_a_changed_body_fails_dkim() {
    let world = World::start();
    let server = server(&world);
    let from = format!("alice@{GOOD}");
    let mut signed = world.signer().sign_message(message(&from, BOB, "tampered").as_bytes()).unwrap();
    // Changed in transit, after signing: the body hash no longer matches. SPF still passes,
    // and aligned with From, so DMARC passes on SPF alone.
    let at = signed.windows(5).position(|w| w == b"Hello").unwrap();
    signed[at] = b'J';
    let reply = deliver(&server, GOOD_IP2, false, &from, BOB, &signed);
    assert!(reply.starts_with("250 "), "{reply}");
    let stored = &stored(&server, BOB, "INBOX")[0];
    let results = authentication_results(stored);
    assert!(results.contains("dkim=fail") && results.contains("spf=pass"), "{results}");
    assert!(results.contains("dmarc=pass"), "aligned SPF passes DMARC: {results}");
    assert!(results.contains("iprev="), "{results}");
    let received = header(stored, "Received").unwrap();
    assert!(received.contains("with ESMTP id") && !received.contains("using"), "plaintext: {received}");
    let event = server.wait_event(|e| e["event"] == "message_received");
    assert!(event.get("tls_version").is_none(), "no TLS recorded for plaintext: {event}");
}

#[test]
fn spoofed_senders_are_refused_and_quarantine_goes_to_junk() {
    let world = World::start();
    let server = server(&world);
    // DMARC p=reject, from an address not in the SPF record and unsigned.
    let from = format!("ceo@{GOOD}");
    let reply = deliver(&server, SPOOFER_IP, false, &from, BOB, message(&from, BOB, "wire money").as_bytes());
    assert!(reply.starts_with("550 5.7.1 ") && reply.contains("DMARC"), "{reply}");
    // SPF -all and no DMARC record.
    let from = format!("billing@{NO_DMARC}");
    let reply = deliver(&server, SPOOFER_IP, false, &from, BOB, message(&from, BOB, "invoice").as_bytes());
    assert!(reply.starts_with("550 5.7.23 "), "{reply}");
    // p=quarantine: accepted, into Junk.
    let from = format!("news@{QUARANTINE}");
    let reply = deliver(&server, SPOOFER_IP, false, &from, BOB, message(&from, BOB, "offer").as_bytes());
    assert!(reply.starts_with("250 "), "{reply}");
    assert!(stored(&server, BOB, "INBOX").is_empty(), "nothing refused or quarantined reached INBOX");
    let junk = stored(&server, BOB, "Junk");
    assert_eq!(junk.len(), 1);
    assert!(authentication_results(&junk[0]).contains("dmarc=fail"), "{}", junk[0]);

    let decisions: Vec<String> = server
        .wait_events(|e| e["event"] == "sender_verdict", 3)
        .iter()
        .map(|e| format!("{}/{}", e["decision"].as_str().unwrap(), e["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(decisions, ["reject/dmarc_reject", "reject/spf_fail", "junk/dmarc_quarantine"]);
    let junked = server.wait_event(|e| e["event"] == "message_received");
    assert_eq!(junked["mailbox"], "Junk");
}

#[test]
fn senders_nobody_could_answer_are_refused_at_mail_from_and_bounces_are_taken() {
    let world = World::start();
    let server = server(&world);
    let mut c = hello(&server, connect(&server, GOOD_IP), false);
    assert!(c.cmd(&format!("MAIL FROM:<x@{NULL_MX}>")).starts_with("550 5.7.27 "));
    assert!(c.cmd(&format!("MAIL FROM:<x@{NOWHERE}>")).starts_with("550 5.1.8 "));
    // The null sender: a bounce, whose SPF is checked as postmaster@ the HELO name (RFC 7208
    // §2.4), which has an SPF record of its own and aligns with the From domain.
    let bounce = message(&format!("mailer-daemon@{GOOD}"), BOB, "bounce");
    let reply = send(&mut c, "", BOB, bounce.as_bytes());
    assert!(reply.starts_with("250 "), "{reply}");
    c.cmd("QUIT");
    let checked = server.wait_events(|e| e["event"] == "sender_checked", 3);
    let results: Vec<&str> = checked.iter().map(|e| e["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["null_mx", "unroutable", "null_sender"]);
}

#[test]
fn a_dns_server_that_never_answers_gets_451_never_a_silent_decision() {
    let world = World::start();
    let server = server_with(&world, &["[sender_auth]\ndeadline = \"3s\""]);
    world.dns.set_fault(Some(Fault::Silent));
    let started = Instant::now();
    let mut c = connect(&server, GOOD_IP);
    assert!(c.cmd("EHLO mx.sender.test").starts_with("250"));
    let reply = c.cmd(&format!("MAIL FROM:<alice@{GOOD}>"));
    assert!(reply.starts_with("451 4.4.3 "), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded by the DNS timeout and the deadline");
    world.dns.set_fault(None);
    // With DNS back, the same sender is taken, and a message whose checks time out is 451.
    assert!(c.cmd(&format!("MAIL FROM:<alice@{GOOD}>")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    world.dns.set_fault(Some(Fault::ServFail));
    c.send_raw(format!("{}.\r\n", message(&format!("alice@{GOOD}"), BOB, "dns down")).as_bytes());
    let reply = c.reply();
    assert!(reply.starts_with("451 4.7."), "{reply}");
    assert!(stored(&server, BOB, "INBOX").is_empty());
}

#[test]
fn forged_authentication_results_claiming_our_name_are_removed() {
    let world = World::start();
    let server = server(&world);
    let from = format!("alice@{GOOD}");
    let forged = format!(
        "Authentication-Results: {AUTHSERV_ID}; spf=pass; dkim=pass; dmarc=pass\r\n\
         Authentication-Results: other.example; spf=fail\r\n{}",
        message(&from, BOB, "forged")
    );
    assert!(deliver(&server, GOOD_IP, false, &from, BOB, forged.as_bytes()).starts_with("250"));
    let stored = &stored(&server, BOB, "INBOX")[0];
    let all = headers(stored, "Authentication-Results");
    let ours: Vec<&String> = all.iter().filter(|v| v.starts_with(&format!("{AUTHSERV_ID};"))).collect();
    assert_eq!(ours.len(), 1, "only ours is left: {stored}");
    assert!(ours[0].contains("dkim=none"), "the message was not signed: {}", ours[0]);
    assert!(!ours[0].contains("dkim=pass"), "the forged verdict is gone: {}", ours[0]);
    assert!(all.iter().any(|v| v == "other.example; spf=fail"), "others' are kept: {all:?}");
}

#[test]
fn no_auth_no_relay_unknown_users_refused_and_the_extensions_offered() {
    let world = World::start();
    let server = server(&world);
    let mut c = connect(&server, GOOD_IP);
    let ehlo = c.cmd("EHLO mx.sender.test");
    for ext in ["PIPELINING", "SIZE ", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"] {
        assert!(ehlo.contains(ext), "{ext} not offered: {ehlo}");
    }
    assert!(!ehlo.contains("AUTH") && !ehlo.contains("REQUIRETLS"), "{ehlo}");
    assert!(c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwdw==").starts_with("503 5.5.1 "));
    assert!(c.cmd(&format!("MAIL FROM:<alice@{GOOD}> REQUIRETLS")).starts_with("530 5.7.10 "));
    assert!(c.cmd(&format!("MAIL FROM:<alice@{GOOD}>")).starts_with("250"));
    assert!(c.cmd("RCPT TO:<victim@elsewhere.example>").starts_with("550 5.7.1 "), "no open relay");
    assert!(c.cmd("RCPT TO:<nobody@example.test>").starts_with("550 5.1.1 "));
    c.cmd("QUIT");
    let violation = server.wait_event(|e| e["event"] == "protocol_violation");
    assert_eq!((violation["listener"].as_str(), violation["what"].as_str()), (Some("smtp"), Some("AUTH on port 25")));
    let refused = server.wait_events(|e| e["event"] == "recipient_refused", 2);
    let reasons: Vec<&str> = refused.iter().map(|e| e["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["not_local", "unknown_user"]);
}

#[test]
fn early_talkers_and_unoffered_pipelining_are_refused_and_banned() {
    let world = World::start();
    let server = server_with(&world, &["[smtp]\ngreeting_delay = \"1s\"", "[guard]\nban_after_early_talk = 2"]);
    // Speaks before the greeting.
    let mut c = server.connect_from("127.0.0.77", "smtp");
    c.send("EHLO ratware.test");
    let said = c.rest();
    assert!(said.starts_with("554 ") && said.contains("before my greeting"), "{said}");
    // Pipelines after HELO, which offers no PIPELINING.
    let mut c = connect(&server, "127.0.0.77");
    assert!(c.cmd("HELO ratware.test").starts_with("250"));
    c.send_raw(format!("MAIL FROM:<a@{GOOD}>\r\nRCPT TO:<{BOB}>\r\n").as_bytes());
    let said = c.rest();
    assert!(said.starts_with("554 5.5.0 "), "{said}");
    let ban = server.wait_event(|e| e["event"] == "ban_added");
    assert_eq!(ban["network"], "127.0.0.77/32");
    assert!(server.refused("127.0.0.77", "smtp"), "banned");
    // A patient server is greeted after the delay.
    let started = Instant::now();
    connect(&server, GOOD_IP);
    assert!(started.elapsed() >= Duration::from_millis(900), "the greeting waited");
}

#[test]
fn a_directory_harvest_is_slowed_and_banned() {
    let world = World::start();
    let server = server_with(&world, &["[guard]\nban_after_unknown_recipients = 5\nfailure_delay = \"100ms\""]);
    let mut c = hello(&server, connect(&server, "127.0.0.78"), false);
    assert!(c.cmd(&format!("MAIL FROM:<a@{GOOD}>")).starts_with("250"));
    let started = Instant::now();
    for name in ["admin", "info", "sales", "root"] {
        assert!(c.cmd(&format!("RCPT TO:<{name}@example.test>")).starts_with("550 5.1.1"));
    }
    assert!(started.elapsed() >= Duration::from_millis(100 + 200 + 400 + 800), "each one waited longer");
    c.send(&format!("RCPT TO:<{}>", "webmaster@example.test"));
    // The fifth bans the source; its connection is cut.
    assert!(c.until_closed().len() < 200);
    let ban = server.wait_event(|e| e["event"] == "ban_added");
    assert!(ban["reason"].as_str().unwrap().contains("unknown recipients"), "{ban}");
    assert!(server.refused("127.0.0.78", "smtp"));
}

#[test]
fn per_source_limits_on_25() {
    let world = World::start();
    let server = server_with(
        &world,
        &["[smtp]\nconnections_per_minute = 3\nmessages_per_minute = 2\nrecipients_per_minute = 3"],
    );
    let mut c = hello(&server, connect(&server, GOOD_IP), false);
    let from = format!("alice@{GOOD}");
    for _ in 0..2 {
        assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
        c.cmd("RSET");
    }
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("451 4.7.1 "), "the third message in a minute");
    let mut other = hello(&server, connect(&server, GOOD_IP2), false);
    assert!(other.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"), "per source");
    for _ in 0..3 {
        assert!(other.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    }
    assert!(other.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("450 4.7.1 "));
    // Connections: GOOD_IP has one; two more, then refused.
    let _more: Vec<_> = (0..2).map(|_| connect(&server, GOOD_IP)).collect();
    let mut refused = server.connect_from(GOOD_IP, "smtp");
    let said = refused.rest();
    assert!(said.starts_with("421 4.7.0 ") && said.contains("per minute"), "{said}");
    let limited = server.wait_events(|e| e["event"] == "rate_limited", 2);
    let limits: Vec<&str> = limited.iter().map(|e| e["limit"].as_str().unwrap()).collect();
    assert_eq!(limits, ["messages_per_minute", "recipients_per_minute"]);
}

#[test]
fn a_dnsbl_listing_gets_554_and_only_quit() {
    let world = World::start();
    let listed = zones(&world.key).zone("dnsbl.test").a("66.0.0.127.dnsbl.test", "127.0.0.2".parse().unwrap());
    world.dns.set_zones(listed);
    let server = server_with(&world, &["[sender_auth]\ndnsbl = [\"dnsbl.test\"]"]);
    let mut c = server.connect_from(SPOOFER_IP, "smtp");
    let greeting = c.reply();
    assert!(greeting.starts_with("554 ") && greeting.contains("dnsbl.test"), "{greeting}");
    assert!(c.cmd("EHLO x.test").starts_with("503 "));
    assert!(c.cmd("QUIT").starts_with("221"));
    // Not listed: greeted.
    connect(&server, GOOD_IP);
    let checked = server.wait_event(|e| e["event"] == "client_checked" && e["decision"] == "reject");
    assert_eq!(checked["listed"][0], "dnsbl.test");
}

#[test]
fn the_login_timeout_does_not_apply_on_25() {
    let world = World::start();
    let mut settings = Settings::mx(world.addr());
    settings.limits.push("login_timeout = \"2s\"".into());
    let server = TestServer::start_with(settings);
    let mut c = hello(&server, connect(&server, GOOD_IP), false);
    let from = format!("alice@{GOOD}");
    assert!(c.cmd(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    // A slow sender: the message takes longer than the login timeout.
    let body = message(&from, BOB, "slow");
    for chunk in body.as_bytes().chunks(body.len() / 4 + 1) {
        std::thread::sleep(Duration::from_millis(900));
        c.send_raw(chunk);
    }
    c.send_raw(b".\r\n");
    assert!(c.reply().starts_with("250 "), "not cut by limits.login_timeout");
    // The login timeout still applies on 465.
    let mut sub = server.connect_tls("submissions");
    sub.reply();
    std::thread::sleep(Duration::from_millis(2500));
    let said = sub.rest();
    assert!(said.contains("421"), "465 still has its login timeout: {said:?}");
}

#[test]
fn requiretls_and_smtputf8_over_starttls() {
    let world = World::start();
    let server = server(&world);
    let mut c = hello(&server, connect(&server, GOOD_IP), true);
    assert!(c.cmd("EHLO mx.sender.test").contains("REQUIRETLS"), "offered over TLS");
    let from = format!("jörg@{GOOD}");
    assert!(c.cmd(&format!("MAIL FROM:<{from}> REQUIRETLS SMTPUTF8")).starts_with("250"));
    assert!(c.cmd(&format!("RCPT TO:<{BOB}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let mut data = message(&format!("alice@{GOOD}"), BOB, "utf8").into_bytes();
    data.write_all(b".\r\n").unwrap();
    c.send_raw(&data);
    assert!(c.reply().starts_with("250 "));
    let event = server.wait_event(|e| e["event"] == "message_received");
    assert_eq!(event["require_tls"], true);
    let stored = &stored(&server, BOB, "INBOX")[0];
    assert!(header(stored, "Received").unwrap().contains("with UTF8SMTPS"), "{stored}");
}

/// Runs swaks against port 25 from `source`; what it printed (both streams).
fn swaks(swaks: &std::path::Path, server: &TestServer, source: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(swaks)
        .args(["--server", &server.addr("smtp").to_string(), "--local-interface", source])
        .args(["--ehlo", "mx.sender.test", "--timeout", "20"])
        .args(args)
        .output()
        .unwrap();
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn swaks_drives_the_edge_cases() {
    let Some(bin) = common::outside::program("swaks", "apt-get install swaks libnet-ssleay-perl libio-socket-ssl-perl")
    else {
        return;
    };
    let world = World::start();
    let server = server(&world);
    let from = format!("alice@{GOOD}");

    // STARTTLS and PIPELINING, from an address in the SPF record: delivered.
    let said = swaks(&bin, &server, GOOD_IP, &["--from", &from, "--to", BOB, "--tls", "--pipeline"]);
    assert!(said.contains("<~  250 2.0.0") || said.contains("<~ 250 2.0.0"), "{said}");
    let received = server.wait_event(|e| e["event"] == "message_received");
    assert!(received["tls_version"].as_str().is_some_and(|v| v.starts_with("TLSv1.")), "{received}");

    // AUTH is never offered on 25, so swaks cannot even try.
    let said =
        swaks(&bin, &server, GOOD_IP, &["--from", &from, "--to", BOB, "--auth", "PLAIN", "-au", BOB, "-ap", "x"]);
    assert!(said.contains("Host did not advertise authentication"), "{said}");
    assert!(!said.contains("AUTH PLAIN"), "{said}");

    // A relay attempt.
    let said = swaks(&bin, &server, GOOD_IP, &["--from", &from, "--to", "victim@elsewhere.example"]);
    assert!(said.contains("<** 550 5.7.1"), "{said}");

    // The null sender (a bounce), checked by the HELO name's SPF record.
    let bounce_from = format!("From: <mailer-daemon@{GOOD}>");
    let said = swaks(&bin, &server, GOOD_IP, &["--from", "<>", "--to", BOB, "--header", &bounce_from]);
    assert!(said.contains(" -> MAIL FROM:<>") && said.contains("<-  250 2.0.0"), "{said}");
    server.wait_events(|e| e["event"] == "message_received", 2);
    assert_eq!(stored(&server, BOB, "INBOX").len(), 2);
}
