//! The few header facts of the original message a notice needs: whether it is itself
//! automatic (no notice about a notice: bounce loops), and its header block (returned when
//! RET=HDRS). A small reader of RFC 5322 §2.2 fields with unfolding, enough for these
//! questions; the content is never rewritten.

/// The header block: everything before the first empty line (the whole content if none).
pub fn header_block(content: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < content.len() {
        let end = content[start..].iter().position(|&b| b == b'\n').map_or(content.len(), |p| start + p + 1);
        let line = &content[start..end];
        if line == b"\r\n" || line == b"\n" {
            return &content[..start];
        }
        start = end;
    }
    content
}

/// The unfolded values of every field named `name` (case-insensitive).
pub fn field_values(content: &[u8], name: &str) -> Vec<String> {
    let block = String::from_utf8_lossy(header_block(content)).into_owned();
    let mut values: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in block.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some(value) = current.as_mut() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some(done) = current.take() {
            values.push(done);
        }
        if let Some((field, value)) = line.split_once(':') {
            if field.trim().eq_ignore_ascii_case(name) {
                current = Some(value.trim().to_string());
            }
        }
    }
    values.extend(current);
    values
}

/// Whether the message was made by a machine and must never cause a notice: an
/// Auto-Submitted field other than "no" (RFC 3834 §5), or a delivery report itself
/// (multipart/report; report-type=delivery-status, RFC 3464 / RFC 6522).
pub fn is_automatic(content: &[u8]) -> bool {
    let auto = field_values(content, "Auto-Submitted")
        .iter()
        .any(|v| !v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("no"));
    let report = field_values(content, "Content-Type").iter().any(|v| {
        let v = v.to_ascii_lowercase().replace([' ', '"'], "");
        v.starts_with("multipart/report") && v.contains("report-type=delivery-status")
    });
    auto || report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_block_ends_at_the_first_empty_line() {
        assert_eq!(header_block(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"), b"A: 1\r\nB: 2\r\n");
        assert_eq!(header_block(b"A: 1\r\n"), b"A: 1\r\n");
    }

    #[test]
    fn folded_fields_are_unfolded() {
        let content = b"Subject: one\r\n two\r\nauto-submitted:\r\n\tauto-replied\r\n\r\nAuto-Submitted: body";
        assert_eq!(field_values(content, "subject"), ["one two"]);
        assert_eq!(field_values(content, "Auto-Submitted"), ["auto-replied"]);
    }

    #[test]
    fn automatic_messages_are_recognised() {
        assert!(is_automatic(b"Auto-Submitted: auto-generated\r\n\r\n"));
        assert!(is_automatic(b"Auto-Submitted: auto-replied; owner-email=x\r\n\r\n"));
        assert!(!is_automatic(b"Auto-Submitted: no\r\n\r\n"));
        assert!(is_automatic(
            b"Content-Type: multipart/report;\r\n report-type=\"delivery-status\"; boundary=x\r\n\r\n"
        ));
        assert!(!is_automatic(b"Content-Type: multipart/report; report-type=disposition-notification\r\n\r\n"));
        assert!(!is_automatic(b"Subject: hi\r\n\r\nAuto-Submitted: auto-generated\r\n"));
    }
}
