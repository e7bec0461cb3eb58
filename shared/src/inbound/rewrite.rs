//! A received message made fit to forward through SES: SES sends only from
//! a verified address, and a forwarded message that kept its author's From
//! would fail the author's DMARC at the customer's mailbox. So From becomes
//! our verified sender, showing who wrote it (`Zoë via acme_app`), Reply-To
//! keeps the author reachable, and the headers that vouch for the original
//! route (DKIM and ARC signatures, Return-Path, Sender) go. Everything else,
//! the body above all (attachments, encodings), is passed on byte for byte:
//! only the header block is parsed, never the MIME parts.

use crate::domain::EmailAddress;

/// The largest raw message SES sends (40 MB, after encoding).
pub const MAX_FORWARDED_BYTES: usize = 40 * 1024 * 1024;

/// Headers not passed on: signatures over the original route, and the
/// author's envelope addresses, which SES sets anew.
const DROPPED: &[&str] = &[
    "dkim-signature",
    "domainkey-signature",
    "return-path",
    "sender",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("the message has no From header")]
    NoFrom,
    #[error("the message's header block is not readable: {0}")]
    Malformed(&'static str),
    #[error("the message is {0} bytes; SES forwards at most 40 MB")]
    TooLarge(usize),
}

/// One header field as received: its name, and the whole field (name,
/// colon, value and any folded continuation lines, with their line ends).
struct Field<'a> {
    name: &'a [u8],
    raw: &'a [u8],
}

impl Field<'_> {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    /// The value, unfolded (line ends dropped), trimmed.
    fn value(&self) -> String {
        let after_colon = &self.raw[self.name.len() + 1..];
        let text = String::from_utf8_lossy(after_colon);
        text.split(['\r', '\n']).map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ")
    }
}

/// The header block's fields, and the line end the message uses (CRLF, or
/// bare LF from some tools).
fn split(raw: &[u8]) -> Result<(Vec<Field<'_>>, &'static [u8]), RewriteError> {
    let crlf = raw.windows(2).position(|w| w == b"\r\n");
    let lf = raw.iter().position(|b| *b == b'\n');
    let eol: &'static [u8] = match (crlf, lf) {
        (Some(c), Some(l)) if c + 1 == l => b"\r\n",
        (_, Some(_)) => b"\n",
        _ => return Err(RewriteError::Malformed("no line ends")),
    };
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut at = 0;
    loop {
        if at >= raw.len() {
            // Headers only, no body.
            return Ok((fields, eol));
        }
        let line_end =
            raw[at..].windows(eol.len()).position(|w| w == eol).map_or(raw.len(), |p| at + p + eol.len());
        let line = &raw[at..line_end];
        if line == eol {
            return Ok((fields, eol));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A folded continuation of the field before.
            let Some(last) = fields.last_mut() else {
                return Err(RewriteError::Malformed("a continuation line before any field"));
            };
            let start = last.raw.as_ptr() as usize - raw.as_ptr() as usize;
            last.raw = &raw[start..line_end];
        } else {
            let colon = line
                .iter()
                .position(|b| *b == b':')
                .ok_or(RewriteError::Malformed("a header line without a colon"))?;
            let name = &line[..colon];
            if name.is_empty() || !name.iter().all(|b| (33..=126).contains(b)) {
                return Err(RewriteError::Malformed("a header field name that is not printable ASCII"));
            }
            fields.push(Field { name, raw: line });
        }
        at = line_end;
    }
}

/// The display part of an address field (`"Doe, Jane"`,
/// `=?UTF-8?Q?Zo=C3=AB?=`) as written, or the address itself quoted when
/// there is none; kept encoded so no decoding can go wrong.
fn author_phrase(from: &str) -> String {
    let from = from.trim();
    match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close && !from[..open].trim().is_empty() => {
            from[..open].trim().to_owned()
        }
        (Some(open), Some(close)) if open < close => quoted(from[open + 1..close].trim()),
        _ => quoted(from.split('(').next().unwrap_or(from).trim()),
    }
}

fn quoted(text: &str) -> String {
    let escaped: String = text
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| if c == '"' || c == '\\' { vec!['\\', c] } else { vec![c] })
        .collect();
    format!("\"{escaped}\"")
}

/// Whether `raw`'s From is `sender`: a message the forwarder sent itself,
/// come back (to a tenant address in its To, say), which is never
/// forwarded again, or mail would loop.
pub fn is_from(raw: &[u8], sender: &EmailAddress) -> bool {
    let Ok((fields, _)) = split(raw) else { return false };
    let wanted = format!("<{}>", sender.as_str().to_ascii_lowercase());
    fields.iter().filter(|f| f.is("from")).any(|f| f.value().to_ascii_lowercase().contains(&wanted))
}

/// `raw`, rewritten to be sent from `sender` on behalf of the tenant address
/// `via` (its local part shows in the From name).
pub fn for_forwarding(
    raw: &[u8],
    sender: &EmailAddress,
    via: &EmailAddress,
) -> Result<Vec<u8>, RewriteError> {
    let (fields, eol) = split(raw)?;
    let from = fields.iter().find(|f| f.is("from")).ok_or(RewriteError::NoFrom)?.value();
    let has_reply_to = fields.iter().any(|f| f.is("reply-to"));
    let via_name = via.as_str().split('@').next().unwrap_or_default();
    let mut out = Vec::with_capacity(raw.len() + 256);
    let mut line = |text: String| {
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(eol);
    };
    line(format!("From: {} via {via_name} <{sender}>", author_phrase(&from)));
    if !has_reply_to {
        line(format!("Reply-To: {from}"));
    }
    line(format!("X-Forwarded-For: {via}"));
    for field in &fields {
        if field.is("from") || DROPPED.iter().any(|dropped| field.is(dropped)) {
            continue;
        }
        out.extend_from_slice(field.raw);
    }
    // The blank line and the body, as received.
    out.extend_from_slice(&raw[header_end(&fields, raw)..]);
    if out.len() > MAX_FORWARDED_BYTES {
        return Err(RewriteError::TooLarge(out.len()));
    }
    Ok(out)
}

/// Where the header block ends in `raw` (the blank line's start).
fn header_end(fields: &[Field<'_>], raw: &[u8]) -> usize {
    fields.last().map_or(0, |last| last.raw.as_ptr() as usize - raw.as_ptr() as usize + last.raw.len())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sender() -> EmailAddress {
        EmailAddress::parse("forwarder@mail.example.com").unwrap()
    }

    fn via() -> EmailAddress {
        EmailAddress::parse("acme_app@mail.example.com").unwrap()
    }

    /// A message as a mail client sends it: DKIM-signed, an RFC 2047 author
    /// and subject, a raw UTF-8 header (RFC 6532), folded fields, and a
    /// PDF attachment in base64.
    fn signed_message_with_attachment(attachment: &[u8]) -> (Vec<u8>, Vec<u8>) {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(attachment);
        let lines: Vec<&str> =
            encoded.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let headers = "Return-Path: <zoe@cafe.example>\r\n\
            Received: from mail.cafe.example (mail.cafe.example [192.0.2.7])\r\n\tby inbound-smtp.us-east-1.amazonaws.com with SMTP id abc\r\n\
            DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=cafe.example; s=s1;\r\n\th=from:to:subject:date; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ==\r\n\
            From: =?UTF-8?Q?Zo=C3=AB_Dupr=C3=A9?= <zoe@cafe.example>\r\n\
            To: acme_app@mail.example.com\r\n\
            Subject: =?UTF-8?B?Q2Fmw6kgb3JkZXIg4piV?=\r\n\
            X-Note: Café ☕ déjà vu\r\n\
            Date: Fri, 27 Nov 2026 10:00:00 +0100\r\n\
            Message-ID: <m1@cafe.example>\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: multipart/mixed; boundary=\"b1\"\r\n";
        let body = format!(
            "\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
             Bonjour, la commande est jointe. Merci!\r\n\r\n--b1\r\nContent-Type: application/pdf; name=\"commande.pdf\"\r\n\
             Content-Disposition: attachment; filename*=UTF-8''commande%C3%A9.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
            lines.join("\r\n")
        );
        ([headers.as_bytes(), body.as_bytes()].concat(), body.into_bytes())
    }

    fn header_block(message: &[u8]) -> String {
        let end = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        String::from_utf8(message[..end + 2].to_vec()).unwrap()
    }

    #[test]
    fn the_author_shows_in_from_replies_go_to_them_signatures_go_and_the_body_is_untouched() {
        let pdf: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (message, body) = signed_message_with_attachment(&pdf);
        let out = for_forwarding(&message, &sender(), &via()).unwrap();
        assert!(out.ends_with(&body), "the blank line and every MIME part, byte for byte");
        let headers = header_block(&out);
        assert!(
            headers.starts_with(
                "From: =?UTF-8?Q?Zo=C3=AB_Dupr=C3=A9?= via acme_app <forwarder@mail.example.com>\r\n\
                 Reply-To: =?UTF-8?Q?Zo=C3=AB_Dupr=C3=A9?= <zoe@cafe.example>\r\n\
                 X-Forwarded-For: acme_app@mail.example.com\r\n"
            ),
            "{headers}"
        );
        for gone in ["DKIM-Signature", "Return-Path", "bh=", "b=dGhp", "<zoe@cafe.example>\r\nReceived"] {
            assert!(!headers.contains(gone), "{gone} in {headers}");
        }
        for kept in [
            "Received: from mail.cafe.example (mail.cafe.example [192.0.2.7])\r\n\tby inbound-smtp",
            "Subject: =?UTF-8?B?Q2Fmw6kgb3JkZXIg4piV?=\r\n",
            "X-Note: Café ☕ déjà vu\r\n",
            "Message-ID: <m1@cafe.example>\r\n",
            "Content-Type: multipart/mixed; boundary=\"b1\"\r\n",
        ] {
            assert!(headers.contains(kept), "{kept} missing from {headers}");
        }
        assert_eq!(headers.matches("\r\nFrom: ").count() + usize::from(headers.starts_with("From: ")), 1);
    }

    #[test]
    fn a_ten_megabyte_message_is_passed_on_whole() {
        let attachment: Vec<u8> =
            (0..7_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let (message, body) = signed_message_with_attachment(&attachment);
        assert!(message.len() > 10_000_000, "{} bytes", message.len());
        let out = for_forwarding(&message, &sender(), &via()).unwrap();
        assert!(out.ends_with(&body));
        assert!(out.len() < message.len(), "the signature went, nothing was added to the body");
    }

    #[test]
    fn a_reply_to_of_the_author_is_kept_and_other_from_forms_are_named() {
        let message = b"From: zoe@cafe.example (Zoe)\nReply-To: orders@cafe.example\nSubject: hi\n\nbody\n";
        let out = String::from_utf8(for_forwarding(message, &sender(), &via()).unwrap()).unwrap();
        assert_eq!(
            out,
            "From: \"zoe@cafe.example\" via acme_app <forwarder@mail.example.com>\n\
             X-Forwarded-For: acme_app@mail.example.com\nReply-To: orders@cafe.example\nSubject: hi\n\nbody\n"
        );
        let bare = b"From: <zoe@cafe.example>\r\nSubject: x\r\n\r\n";
        let out = String::from_utf8(for_forwarding(bare, &sender(), &via()).unwrap()).unwrap();
        assert!(
            out.starts_with("From: \"zoe@cafe.example\" via acme_app <forwarder@mail.example.com>\r\n"),
            "{out}"
        );
        let quoted = b"From: \"Doe, Jane\" <jane@x.example>\r\n\r\n";
        let out = String::from_utf8(for_forwarding(quoted, &sender(), &via()).unwrap()).unwrap();
        assert!(
            out.starts_with("From: \"Doe, Jane\" via acme_app <forwarder@mail.example.com>\r\n"),
            "{out}"
        );
    }

    #[test]
    fn a_message_without_an_author_or_a_readable_header_is_refused() {
        assert_eq!(for_forwarding(b"Subject: x\r\n\r\nbody", &sender(), &via()), Err(RewriteError::NoFrom));
        assert!(matches!(
            for_forwarding(b"no header here", &sender(), &via()),
            Err(RewriteError::Malformed(_))
        ));
        assert!(matches!(
            for_forwarding(b"\tcontinued\r\nFrom: a@b.example\r\n\r\n", &sender(), &via()),
            Err(RewriteError::Malformed(_))
        ));
        assert!(matches!(
            for_forwarding(b"From a@b.example\r\n\r\n", &sender(), &via()),
            Err(RewriteError::Malformed(_))
        ));
    }

    proptest! {
        /// Whatever the fields and the body, the body is passed on as it
        /// came, there is one From (ours), and no dropped field survives.
        #[test]
        fn the_body_survives_and_only_our_from_is_left(
            names in prop::collection::vec(prop_oneof![
                Just("Subject"), Just("To"), Just("DKIM-Signature"), Just("Return-Path"), Just("Sender"),
                Just("X-Custom"), Just("Reply-To"), Just("ARC-Seal"), Just("Received"),
            ], 0..8),
            values in prop::collection::vec("[ -~]{0,40}", 8),
            folded in prop::collection::vec(any::<bool>(), 8),
            body in prop::collection::vec(any::<u8>(), 0..2_000),
            crlf in any::<bool>(),
        ) {
            let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut message = Vec::new();
            message.extend_from_slice(b"From: Someone <someone@x.example>");
            message.extend_from_slice(eol);
            for (i, name) in names.iter().enumerate() {
                message.extend_from_slice(format!("{name}: {}", values[i].trim()).as_bytes());
                if folded[i] {
                    message.extend_from_slice(eol);
                    message.extend_from_slice(b"\tmore");
                }
                message.extend_from_slice(eol);
            }
            message.extend_from_slice(eol);
            message.extend_from_slice(&body);
            let out = for_forwarding(&message, &sender(), &via()).unwrap();
            let mut tail = eol.to_vec();
            tail.extend_from_slice(&body);
            prop_assert!(out.ends_with(&tail));
            let head = String::from_utf8_lossy(&out[..out.len() - tail.len()]).to_string();
            let starts: Vec<&str> = head.split(if crlf { "\r\n" } else { "\n" }).collect();
            prop_assert_eq!(starts.iter().filter(|l| l.to_ascii_lowercase().starts_with("from:")).count(), 1);
            for dropped in DROPPED {
                let prefix = format!("{dropped}:");
                let survived = starts.iter().any(|l| l.to_ascii_lowercase().starts_with(&prefix));
                prop_assert!(!survived, "{} survived", dropped);
            }
            // The author's own Reply-To fields kept, else ours added.
            let replies_given = names.iter().filter(|name| **name == "Reply-To").count();
            prop_assert_eq!(
                starts.iter().filter(|l| l.to_ascii_lowercase().starts_with("reply-to:")).count(),
                replies_given.max(1)
            );
        }
    }
}
