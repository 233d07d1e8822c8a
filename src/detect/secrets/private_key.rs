//! PEM and PGP armored private key blocks.
//!
//! Accepted: `-----BEGIN <label>-----` where the label is `PRIVATE KEY` or ends with
//! ` PRIVATE KEY` (RSA, EC, DSA, OPENSSH, ENCRYPTED, ...) or is `PGP PRIVATE KEY BLOCK`,
//! then a body of armor headers (`Proc-Type: …`, `DEK-Info: …`, `Version: …`) and base64
//! tokens, then the matching `-----END <label>-----`. The span runs from `-----BEGIN` to
//! the end of the END line. If the END line is missing or does not match (a truncated
//! paste), the span runs to the end of the last base64 body token, provided the body holds
//! at least one token of [`LONG_TOKEN`] chars (a bare header line is not a secret).
//!
//! Line breaks may be real (`\n`, `\r\n`), plain spaces (keys flattened onto one line), or
//! literal escapes (`\n` as two characters, e.g. a key inside a JSON string such as a
//! service-account file pasted into a prompt).
//!
//! Linear time: the label scan is capped; the body walk stops at the first token that is
//! neither base64 nor an armor header, which comes before any later `-----BEGIN`, so body
//! walks of different hits never overlap.

/// Longest label accepted between `-----BEGIN ` and `-----`.
const MAX_LABEL: usize = 48;

/// A body token at least this long is key material; shorter ones (prose words after a
/// truncated key) only count when confirmed by a later long token, the END line, padding,
/// or the end of the text.
const LONG_TOKEN: usize = 16;

/// `body` is the offset right after `-----BEGIN `. Returns the end of the key block.
pub(super) fn validate(bytes: &[u8], body: usize) -> Option<usize> {
    let label_end = super::run_end_capped(bytes, body, MAX_LABEL + 1, |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
    });
    let label = bytes.get(body..label_end)?;
    if label.len() > MAX_LABEL || !is_private_label(label) {
        return None;
    }
    let header_end = label_end + 5;
    if bytes.get(label_end..header_end) != Some(b"-----".as_slice()) {
        return None;
    }
    walk_body(bytes, header_end, label)
}

fn is_private_label(label: &[u8]) -> bool {
    label == b"PRIVATE KEY" || label.ends_with(b" PRIVATE KEY") || label == b"PGP PRIVATE KEY BLOCK"
}

/// `[A-Za-z0-9+/=]`.
fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// Skips whitespace and literal `\n`, `\r`, `\t` escapes (any number of backslashes).
/// Returns the new offset and whether a line break was crossed.
fn skip_separators(bytes: &[u8], mut pos: usize) -> (usize, bool) {
    let mut newline = false;
    loop {
        match bytes.get(pos) {
            Some(b' ' | b'\t') => pos += 1,
            Some(b'\r' | b'\n') => {
                newline = true;
                pos += 1;
            }
            Some(b'\\') => {
                let slashes_end = super::run_end(bytes, pos, |b| b == b'\\');
                match bytes.get(slashes_end) {
                    Some(b'n' | b'r') => {
                        newline = true;
                        pos = slashes_end + 1;
                    }
                    Some(b't') => pos = slashes_end + 1,
                    _ => return (pos, newline),
                }
            }
            _ => return (pos, newline),
        }
    }
}

/// End of the token at `pos`: up to whitespace or a literal `\n`, `\r`, `\t` escape.
/// Other backslashes stay in the token (JSON may escape `/` as `\/`).
fn token_end(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(&b) = bytes.get(pos) {
        if b.is_ascii_whitespace() {
            break;
        }
        if b == b'\\' {
            let slashes_end = super::run_end(bytes, pos, |c| c == b'\\');
            if matches!(bytes.get(slashes_end), Some(b'n' | b'r' | b't')) {
                break;
            }
            pos = slashes_end;
        } else {
            pos += 1;
        }
    }
    pos
}

/// Walks the body after the BEGIN line; see the module docs.
fn walk_body(bytes: &[u8], header_end: usize, label: &[u8]) -> Option<usize> {
    // End of the last confirmed body token, and of a short one awaiting confirmation.
    let mut body_end = header_end;
    let mut pending: Option<usize> = None;
    let mut any_body = false;
    let mut long_seen = false;
    // Inside an armor header value (until the next line break).
    let mut in_header_value = false;
    let mut pos = header_end;
    loop {
        let (next, newline) = skip_separators(bytes, pos);
        pos = next;
        if newline {
            in_header_value = false;
        }
        let rest = bytes.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            // End of text: a trailing short token is the tail of a truncated paste.
            body_end = pending.unwrap_or(body_end);
            break;
        }
        if let Some(after_end) = rest.strip_prefix(b"-----END ".as_slice()) {
            let matches = after_end.starts_with(label)
                && after_end.get(label.len()..label.len() + 5) == Some(b"-----".as_slice());
            if matches && long_seen {
                return Some(pos + 9 + label.len() + 5);
            }
            break;
        }
        let end = token_end(bytes, pos);
        let token = bytes.get(pos..end).unwrap_or_default();
        if token.is_empty() || token.starts_with(b"-----") {
            break;
        }
        if in_header_value {
            // Armor header values are free text (`AES-128-CBC,9F3A…`, `GnuPG v2`).
        } else if !any_body && is_header_key(token) {
            in_header_value = true;
        } else if token.iter().all(|&b| is_base64(b) || b == b'\\') {
            any_body = true;
            let key_chars = token.iter().filter(|&&b| is_base64(b)).count();
            if key_chars >= LONG_TOKEN || token.ends_with(b"=") {
                long_seen |= key_chars >= LONG_TOKEN;
                body_end = end;
                pending = None;
            } else {
                pending = Some(end);
            }
        } else {
            break;
        }
        pos = end;
    }
    // Only truncated blocks with real key material are reported.
    long_seen.then_some(body_end)
}

/// `Proc-Type:`, `DEK-Info:`, `Version:`, `Comment:` and the like.
fn is_header_key(token: &[u8]) -> bool {
    match token.split_last() {
        Some((b':', name)) => {
            !name.is_empty()
                && name.len() <= 32
                && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{scan, DetectorId, DetectorSet, Finding};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn keys(text: &str) -> Vec<&str> {
        let mut out: Vec<Finding> = Vec::new();
        scan(text, DetectorSet::all(), &mut out);
        out.iter()
            .inspect(|f| assert_eq!(f.detector, DetectorId::PrivateKey))
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    /// A PEM body of `lines` full 64-char lines and a short final line, joined by `sep`.
    fn body(seed: u64, lines: usize, sep: &str) -> String {
        let mut parts: Vec<String> = (0..lines).map(|i| fake(seed + i as u64, 64, B64)).collect();
        parts.push(format!("{}==", fake(seed + 999, 22, B64)));
        parts.join(sep)
    }

    fn pem(label: &str, body: &str, sep: &str) -> String {
        format!("-----BEGIN {label}-----{sep}{body}{sep}-----END {label}-----")
    }

    #[test]
    fn complete_blocks_of_every_label() {
        for (i, label) in [
            "RSA PRIVATE KEY",
            "EC PRIVATE KEY",
            "DSA PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
            "PRIVATE KEY",
        ]
        .iter()
        .enumerate()
        {
            let key = pem(label, &body(i as u64 * 100, 5, "\n"), "\n");
            let text = format!("here is my key:\n{key}\nwhy does ssh reject it?");
            assert_eq!(keys(&text), vec![&key[..]], "{label}");
        }
    }

    #[test]
    fn crlf_flattened_and_json_escaped() {
        for sep in ["\r\n", " ", "\\n", "\\\\n", "\\r\\n"] {
            let key = pem("PRIVATE KEY", &body(7, 4, sep), sep);
            let text =
                format!("{{\"type\": \"service_account\", \"private_key\": \"{key}{sep}\"}}");
            assert_eq!(keys(&text), vec![&key[..]], "{sep:?}");
        }
    }

    #[test]
    fn json_escaped_slashes_stay_in_the_body() {
        let b = body(18, 4, "\\n").replace('/', "\\/");
        assert!(b.contains("\\/"));
        let key = pem("RSA PRIVATE KEY", &b, "\\n");
        let text = format!("{{\"key\":\"{key}\\n\"}}");
        assert_eq!(keys(&text), vec![&key[..]]);
    }

    #[test]
    fn encrypted_pem_with_armor_headers() {
        let inner = format!(
            "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,{}\n\n{}",
            fake(8, 32, b"0123456789ABCDEF"),
            body(9, 3, "\n")
        );
        let key = pem("RSA PRIVATE KEY", &inner, "\n");
        assert_eq!(keys(&key), vec![&key[..]]);
    }

    #[test]
    fn pgp_private_key_block() {
        let inner = format!(
            "Version: GnuPG v2\nComment: https://gnupg.org (test)\n\n{}\n={}",
            body(10, 6, "\n"),
            fake(11, 4, B64)
        );
        let key = pem("PGP PRIVATE KEY BLOCK", &inner, "\n");
        let text = format!("> {key}\n");
        assert_eq!(keys(&text), vec![&key[..]]);
    }

    #[test]
    fn truncated_paste_runs_to_end_of_body() {
        let b = body(12, 3, "\n");
        // Text ends inside the body: the whole remainder is the key.
        let text = format!("-----BEGIN RSA PRIVATE KEY-----\n{b}");
        assert_eq!(keys(&text), vec![&text[..]]);
        // Prose after the truncated body is not swallowed.
        let text = format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{b}\n\nCan you fix this?");
        let want = format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{b}");
        assert_eq!(keys(&text), vec![&want[..]]);
        // Last full line then short prose words then punctuation: ends at the long line.
        let line = fake(13, 64, B64);
        let text = format!("-----BEGIN EC PRIVATE KEY-----\n{line}\nwhat is this.");
        let want = format!("-----BEGIN EC PRIVATE KEY-----\n{line}");
        assert_eq!(keys(&text), vec![&want[..]]);
        // A mismatched END line ends the body without being included.
        let text = format!("-----BEGIN RSA PRIVATE KEY-----\n{b}\n-----END EC PRIVATE KEY-----");
        let want = format!("-----BEGIN RSA PRIVATE KEY-----\n{b}");
        assert_eq!(keys(&text), vec![&want[..]]);
    }

    #[test]
    fn two_keys_in_one_text() {
        let a = pem("RSA PRIVATE KEY", &body(14, 2, "\n"), "\n");
        let b = pem("OPENSSH PRIVATE KEY", &body(15, 2, "\n"), "\n");
        let text = format!("{a}\n{b}\n");
        assert_eq!(keys(&text), vec![&a[..], &b[..]]);
    }

    #[test]
    fn negatives() {
        let b = body(16, 3, "\n");
        for text in [
            pem("PUBLIC KEY", &b, "\n"),
            pem("RSA PUBLIC KEY", &b, "\n"),
            pem("CERTIFICATE", &b, "\n"),
            pem("CERTIFICATE REQUEST", &b, "\n"),
            pem("PGP PUBLIC KEY BLOCK", &b, "\n"),
            pem("OPENSSH PRIVATE KEY", "...", "\n"),
            "A PEM key starts with -----BEGIN RSA PRIVATE KEY----- and ends with -----END \
             RSA PRIVATE KEY-----."
                .to_string(),
            "-----BEGIN RSA PRIVATE KEY----- is the header line of a PKCS#1 key".to_string(),
            "-----BEGIN PRIVATE KEY-----".to_string(),
            format!("-----BEGIN private key-----\n{b}"),
            format!("-----BEGIN {} PRIVATE KEY-----\n{b}", "X".repeat(60)),
        ] {
            assert!(keys(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn adversarial_headers() {
        let n = 200 * 1024;
        let line = fake(17, 64, B64);
        let unterminated = format!("-----BEGIN PRIVATE KEY-----\n{line}\n").repeat(n / 93);
        // Each header ends the previous truncated body: one finding per block.
        assert_eq!(keys(&unterminated).len(), n / 93);
        let words = format!("-----BEGIN PRIVATE KEY-----\n{}", "a ".repeat(n / 2));
        assert!(keys(&words).is_empty());
        let escapes = format!("-----BEGIN PRIVATE KEY-----{}", "\\".repeat(n));
        assert!(keys(&escapes).is_empty());
        let labels = format!("-----BEGIN {}", "PRIVATE ".repeat(n / 8));
        assert!(keys(&labels).is_empty());
    }
}
