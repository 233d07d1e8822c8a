//! Positions in a configuration's text for its errors: the line and column of the value at a
//! path (the reader names a wrong value by its path), and the path and position of a key an
//! object repeats (the parser only says that one does). One linear pass over the bytes each,
//! on the error path only; no allocation beyond the keys on the way.

use super::read::Step;

enum Frame {
    Object { key: String, expecting_key: bool },
    Array { index: usize },
}

/// Where the string whose text starts at `start` ends: the index of its closing quote (the
/// text's length if it has none). Escapes are skipped, not decoded.
fn string_end(json: &[u8], start: usize) -> usize {
    let mut i = start;
    while let Some(&c) = json.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    i
}

/// The line and column (1-based, in bytes, as serde_json counts them) where the value at
/// `steps` starts; `None` when no value is there (or a key on the way is written with
/// escapes, which this pass does not decode).
pub fn locate(json: &[u8], steps: &[Step]) -> Option<(usize, usize)> {
    let mut stack: Vec<Frame> = Vec::new();
    // A value may start at the next byte that is not white space.
    let mut value_next = true;
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        if value_next && !b.is_ascii_whitespace() && b != b']' && b != b'}' {
            value_next = false;
            if at_steps(&stack, steps) {
                return Some(line_column(json, i));
            }
        }
        match b {
            b'{' => stack.push(Frame::Object {
                key: String::new(),
                expecting_key: true,
            }),
            b'[' => {
                stack.push(Frame::Array { index: 0 });
                value_next = true;
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                Some(Frame::Array { index }) => {
                    *index += 1;
                    value_next = true;
                }
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                    value_next = true;
                }
            }
            b'"' => {
                let start = i + 1;
                i = string_end(json, start);
                if let Some(Frame::Object {
                    key,
                    expecting_key: true,
                }) = stack.last_mut()
                {
                    let raw = json.get(start..i.min(json.len())).unwrap_or_default();
                    *key = String::from_utf8_lossy(raw).into_owned();
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The path, line and column (of its value) of the first key an object repeats, comparing
/// keys as written (the strict parser, which decodes escapes, is what refuses repeats: this
/// only names them).
pub fn repeated_key(json: &[u8]) -> Option<(String, usize, usize)> {
    struct Open {
        /// The keys seen so far (objects only).
        keys: Vec<String>,
        object: bool,
        expecting_key: bool,
        index: usize,
        /// The member being read: `.key` or `[index]`.
        step: String,
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'{' | b'[' => stack.push(Open {
                keys: Vec::new(),
                object: b == b'{',
                expecting_key: b == b'{',
                index: 0,
                step: if b == b'[' {
                    "[0]".into()
                } else {
                    String::new()
                },
            }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(open) = stack.last_mut() {
                    if open.object {
                        open.expecting_key = true;
                    } else {
                        open.index += 1;
                        open.step = format!("[{}]", open.index);
                    }
                }
            }
            b':' => {
                if let Some(open) = stack.last_mut() {
                    open.expecting_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                i = string_end(json, start);
                let outer: String = stack
                    .iter()
                    .take(stack.len().saturating_sub(1))
                    .map(|o| o.step.as_str())
                    .collect();
                if let Some(open) = stack.last_mut().filter(|o| o.expecting_key) {
                    let raw = json.get(start..i.min(json.len())).unwrap_or_default();
                    let key = String::from_utf8_lossy(raw).into_owned();
                    if open.keys.contains(&key) {
                        let at = format!("{outer}.{key}");
                        let (line, column) = line_column(json, start.saturating_sub(1));
                        return Some((at.trim_start_matches('.').to_string(), line, column));
                    }
                    open.step = format!(".{key}");
                    open.keys.push(key);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the value about to start is the one at `steps`.
fn at_steps(stack: &[Frame], steps: &[Step]) -> bool {
    stack.len() == steps.len()
        && stack
            .iter()
            .zip(steps)
            .all(|(frame, step)| match (frame, step) {
                (Frame::Object { key, .. }, Step::Key(k)) => key == k,
                (Frame::Array { index }, Step::Index(i)) => index == i,
                _ => false,
            })
}

fn line_column(json: &[u8], offset: usize) -> (usize, usize) {
    let before = json.get(..offset).unwrap_or_default();
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |n| n + 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn names_the_first_repeated_key() {
        let doc = br#"{"a": [{"k": 1}, {"k": 2, "j": {"x": 1}, "k": 3}], "b": 1, "b": 2}"#;
        assert_eq!(repeated_key(doc), Some(("a[1].k".into(), 1, 42)));
        let doc = b"{\"a\": {\"b\": 1},\n \"a\": 2}";
        assert_eq!(repeated_key(doc), Some(("a".into(), 2, 2)));
        assert_eq!(
            repeated_key(br#"{"a": {"a": {"a": [{"a": 1}, {"a": 2}]}}}"#),
            None
        );
    }

    #[test]
    fn locates_the_value_at_a_path() {
        let key = |k: &str| Step::Key(k.into());
        let doc = "{\n \"policy\": {\"x\": [1, {\"y\": \"}\"}]},\n \"audit\": {\"sinks\": [{\"port\": 1}, {\"port\": \"x\"}]}\n}";
        let port = [key("audit"), key("sinks"), Step::Index(1), key("port")];
        assert_eq!(locate(doc.as_bytes(), &port), Some((3, 44)));
        assert_eq!(locate(doc.as_bytes(), &[]), Some((1, 1)));
        assert_eq!(locate(doc.as_bytes(), &[key("audit")]), Some((3, 11)));
        let y = [key("policy"), key("x"), Step::Index(1), key("y")];
        assert_eq!(locate(doc.as_bytes(), &y), Some((2, 28)));
        assert_eq!(locate(doc.as_bytes(), &[key("nowhere")]), None);
        assert_eq!(locate(b"[]", &[Step::Index(0)]), None);
    }

    #[test]
    fn any_position_in_any_bytes_is_safe() {
        let doc = br#"{"a": [1, "\"", {"b\\": [true]}], "c": "#;
        for end in 0..=doc.len() {
            let part = doc.get(..end).unwrap();
            let _ = locate(part, &[Step::Key("a".into()), Step::Index(2)]);
            let _ = repeated_key(part);
        }
        assert_eq!(locate(b"", &[]), None);
    }
}
