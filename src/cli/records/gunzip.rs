//! gunzip for exported records (S3 objects, compressed exports): the reverse of the sinks'
//! gzip (`sinks::gzip`), with any member header other tools write.

use crate::sinks::gzip::crc32;

/// Decompresses gzip data (one or more members, as `cat a.gz b.gz` makes), checking each
/// member's CRC-32 and size.
pub fn gunzip(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let header = data.get(..10).ok_or("truncated gzip header")?;
        if header.get(..3) != Some(&[0x1f, 0x8b, 0x08][..]) {
            return Err("not gzip data".into());
        }
        let flags = header.get(3).copied().unwrap_or(0);
        let mut pos = 10;
        if flags & 0x04 != 0 {
            let xlen = data
                .get(pos..pos + 2)
                .and_then(|b| <[u8; 2]>::try_from(b).ok())
                .ok_or("truncated gzip extra field")?;
            pos += 2 + usize::from(u16::from_le_bytes(xlen));
        }
        for bit in [0x08, 0x10] {
            if flags & bit != 0 {
                let rest = data.get(pos..).ok_or("truncated gzip name")?;
                pos += memchr::memchr(0, rest).ok_or("unterminated gzip name")? + 1;
            }
        }
        if flags & 0x02 != 0 {
            pos += 2;
        }
        let body = data.get(pos..).ok_or("truncated gzip member")?;
        let (inflated, used) = inflate_prefix(body)?;
        let word = |at: usize| {
            body.get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_le_bytes)
                .ok_or("truncated gzip trailer")
        };
        let (crc, size) = (word(used)?, word(used + 4)?);
        if crc != crc32(&inflated) || size != (inflated.len() as u64 & 0xffff_ffff) as u32 {
            return Err("gzip checksum mismatch".into());
        }
        out.extend_from_slice(&inflated);
        data = body.get(used + 8..).unwrap_or_default();
    }
    Ok(out)
}

/// Inflates the raw deflate stream at the start of `data`; returns it and the bytes it used.
fn inflate_prefix(data: &[u8]) -> Result<(Vec<u8>, usize), String> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;
    let mut state = DecompressorOxide::new();
    let mut out = vec![0u8; data.len().saturating_mul(4).max(1024)];
    let mut in_pos = 0;
    let mut out_pos = 0;
    loop {
        let (status, used, written) = decompress(
            &mut state,
            data.get(in_pos..).unwrap_or_default(),
            &mut out,
            out_pos,
            inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
        );
        in_pos += used;
        out_pos += written;
        match status {
            TINFLStatus::Done => {
                out.truncate(out_pos);
                return Ok((out, in_pos));
            }
            TINFLStatus::HasMoreOutput => {
                let len = out.len();
                out.resize(len.saturating_mul(2), 0);
            }
            _ => return Err(format!("invalid deflate data ({status:?})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::gzip::gzip;

    #[test]
    fn gunzip_round_trips_and_reads_concatenated_members() {
        let a = b"first member\n".repeat(300);
        let b = b"second\n".to_vec();
        let mut both = gzip(&a);
        both.extend(gzip(&b));
        let mut want = a.clone();
        want.extend(&b);
        assert_eq!(gunzip(&both).unwrap(), want);
        assert_eq!(gunzip(&gzip(b"")).unwrap(), b"");
        let mut bad = gzip(&a);
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert!(gunzip(&bad).is_err());
        assert!(gunzip(b"plain text").is_err());
    }
}
