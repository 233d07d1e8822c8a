//! What a secret value looks like: the checks shared by the context detectors (labels, URL
//! passwords, HTTP credentials) and the token validators that keep placeholders, variable
//! references and code out.
//!
//! Decided: documentation placeholders (`<your-password>`, `${TOKEN}`, `xxxx`, `changeme`,
//! `your_api_key`) are not secrets; example keys that have a real key's full shape (AWS's
//! `AKIAIOSFODNN7EXAMPLE`, Stripe's published test key) are, since nothing but a list of
//! them tells them apart, and they are what operators use to check a deployment.

/// Parts (lower case) that make a value a placeholder wherever they appear in it.
const PLACEHOLDER_PARTS: &[&[u8]] = &[
    b"example",
    b"your",
    b"placeholder",
    b"redacted",
    b"changeme",
    b"change_me",
    b"change-me",
    b"xxxx",
    b"****",
    b"....",
    b"____",
    b"----",
    b"dummy",
    b"sample",
    b"insert",
    b"replace",
    b"abc123",
    b"123456789",
    b"${",
    b"{{",
    b"}}",
    b"<",
    b">",
    b"password",
    b"passwd",
    b"secret",
];

/// Whole values (lower case) that are not secrets: literals, type names, defaults.
const PLACEHOLDER_VALUES: &[&[u8]] = &[
    b"null",
    b"none",
    b"nil",
    b"true",
    b"false",
    b"undefined",
    b"string",
    b"required",
    b"optional",
    b"empty",
    b"hidden",
    b"masked",
    b"token",
    b"apikey",
    b"api_key",
    b"value",
    b"pass",
    b"admin",
    b"root",
    b"guest",
    b"test",
    b"demo",
    b"default",
    b"username",
    b"changeit",
    b"foobar",
];

/// Starts (lower case) of references to a secret kept elsewhere.
const REFERENCE_STARTS: &[&[u8]] = &[
    b"process.env",
    b"os.environ",
    b"os.getenv",
    b"getenv",
    b"env.",
    b"secrets.",
    b"vars.",
    b"settings.",
    b"config.",
];

/// First bytes of template variables, masks and references: `$VAR`, `%VAR%`, `<x>`, `{x}`,
/// `[x]`, `@var`, `#{x}`, `*****`.
const REFERENCE_FIRST: &[u8] = b"$%<{[@#*";

/// ASCII case-insensitive substring search; `needle` is lower case.
pub(super) fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay.windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        })
}

pub(super) fn eq_ci(a: &[u8], lower: &[u8]) -> bool {
    a.len() == lower.len()
        && a.iter()
            .zip(lower)
            .all(|(x, y)| x.to_ascii_lowercase() == *y)
}

pub(super) fn has_digit(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_digit)
}

pub(super) fn has_letter(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_alphabetic)
}

pub(super) fn has_upper(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_uppercase)
}

pub(super) fn has_lower(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_lowercase)
}

/// Longest run of one repeated byte.
fn longest_repeat(s: &[u8]) -> usize {
    let mut best = 0;
    let mut run = 0;
    let mut prev = None;
    for &b in s {
        run = if prev == Some(b) { run + 1 } else { 1 };
        prev = Some(b);
        best = best.max(run);
    }
    best
}

/// Documentation's `ghp_xxxxxxxx…`, `npm_000000…` and `sk_test_****…`: a body that spells
/// `xxxx` or `****`, or is mostly one character repeated. A body with a long run but real
/// content besides (a test fixture `ghp_EXAMPLE…0000000000`, a key someone padded) is still
/// token-shaped and is treated as a token: leaking a fake is cheap, missing a real one is not.
pub(super) fn is_placeholder_body(body: &[u8]) -> bool {
    2 * longest_repeat(body) >= body.len()
        || contains_ci(body, b"xxxx")
        || contains_ci(body, b"****")
}

/// A token body that cannot be prose: a digit, or both letter cases (`glpat-your-token-here`
/// has neither).
pub(super) fn is_random_mix(body: &[u8]) -> bool {
    has_digit(body) || (has_upper(body) && has_lower(body))
}

/// Whether `value` is a placeholder, a template variable, a mask, a default or a reference
/// rather than a secret.
pub(super) fn is_placeholder(value: &[u8]) -> bool {
    let Some(first) = value.first() else {
        return true;
    };
    REFERENCE_FIRST.contains(first)
        || longest_repeat(value) == value.len()
        || PLACEHOLDER_PARTS.iter().any(|p| contains_ci(value, p))
        || PLACEHOLDER_VALUES.iter().any(|p| eq_ci(value, p))
        || REFERENCE_STARTS
            .iter()
            .any(|p| value.get(..p.len()).is_some_and(|v| eq_ci(v, p)))
}

/// An unquoted value that is code, not a literal: an identifier or dotted path whose parts
/// are words (`self.password`, `user_input`, `config.db.pass`), a path or a URL.
pub(super) fn is_code_reference(value: &[u8]) -> bool {
    if value.starts_with(b"/")
        || value.starts_with(b"./")
        || value.starts_with(b"~/")
        || contains_ci(value, b"://")
    {
        return true;
    }
    let ident = |p: &[u8]| {
        p.first()
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'$')
            && p.iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$')
    };
    let parts = value.split(|b| *b == b'.');
    if !parts.clone().all(ident) {
        return false;
    }
    // A single identifier is code when it has no digit (`user_input`; `hunter2` is a
    // literal); a dotted path when no part has one (`vault.hvs1xyz…` is a token).
    parts.clone().count() == 1 && !has_digit(value)
        || parts.clone().count() > 1 && parts.clone().all(|p| !has_digit(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn placeholders() {
        for v in [
            "<your-password>",
            "${DB_PASSWORD}",
            "$TOKEN",
            "%API_KEY%",
            "{{ vault_token }}",
            "[REDACTED]",
            "********",
            "xxxxxxxxxxxx",
            "your_api_key_here",
            "YOUR-TOKEN",
            "changeme",
            "password",
            "mysecretpassword",
            "example-key-123",
            "null",
            "None",
            "process.env.TOKEN",
            "os.environ['X']",
            "@dbPassword",
            "#{secret}",
            "aaaaaaaa",
        ] {
            assert!(is_placeholder(v.as_bytes()), "{v}");
        }
        for v in [
            "hunter2",
            "Sup3rS3cret!",
            "p@55w0rd",
            "3f9a1c0b7d",
            "Tr0ub4dor&3",
        ] {
            assert!(!is_placeholder(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn code_references() {
        for v in [
            "self.password",
            "user_input",
            "config.db.pass",
            "/run/secrets/db",
            "./secret.txt",
            "https://vault.local/x",
            "getPassword",
        ] {
            assert!(is_code_reference(v.as_bytes()), "{v}");
        }
        for v in [
            "hunter2",
            "Sup3r!",
            "hvs.CAESIJ1x2y3z",
            "a1b2c3d4e5f6",
            "p@ss",
        ] {
            assert!(!is_code_reference(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn token_bodies() {
        assert!(is_placeholder_body(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
        assert!(is_placeholder_body(b"000000000000000000000000000000000000"));
        assert!(is_placeholder_body(b"abcXXXXdef123"));
        assert!(!is_placeholder_body(b"aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"));
        // pii-leak-benchmark's GitHub fixture: token-shaped, with a run of zeros in it.
        assert!(!is_placeholder_body(
            b"EXAMPLENOTAREALGITHUBTOKEN0000000000"
        ));
        assert!(is_random_mix(b"abcdef1"));
        assert!(is_random_mix(b"abcDEF"));
        assert!(!is_random_mix(b"your-token-here"));
    }
}
