//! ISO 8601 timestamps from epoch milliseconds, without a date-time dependency: the host
//! (proxy-wasm `get_current_time`, or the CLI's clock) supplies the time.

/// Formats Unix epoch milliseconds as `YYYY-MM-DDThh:mm:ss.sssZ` (UTC).
pub fn iso8601_millis(epoch_ms: u64) -> String {
    let ms = epoch_ms % 1000;
    let secs = epoch_ms / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    // By hand, not `format!` (one per record): a day count from 0 is a year from 1970.
    let Ok(y) = u64::try_from(y) else {
        return format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z");
    };
    let mut out = String::with_capacity(24);
    push_padded(&mut out, y, 4);
    for (sep, v, width) in [
        ('-', u64::from(mo), 2),
        ('-', u64::from(d), 2),
        ('T', h, 2),
        (':', m, 2),
        (':', s, 2),
        ('.', ms, 3),
    ] {
        out.push(sep);
        push_padded(&mut out, v, width);
    }
    out.push('Z');
    out
}

/// `v` in decimal, zero-padded to at least `width` digits (`{v:0width$}`).
fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut n = v;
    let mut len = 0;
    while let Some(slot) = digits.get_mut(len) {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    for i in (0..len.max(width)).rev() {
        out.push(char::from(digits.get(i).copied().unwrap_or(b'0')));
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); H. Hinnant's algorithm.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn known_instants() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        // date -u -d @1795715649 → Thu Nov 26 17:54:09 UTC 2026
        assert_eq!(
            iso8601_millis(1_795_715_649_123),
            "2026-11-26T17:54:09.123Z"
        );
        // Leap day and end of a leap year.
        assert_eq!(iso8601_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            iso8601_millis(1_735_689_599_999),
            "2024-12-31T23:59:59.999Z"
        );
    }

    /// The hand-written digits are `format!`'s, over the whole range of the input.
    #[test]
    fn digits_are_formats() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..20_000u64 {
            crate::test_rng::xorshift64(&mut x);
            let epoch_ms = match i % 4 {
                0 => x,
                1 => x % 4_102_444_800_000,
                2 => x % 1_000_000,
                _ => i,
            };
            let ms = epoch_ms % 1000;
            let secs = epoch_ms / 1000;
            let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
            let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
            let want = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z");
            assert_eq!(iso8601_millis(epoch_ms), want, "{epoch_ms}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Day numbers must increase by exactly one calendar day, across 1970–2370.
        let mut prev = civil_from_days(0);
        for day in 1..146_097 {
            let cur = civil_from_days(day);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                cur == next_day || cur == next_month || cur == next_year,
                "{prev:?} -> {cur:?}"
            );
            prev = cur;
        }
        assert_eq!(prev, (2369, 12, 31));
    }
}
