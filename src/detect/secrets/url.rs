//! Passwords in URLs and connection strings: `scheme://user:password@host`
//! (`postgres://admin:Sup3rS3cret!@db:5432`, `mongodb+srv://…`, `redis://:pw@…`,
//! `https://user:token@host`).
//!
//! From a `://` found by the automaton: a scheme before it (a letter, then letters, digits,
//! `+`, `.`, `-`), then the authority up to the first `/`, `?`, `#`, whitespace, quote,
//! `<`, `>`, `\` or `;` (at most [`MAX_AUTHORITY`] bytes). The userinfo runs to the last `@`
//! of the authority (unencoded `@` in passwords happen), and the password from its first
//! `:`. The span is the password alone: the redacted URL keeps its user and host, which a
//! reader needs to make sense of it, and loses what grants access.
//!
//! Not secrets: placeholders (`user:password@`, `<password>`, `${DB_PASS}`), a password
//! equal to the user name (`guest:guest`, `postgres:postgres`: published defaults), and a
//! short all-digit one (`host:8080@` is a port before a stray `@`).
//!
//! Linear: an authority scan stops at the `/` of the next `://`, so scans never overlap.

use super::shape::is_placeholder;

/// Longest authority read.
const MAX_AUTHORITY: usize = 512;
/// Longest scheme read back.
const MAX_SCHEME: usize = 32;

fn is_scheme_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')
}

fn ends_authority(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'/' | b'?' | b'#' | b'"' | b'\'' | b'`' | b'<' | b'>' | b'\\' | b';'
        )
}

/// `sep` is the offset of `://`, `after` the offset after it; nothing before `floor` is read.
/// Returns the password's span, if any, and where the scan stopped.
pub(super) fn validate(
    bytes: &[u8],
    sep: usize,
    after: usize,
    floor: usize,
) -> (Option<(usize, usize)>, usize) {
    let mut scheme_start = sep;
    while scheme_start > floor
        && sep - scheme_start < MAX_SCHEME
        && bytes
            .get(scheme_start - 1)
            .is_some_and(|&b| is_scheme_byte(b))
    {
        scheme_start -= 1;
    }
    let end = super::run_end_capped(bytes, after, MAX_AUTHORITY + 1, |b| !ends_authority(b));
    let reached = end;
    if scheme_start == sep
        || !bytes.get(scheme_start).is_some_and(u8::is_ascii_alphabetic)
        || end - after > MAX_AUTHORITY
    {
        return (None, reached);
    }
    let Some(authority) = bytes.get(after..end) else {
        return (None, reached);
    };
    let Some(at) = authority.iter().rposition(|&b| b == b'@') else {
        return (None, reached);
    };
    let userinfo = authority.get(..at).unwrap_or_default();
    let Some(colon) = userinfo.iter().position(|&b| b == b':') else {
        return (None, reached);
    };
    let user = userinfo.get(..colon).unwrap_or_default();
    let password = userinfo.get(colon + 1..).unwrap_or_default();
    let port_like = password.len() <= 5 && password.iter().all(u8::is_ascii_digit);
    if password.len() < 3
        || port_like
        || is_placeholder(password)
        || password.eq_ignore_ascii_case(user)
    {
        return (None, reached);
    }
    (Some((after + colon + 1, after + at)), reached)
}

#[cfg(test)]
mod tests {
    use super::super::{scan, DetectorId, DetectorSet};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn all(text: &str) -> Vec<(DetectorId, &str)> {
        crate::detect::test_support::found(text, |t, out| scan(t, DetectorSet::all(), out))
    }

    #[test]
    fn passwords_in_urls() {
        for (text, password) in [
            (
                "postgres://admin:Sup3rS3cret!@db.internal:5432/app",
                "Sup3rS3cret!",
            ),
            (
                "DATABASE_URL=postgresql://app:pa55w0rd@localhost/app?sslmode=require",
                "pa55w0rd",
            ),
            (
                "mongodb+srv://svc:Xk2%40qP9z@cluster0.abcde.mongodb.net/test",
                "Xk2%40qP9z",
            ),
            ("redis://:r3d1sPw@cache:6379/0", "r3d1sPw"),
            ("amqps://bus:Q7!ttz@mq.example.net:5671/", "Q7!ttz"),
            ("jdbc:postgresql://ro:Read0nly@db/app", "Read0nly"),
            (
                "git clone https://bob:hunter22@git.example.com/r.git",
                "hunter22",
            ),
            ("ftp://bob@example.com:pa55@ftp.example.com/", "pa55"),
            ("[db](mysql://root:p@ss@w0rd@127.0.0.1:3306)", "p@ss@w0rd"),
            (
                "\"url\": \"smtp://mailer:Zq9vX2k@smtp.example.com:587\"",
                "Zq9vX2k",
            ),
            ("POSTGRES://ADMIN:SUP3RS3CRET@DB/APP", "SUP3RS3CRET"),
        ] {
            assert_eq!(
                all(text),
                vec![(DetectorId::UrlCredentials, password)],
                "{text}"
            );
        }
    }

    #[test]
    fn url_hard_negatives() {
        for text in [
            // RFC 3986's examples.
            "ftp://ftp.is.co.za/rfc/rfc1808.txt",
            "http://www.ietf.org/rfc/rfc2396.txt",
            "ldap://[2001:db8::7]/c=GB?objectClass?one",
            "mailto:John.Doe@example.com",
            "telnet://192.0.2.16:80/",
            "urn:oasis:names:specification:docbook:dtd:xml:4.1.2",
            // Placeholders and defaults from documentation.
            "postgres://user:password@localhost:5432/db",
            "postgresql://username:password@host/db",
            "mongodb+srv://<username>:<password>@cluster0.mongodb.net/",
            "mysql://root:${MYSQL_ROOT_PASSWORD}@db/app",
            "redis://:password@localhost:6379",
            "amqp://guest:guest@localhost:5672/",
            "postgres://postgres:postgres@db:5432/postgres",
            "https://user:****@host/",
            "https://user:xxxx@host/",
            // No password, a port, an @ after the path.
            "ssh://git@github.com/org/repo.git",
            "https://host:8443/path",
            "https://example.com:443@evil.example/",
            "https://medium.com/@user/post",
            "http://host/path?email=a@b.co",
            "git@github.com:org/repo.git",
            "://user:Sup3r@host",
        ] {
            assert!(all(text).is_empty(), "{text}: {:?}", all(text));
        }
    }

    #[test]
    fn url_floods_stay_linear_and_quiet() {
        let n = 200 * 1024;
        for text in [
            "://".repeat(n / 3),
            "a://b:c".repeat(n / 7),
            format!("x://{}", "u:p".repeat(n / 3)),
            "x://a:b@".repeat(n / 8),
        ] {
            let found = all(&text);
            assert!(found.len() <= text.len() / 8, "{}", &text[..20]);
        }
    }
}
