//! The vault and the streaming restorer: tokens, the collision rule, the bounds, and pieces
//! restored exactly as the whole text is, for random values and every split.

use super::*;
use crate::detect::DetectorId;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const EMAIL: Source = Source::Detector(DetectorId::Email);
const CARD: Source = Source::Detector(DetectorId::CreditCard);
const SSN: Source = Source::Detector(DetectorId::UsSsn);

fn opts(token: PseudonymToken, restore: bool) -> PseudonymOptions {
    PseudonymOptions { token, restore }
}

const PLACEHOLDER: PseudonymOptions = PseudonymOptions {
    token: PseudonymToken::Placeholder,
    restore: true,
};

/// A small deterministic generator: `next(n)` is in `0..n`.
fn lcg(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n.max(1)
    }
}

fn token(v: &mut Vault, s: Source, value: &str, o: PseudonymOptions, req: &[&str]) -> String {
    v.token_for(s, value, o, req).unwrap().to_string()
}

#[test]
fn same_value_same_token_numbered_per_kind_in_order() {
    let mut v = Vault::default();
    let req = ["a@x.com b@x.com a@x.com 4111 1111 1111 1111"];
    assert_eq!(
        token(&mut v, EMAIL, "a@x.com", PLACEHOLDER, &req),
        "[EMAIL_1]"
    );
    assert_eq!(
        token(&mut v, EMAIL, "b@x.com", PLACEHOLDER, &req),
        "[EMAIL_2]"
    );
    assert_eq!(
        token(&mut v, EMAIL, "a@x.com", PLACEHOLDER, &req),
        "[EMAIL_1]"
    );
    assert_eq!(
        token(&mut v, CARD, "4111 1111 1111 1111", PLACEHOLDER, &req),
        "[CREDIT_CARD_1]"
    );
    assert_eq!(v.counts().pseudonymised.get("email"), Some(&3));
    assert_eq!(v.counts().pseudonymised.get("credit_card"), Some(&1));
}

#[test]
fn a_token_is_never_text_of_the_request() {
    let mut v = Vault::default();
    // The client wrote `[EMAIL_1]` itself: the model must not read two things as one.
    let req = ["mail [EMAIL_1] and [EMAIL_2] about a@x.com"];
    assert_eq!(
        token(&mut v, EMAIL, "a@x.com", PLACEHOLDER, &req),
        "[EMAIL_3]"
    );
    // A fake equal to a real value of the request is skipped too.
    let mut v = Vault::default();
    let fake = opts(PseudonymToken::Fake, true);
    let req = ["user1@example.invalid wrote to a@x.com"];
    assert_eq!(
        token(&mut v, EMAIL, "a@x.com", fake, &req),
        "user2@example.invalid"
    );
    assert_eq!(
        token(&mut v, EMAIL, "user1@example.invalid", fake, &req),
        "user3@example.invalid"
    );
}

#[test]
fn fakes_keep_the_shape() {
    let mut v = Vault::default();
    let fake = opts(PseudonymToken::Fake, true);
    let req = ["4111-1111-1111-1111 912-34-5678 ab@c.io"];
    assert_eq!(
        token(&mut v, CARD, "4111-1111-1111-1111", fake, &req),
        "0000-0000-0000-0001"
    );
    assert_eq!(token(&mut v, SSN, "912-34-5678", fake, &req), "000-00-0001");
    assert_eq!(
        token(&mut v, EMAIL, "ab@c.io", fake, &req),
        "user1@example.invalid"
    );
    // A value without four digits has no fake: the placeholder stands in.
    assert_eq!(
        token(&mut v, Source::Keyword, "Falcon", fake, &req),
        "[REDACTED_1]"
    );
}

#[test]
fn past_the_bound_values_are_redacted_one_way_and_counted() {
    let mut v = Vault::new(VaultLimits {
        max_entries: 1,
        max_bytes: 1 << 10,
    });
    let req = ["a@x.com b@x.com"];
    assert!(v.token_for(EMAIL, "a@x.com", PLACEHOLDER, &req).is_some());
    assert!(v.token_for(EMAIL, "b@x.com", PLACEHOLDER, &req).is_none());
    assert_eq!(v.counts().overflow.get("email"), Some(&1));
    let mut v = Vault::new(VaultLimits {
        max_entries: 10,
        max_bytes: 20,
    });
    assert!(v.token_for(EMAIL, "a@x.com", PLACEHOLDER, &req).is_some());
    assert!(v.token_for(EMAIL, "b@x.com", PLACEHOLDER, &req).is_none());
}

#[test]
fn debug_never_prints_a_value_or_a_token() {
    let mut v = Vault::default();
    v.token_for(EMAIL, "jane@corp.com", PLACEHOLDER, &["jane@corp.com"]);
    let shown = format!("{v:?}");
    assert!(!shown.contains("jane"), "{shown}");
    assert!(!shown.contains("EMAIL_1"), "{shown}");
}

#[test]
fn restore_gives_back_values_or_keeps_tokens() {
    let mut v = Vault::default();
    let req = ["a@x.com 4111 1111 1111 1111"];
    v.token_for(EMAIL, "a@x.com", PLACEHOLDER, &req);
    v.token_for(
        CARD,
        "4111 1111 1111 1111",
        opts(PseudonymToken::Placeholder, false),
        &req,
    );
    v.seal();
    let (text, counts) = v.restore("to [EMAIL_1], card [CREDIT_CARD_1], not [EMAIL_2] or [EMAIL_1");
    assert_eq!(
        text,
        "to a@x.com, card [CREDIT_CARD_1], not [EMAIL_2] or [EMAIL_1"
    );
    assert_eq!(counts.get("email"), Some(&1));
    assert_eq!(counts.get("credit_card"), Some(&1));
}

#[test]
fn a_fake_is_a_token_only_where_it_stands_alone() {
    let mut v = Vault::default();
    let fake = opts(PseudonymToken::Fake, true);
    v.token_for(SSN, "912-34-5678", fake, &["912-34-5678"]);
    v.seal();
    assert_eq!(v.restore("SSN 000-00-0001.").0, "SSN 912-34-5678.");
    assert_eq!(
        v.restore("x000-00-0001 000-00-00012").0,
        "x000-00-0001 000-00-00012"
    );
}

/// Random values of a few kinds, the vault for them, and a text mixing tokens, their
/// prefixes, values and noise.
fn scenario(rng: &mut impl FnMut(usize) -> usize, style: PseudonymToken) -> (Vault, String) {
    let mut v = Vault::default();
    let mut values = Vec::new();
    for _ in 0..1 + rng(4) {
        let local: String = (0..1 + rng(8))
            .map(|_| char::from(b'a' + rng(26) as u8))
            .collect();
        values.push((EMAIL, format!("{local}@corp.example")));
    }
    for _ in 0..rng(3) {
        let digits: String = (0..16).map(|_| char::from(b'0' + rng(10) as u8)).collect();
        values.push((CARD, digits));
    }
    let request: Vec<String> = values.iter().map(|(_, v)| v.clone()).collect();
    let req: Vec<&str> = request.iter().map(String::as_str).collect();
    let mut tokens = Vec::new();
    for (s, value) in &values {
        let restore = rng(5) != 0;
        if let Some(t) = v.token_for(*s, value, opts(style, restore), &req) {
            tokens.push(t.to_string());
        }
    }
    v.seal();
    let mut text = String::new();
    for _ in 0..rng(12) {
        let t = &tokens[rng(tokens.len())];
        match rng(6) {
            0 | 1 => text.push_str(t),
            2 => text.push_str(&t[..rng(t.len())]),
            3 => text.push_str(&request[rng(request.len())]),
            4 => text.push_str(["[", "]", "_", "1", "x", "é"][rng(6)]),
            _ => text.push(' '),
        }
    }
    (v, text)
}

fn streamed(v: &Vault, pieces: &[&str]) -> String {
    let mut r = Restorer::new(v);
    let mut out: String = pieces.iter().map(|p| r.push(p)).collect();
    out.push_str(&r.finish());
    out
}

#[test]
fn pieces_restore_exactly_as_the_whole_text_at_every_split() {
    let mut rng = lcg(7);
    for style in [PseudonymToken::Placeholder, PseudonymToken::Fake] {
        for _ in 0..80 {
            let (v, text) = scenario(&mut rng, style);
            let whole = v.restore(&text).0;
            let cuts: Vec<usize> = (0..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .collect();
            for &i in &cuts {
                for &j in cuts.iter().filter(|&&j| j >= i).step_by(3) {
                    let pieces = [&text[..i], &text[i..j], &text[j..]];
                    assert_eq!(streamed(&v, &pieces), whole, "{text:?} cut at {i}, {j}");
                }
            }
            // One character per piece, as the peer harness streams.
            let chars: Vec<String> = text.chars().map(String::from).collect();
            let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
            assert_eq!(streamed(&v, &pieces), whole, "{text:?} per character");
        }
    }
}

#[test]
fn nothing_waits_longer_than_a_token() {
    let mut v = Vault::default();
    v.token_for(EMAIL, "a@x.com", PLACEHOLDER, &["a@x.com"]);
    v.seal();
    let mut r = Restorer::new(&v);
    assert_eq!(r.push("Write to [EMAI"), "Write to ");
    assert_eq!(r.push("L_1] now ["), "a@x.com now ");
    assert_eq!(r.push("x"), "[x");
    assert_eq!(r.finish(), "");
}

/// A vault filled to its byte bound with the most varied tokens a client can cause (fakes
/// keep each value's shape: letters, digits and punctuation in any order) still builds its
/// matcher: `seal` turns a refused automaton into no restoration, silently, so the vault's
/// bound must stay far below the automaton's budget (review L7 of the automaton).
#[test]
fn a_full_vault_still_builds_its_matcher() {
    let fake = opts(PseudonymToken::Fake, true);
    let bytes = VaultLimits::default().max_bytes;
    for (max_entries, len) in [(256, 60), (usize::MAX, 6), (usize::MAX, 200)] {
        let mut v = Vault::new(VaultLimits {
            max_entries,
            max_bytes: bytes,
        });
        let mut rng = lcg(len as u64);
        let mut made = Vec::new();
        for _ in 0..20_000 {
            let mut value: String = (0..len).map(|_| char::from(b"aZ0-._9Xq"[rng(9)])).collect();
            value.push_str("1234");
            if let Some(t) = v.token_for(SSN, &value, fake, &[]) {
                made.push(t.to_string());
            }
        }
        assert!(
            v.bytes + 2 * (len + 4) > bytes,
            "not full: {} bytes",
            v.bytes
        );
        v.seal();
        assert!(v.matcher.is_some(), "{} tokens refused", made.len());
        let last = made.last().unwrap();
        let found = v.find(&format!("see {last} here"));
        assert_eq!(found.len(), 1, "{last}");
    }
}
