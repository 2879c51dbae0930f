//! The RFC 3461 parameters (DSN) a submitter gives, checked before they are kept: RET and
//! ENVID on MAIL FROM, NOTIFY and ORCPT on RCPT TO. smtp-proto parses them (and refuses
//! unknown values, an ORCPT address type other than rfc822, an ENVID over 100 characters,
//! with `501`); what it lets through and RFC 3461 still forbids is refused here, with `501`
//! and the rule broken. Only submission offers DSN (EHLO, after TLS): mail to other domains
//! is queued with them, and the queue's notices honour them. Port 25 does not offer DSN, and
//! what a client sends there anyway is ignored.

use smtp_proto::{
    MailFrom, RcptTo, MAIL_RET_FULL, MAIL_RET_HDRS, RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER,
    RCPT_NOTIFY_SUCCESS,
};

use crate::reply::Reply;

/// MAIL FROM's RET and ENVID, in their ESMTP text forms (ENVID decoded from xtext).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct MailDsn {
    pub ret: Option<&'static str>,
    pub envid: Option<String>,
}

/// RCPT TO's NOTIFY (as a parameter value: "NEVER", or "SUCCESS,FAILURE,DELAY" in part) and
/// ORCPT (the original address, decoded from xtext; its type is rfc822).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RcptDsn {
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

pub(super) fn mail_dsn(from: &MailFrom<String>) -> Result<MailDsn, Reply<'static>> {
    let ret = match (from.flags & MAIL_RET_FULL != 0, from.flags & MAIL_RET_HDRS != 0) {
        // RFC 3461 §4.3: one RET, FULL or HDRS.
        (true, true) => return Err(Reply::new(501, "5.5.4", "RET must be FULL or HDRS, not both")),
        (true, false) => Some("FULL"),
        (false, true) => Some("HDRS"),
        (false, false) => None,
    };
    // RFC 3461 §4.4: ENVID is printable US-ASCII once decoded.
    if let Some(envid) = &from.env_id {
        if !envid.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(Reply::new(501, "5.5.4", "ENVID must be printable US-ASCII (xtext, RFC 3461 §4.4)"));
        }
    }
    Ok(MailDsn { ret, envid: from.env_id.clone() })
}

pub(super) fn rcpt_dsn(to: &RcptTo<String>) -> Result<RcptDsn, Reply<'static>> {
    let asked = to.flags & (RCPT_NOTIFY_NEVER | RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY);
    let notify = if asked == 0 {
        None
    } else if asked & RCPT_NOTIFY_NEVER != 0 {
        // RFC 3461 §4.1: NEVER stands alone.
        if asked != RCPT_NOTIFY_NEVER {
            return Err(Reply::new(501, "5.5.4", "NOTIFY=NEVER cannot be combined with SUCCESS, FAILURE or DELAY"));
        }
        Some("NEVER".to_string())
    } else {
        let words = [(RCPT_NOTIFY_SUCCESS, "SUCCESS"), (RCPT_NOTIFY_FAILURE, "FAILURE"), (RCPT_NOTIFY_DELAY, "DELAY")];
        let words: Vec<&str> = words.iter().filter(|(flag, _)| asked & flag != 0).map(|(_, w)| *w).collect();
        Some(words.join(","))
    };
    if let Some(orcpt) = &to.orcpt {
        // RFC 3461 §4.2: an rfc822 address, xtext-decoded to US-ASCII.
        if !orcpt.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(Reply::new(501, "5.5.4", "ORCPT must be an rfc822 address in US-ASCII (xtext, RFC 3461 §4.2)"));
        }
    }
    Ok(RcptDsn { notify, orcpt: to.orcpt.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::Request;

    fn parse(line: &str) -> Request<String> {
        let line = format!("{line}\r\n");
        Request::parse(&mut line.as_bytes().iter()).map(Request::into_owned).unwrap()
    }

    fn said(reply: Reply<'_>) -> String {
        let mut out = Vec::new();
        reply.write(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn mail(line: &str) -> Result<MailDsn, String> {
        let Request::Mail { from } = parse(line) else { panic!("{line}") };
        mail_dsn(&from).map_err(said)
    }

    fn rcpt(line: &str) -> Result<RcptDsn, String> {
        let Request::Rcpt { to } = parse(line) else { panic!("{line}") };
        rcpt_dsn(&to).map_err(said)
    }

    #[test]
    fn ret_and_envid() {
        assert_eq!(mail("MAIL FROM:<a@b>").unwrap(), MailDsn::default());
        let dsn = mail("MAIL FROM:<a@b> RET=HDRS ENVID=QQ+2B1+3D2").unwrap();
        assert_eq!((dsn.ret, dsn.envid.as_deref()), (Some("HDRS"), Some("QQ+1=2")));
        assert_eq!(mail("MAIL FROM:<a@b> RET=FULL").unwrap().ret, Some("FULL"));
        assert!(mail("MAIL FROM:<a@b> RET=FULL RET=HDRS").unwrap_err().contains("not both"));
        assert!(mail("MAIL FROM:<a@b> ENVID=a+0Ab").unwrap_err().contains("printable"));
    }

    #[test]
    fn notify_and_orcpt() {
        assert_eq!(rcpt("RCPT TO:<a@b>").unwrap(), RcptDsn::default());
        assert_eq!(rcpt("RCPT TO:<a@b> NOTIFY=NEVER").unwrap().notify.as_deref(), Some("NEVER"));
        assert_eq!(rcpt("RCPT TO:<a@b> NOTIFY=delay,Success").unwrap().notify.as_deref(), Some("SUCCESS,DELAY"));
        assert_eq!(
            rcpt("RCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE,DELAY").unwrap().notify.as_deref(),
            Some("SUCCESS,FAILURE,DELAY")
        );
        // smtp-proto refuses NEVER after another word, not before one.
        assert!(rcpt("RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS").unwrap_err().contains("cannot be combined"));
        let dsn = rcpt("RCPT TO:<a@b> ORCPT=rfc822;Old+2Bname@example.org").unwrap();
        assert_eq!(dsn.orcpt.as_deref(), Some("Old+name@example.org"));
        assert!(rcpt("RCPT TO:<a@b> ORCPT=rfc822;x+0D+0Ay@b").unwrap_err().contains("US-ASCII"));
    }

    #[test]
    fn smtp_proto_refuses_bad_values_with_a_clear_parameter_name() {
        for (line, param) in [
            ("MAIL FROM:<a@b> RET=ALL", "RET"),
            ("MAIL FROM:<a@b> ENVID=", "ENVID"),
            ("RCPT TO:<a@b> NOTIFY=SOMETIMES", "NOTIFY"),
            ("RCPT TO:<a@b> NOTIFY=SUCCESS,NEVER", "NOTIFY"),
            ("RCPT TO:<a@b> ORCPT=x400;abc", "ORCPT"),
            ("RCPT TO:<a@b> ORCPT=rfc822", "ORCPT"),
        ] {
            let line = format!("{line}\r\n");
            match Request::parse(&mut line.as_bytes().iter()) {
                Err(smtp_proto::Error::InvalidParameter { param: p }) => assert_eq!(p, param, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}
