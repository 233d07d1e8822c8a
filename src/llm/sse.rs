//! Server-sent events framing (WHATWG HTML, "event stream interpretation"): an incremental
//! parser that cuts a byte stream into events without losing or reordering a byte, and a
//! writer for events the gateway re-emits.
//!
//! Lines end with `\r\n`, `\n` or `\r`, also mixed within one stream and split across
//! chunks; an empty line ends an event. Each event keeps its exact bytes so an event the
//! policy does not change goes out unchanged.

use memchr::memchr2;

/// One complete event block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The exact bytes of the block, its terminating empty line included.
    pub raw: Vec<u8>,
    /// The `event:` field.
    pub name: Option<String>,
    /// The `data:` lines joined by `\n`; None when the block has no data line (comments,
    /// `retry:`) or its data is not UTF-8.
    pub data: Option<String>,
    /// The `id:` field.
    pub id: Option<String>,
    /// The block has `data:` lines but they are not UTF-8 (`data` is then None).
    pub data_invalid: bool,
    /// The line ending the block used, so a re-emitted event keeps the stream's framing.
    pub newline: &'static str,
}

/// The parser refused the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// One event grew beyond the limit (a stream that never ends its events).
    EventTooLarge,
}

/// Most bytes reserved for the next event ahead of its arrival.
const NEXT_EVENT_CAPACITY: usize = 4096;

/// Incremental parser; memory is one incomplete event, bounded by `max_event_bytes`.
#[derive(Debug)]
pub struct Parser {
    /// Bytes of the event being read.
    pending: Vec<u8>,
    /// Where the current (unterminated) line starts in `pending`.
    line_start: usize,
    /// The previous chunk ended with `\r`: a `\n` starting this one belongs to that line end.
    after_cr: bool,
    fields: Fields,
    max_event_bytes: usize,
}

#[derive(Debug, Default)]
struct Fields {
    name: Option<String>,
    data: Option<Vec<u8>>,
    id: Option<String>,
    data_lines: usize,
    newline: Option<&'static str>,
}

impl Parser {
    pub fn new(max_event_bytes: usize) -> Parser {
        Parser {
            pending: Vec::new(),
            line_start: 0,
            after_cr: false,
            fields: Fields::default(),
            max_event_bytes,
        }
    }

    /// Bytes held for an incomplete event.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Reads a chunk, appending every event it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        let mut rest = chunk;
        if self.after_cr {
            self.after_cr = false;
            if let Some((b'\n', tail)) = rest.split_first() {
                // Second half of a `\r\n` split across chunks: already counted as a line end.
                self.pending.push(b'\n');
                self.line_start = self.pending.len();
                rest = tail;
            }
        }
        while let Some(pos) = memchr2(b'\n', b'\r', rest) {
            let (line, tail) = rest.split_at(pos);
            self.pending.extend_from_slice(line);
            let line_end = self.pending.len();
            let (newline, consumed) = match tail {
                [b'\r', b'\n', ..] => ("\r\n", 2),
                [b'\r'] => {
                    // A `\n` may follow in the next chunk; either way the line ended here.
                    self.after_cr = true;
                    ("\r\n", 1)
                }
                [b'\r', ..] => ("\r", 1),
                _ => ("\n", 1),
            };
            let (terminator, tail) = tail.split_at(consumed.min(tail.len()));
            self.pending.extend_from_slice(terminator);
            // Checked per line, not per chunk: a whole event over the limit can arrive in one read.
            self.check_size()?;
            rest = tail;
            let start = self.line_start;
            self.line_start = self.pending.len();
            if start == line_end {
                self.dispatch(newline, out);
            } else {
                self.field(start, line_end, newline);
            }
        }
        self.pending.extend_from_slice(rest);
        self.check_size()
    }

    /// The bytes of an event left unterminated at the end of the stream, as one last event
    /// (clients differ on whether they use it, so it is inspected like any other).
    pub fn finish(&mut self) -> Option<Event> {
        if self.line_start < self.pending.len() {
            let (start, end) = (self.line_start, self.pending.len());
            self.field(start, end, "\n");
        }
        if self.pending.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        self.dispatch("\n", &mut out);
        out.pop()
    }

    fn check_size(&self) -> Result<(), SseError> {
        if self.pending.len() > self.max_event_bytes {
            return Err(SseError::EventTooLarge);
        }
        Ok(())
    }

    fn field(&mut self, start: usize, end: usize, newline: &'static str) {
        self.fields.newline.get_or_insert(newline);
        let Some(line) = self.pending.get(start..end) else {
            return;
        };
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let (n, v) = line.split_at(i);
                let v = v.get(1..).unwrap_or_default();
                (n, v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                let data = self.fields.data.get_or_insert_with(Vec::new);
                if self.fields.data_lines > 0 {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
                self.fields.data_lines += 1;
            }
            b"event" => self.fields.name = String::from_utf8(value.to_vec()).ok(),
            b"id" => self.fields.id = String::from_utf8(value.to_vec()).ok(),
            _ => {}
        }
    }

    fn dispatch(&mut self, newline: &'static str, out: &mut Vec<Event>) {
        let fields = std::mem::take(&mut self.fields);
        // The next event is likely about as long as this one: its buffer starts at this one's
        // size (bounded), not empty, so it is not grown byte by byte.
        let next = Vec::with_capacity(self.pending.len().min(NEXT_EVENT_CAPACITY));
        let raw = std::mem::replace(&mut self.pending, next);
        self.line_start = 0;
        let (data, data_invalid) = match fields.data.map(String::from_utf8) {
            Some(Ok(data)) => (Some(data), false),
            Some(Err(_)) => (None, true),
            None => (None, false),
        };
        out.push(Event {
            raw,
            name: fields.name,
            data,
            id: fields.id,
            data_invalid,
            newline: fields.newline.unwrap_or(newline),
        });
    }
}

/// Writes `raw` (one event block) with its `data:` lines replaced by `data`: every other line
/// (`event:`, `id:`, `retry:`, comments) and the line endings stay as they were.
pub fn rewrite_data(raw: &[u8], data: &str, out: &mut Vec<u8>) {
    let mut written = false;
    let mut rest = raw;
    while !rest.is_empty() {
        let (line, ending) = match memchr2(b'\n', b'\r', rest) {
            Some(i) => {
                let len = if rest.get(i..i + 2) == Some(b"\r\n") {
                    2
                } else {
                    1
                };
                (
                    rest.get(..i).unwrap_or_default(),
                    rest.get(i..i + len).unwrap_or_default(),
                )
            }
            None => (rest, &b""[..]),
        };
        let is_data = line
            .strip_prefix(b"data")
            .is_some_and(|r| r.is_empty() || r.first() == Some(&b':'));
        if !is_data {
            out.extend_from_slice(line);
            out.extend_from_slice(ending);
        } else if !written {
            written = true;
            for (n, part) in data.split('\n').enumerate() {
                if n > 0 {
                    out.extend_from_slice(if ending.is_empty() { b"\n" } else { ending });
                }
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(part.as_bytes());
            }
            out.extend_from_slice(ending);
        }
        rest = rest.get(line.len() + ending.len()..).unwrap_or_default();
    }
}

/// Writes an event block: `event:` and `id:` when given, one `data:` line per line of `data`.
pub fn write_event(
    name: Option<&str>,
    id: Option<&str>,
    data: &str,
    newline: &str,
    out: &mut Vec<u8>,
) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(newline.as_bytes());
    }
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(newline.as_bytes());
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(newline.as_bytes());
    }
    out.extend_from_slice(newline.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn parse_in(chunks: &[&[u8]]) -> (Vec<Event>, Option<Event>) {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        let last = p.finish();
        (out, last)
    }

    const MIXED: &[u8] = b"event: a\r\ndata: {\"x\":1}\r\n\r\n: comment\ndata: two\ndata: lines\n\nid: 7\rdata: cr\r\rretry: 5\n\ndata: [DONE]\n\n";

    #[test]
    fn mixed_line_endings_and_fields() {
        let (events, last) = parse_in(&[MIXED]);
        assert!(last.is_none());
        let data: Vec<Option<&str>> = events.iter().map(|e| e.data.as_deref()).collect();
        assert_eq!(
            data,
            [
                Some("{\"x\":1}"),
                Some("two\nlines"),
                Some("cr"),
                None,
                Some("[DONE]")
            ]
        );
        assert_eq!(events[0].name.as_deref(), Some("a"));
        assert_eq!(events[0].newline, "\r\n");
        assert_eq!(events[1].newline, "\n");
        assert_eq!(events[2].id.as_deref(), Some("7"));
        assert_eq!(events[2].newline, "\r");
        let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
        assert_eq!(raw, MIXED);
    }

    #[test]
    fn every_split_point_gives_the_same_events_and_bytes() {
        let (whole, _) = parse_in(&[MIXED]);
        for i in 0..=MIXED.len() {
            let (a, b) = MIXED.split_at(i);
            let (events, last) = parse_in(&[a, b]);
            assert!(last.is_none(), "split at {i}");
            let data: Vec<_> = events.iter().map(|e| e.data.clone()).collect();
            let want: Vec<_> = whole.iter().map(|e| e.data.clone()).collect();
            assert_eq!(data, want, "split at {i}");
            let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
            assert_eq!(raw, MIXED, "split at {i}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = MIXED.chunks(1).collect();
        let (events, _) = parse_in(&bytes);
        assert_eq!(events.len(), whole.len());
    }

    #[test]
    fn unterminated_last_event_is_returned_by_finish() {
        let (events, last) = parse_in(&[b"data: a\n\ndata: b"]);
        assert_eq!(events.len(), 1);
        let last = last.unwrap();
        assert_eq!(last.data.as_deref(), Some("b"));
        assert_eq!(last.raw, b"data: b");
        let (_, none) = parse_in(&[b"data: a\n\n"]);
        assert!(none.is_none());
    }

    #[test]
    fn field_without_space_and_non_utf8_data() {
        let (events, _) = parse_in(&[b"data:x\n\ndata: \xff\n\n"]);
        assert_eq!(events[0].data.as_deref(), Some("x"));
        assert_eq!(events[1].data, None);
    }

    #[test]
    fn an_event_beyond_the_limit_is_refused() {
        let mut p = Parser::new(16);
        let mut out = Vec::new();
        assert_eq!(p.feed(b"data: short\n\n", &mut out), Ok(()));
        assert_eq!(
            p.feed(b"data: this one never ends and keeps going", &mut out),
            Err(SseError::EventTooLarge)
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn a_whole_event_beyond_the_limit_in_one_chunk_is_refused() {
        // The limit is on the event, not on what is left over after the chunk: a complete
        // event over the limit arriving in one read must be refused too, and so must one
        // whose lines are each short.
        for chunk in [
            &b"data: this one is complete but far too long\n\n"[..],
            &b"data: a\ndata: b\ndata: c\ndata: d\ndata: e\n\n"[..],
        ] {
            let mut p = Parser::new(16);
            let mut out = Vec::new();
            assert_eq!(p.feed(chunk, &mut out), Err(SseError::EventTooLarge));
            assert!(out.is_empty());
        }
        let mut p = Parser::new(16);
        let mut out = Vec::new();
        assert_eq!(p.feed(b"data: 01234567\n\n", &mut out), Ok(()));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn rewriting_data_keeps_every_other_line() {
        let raw = b"event: x\r\n: note\r\nid: 7\r\ndata: {\"a\":\r\ndata: 1}\r\nretry: 5\r\n\r\n";
        let mut out = Vec::new();
        rewrite_data(raw, "{\"a\":2}", &mut out);
        assert_eq!(
            out,
            b"event: x\r\n: note\r\nid: 7\r\ndata: {\"a\":2}\r\nretry: 5\r\n\r\n"
        );
        let (events, _) = parse_in(&[&out]);
        assert_eq!(events[0].data.as_deref(), Some("{\"a\":2}"));
        assert_eq!(events[0].id.as_deref(), Some("7"));
    }

    #[test]
    fn written_events_parse_back() {
        let mut buf = Vec::new();
        write_event(Some("error"), Some("3"), "a\nb", "\r\n", &mut buf);
        assert_eq!(buf, b"event: error\r\nid: 3\r\ndata: a\r\ndata: b\r\n\r\n");
        let (events, _) = parse_in(&[&buf]);
        assert_eq!(events[0].data.as_deref(), Some("a\nb"));
        assert_eq!(events[0].name.as_deref(), Some("error"));
    }
}
