//! The path (`audit.timeout_ms`, `policy.rules[2].id`) of the value at a line and column of
//! a JSON document, for configuration errors: serde reports a value of the wrong type by its
//! position only. One linear pass over the bytes up to that position; no allocation beyond
//! the keys on the way.

enum Frame {
    Object { key: String, expecting_key: bool },
    Array { index: usize },
}

/// The byte offset of a 1-based line and column as serde_json counts them.
fn offset(json: &[u8], line: usize, column: usize) -> usize {
    let mut at = 0;
    for _ in 1..line {
        match json
            .get(at..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            Some(n) => at += n + 1,
            None => return json.len(),
        }
    }
    (at + column).min(json.len())
}

/// The path of the innermost value being read at `line`:`column`; empty at the top level.
pub fn at(json: &[u8], line: usize, column: usize) -> String {
    let end = offset(json, line, column);
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        let Some(&b) = json.get(i) else { break };
        match b {
            b'{' => stack.push(Frame::Object {
                key: String::new(),
                expecting_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
            }
            b'"' => {
                let start = i + 1;
                i = start;
                while let Some(&c) = json.get(i) {
                    match c {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                if let Some(Frame::Object {
                    key,
                    expecting_key: true,
                }) = stack.last_mut()
                {
                    let raw = json.get(start..i.min(json.len())).unwrap_or_default();
                    *key = String::from_utf8_lossy(raw).chars().take(64).collect();
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key, .. } if !key.is_empty() => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn path_of_error(doc: &str) -> String {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Audit {
            timeout_ms: Option<u64>,
            sinks: Option<Vec<Sink>>,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Sink {
            port: u16,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            policy: serde_json::Value,
            audit: Option<Audit>,
        }
        let e = serde_json::from_str::<Doc>(doc).err().unwrap();
        at(doc.as_bytes(), e.line(), e.column())
    }

    #[test]
    fn names_the_value_of_the_wrong_type() {
        let one_line = r#"{"policy": {"id":"p","rules":[{"a":1}]}, "audit": {"timeout_ms": "5"}}"#;
        assert_eq!(path_of_error(one_line), "audit.timeout_ms");
        let nested = "{\n \"policy\": {\"x\": [1, {\"y\": \"}\"}]},\n \"audit\": {\"sinks\": [{\"port\": 1}, {\"port\": \"x\"}]}\n}";
        assert_eq!(path_of_error(nested), "audit.sinks[1].port");
    }

    #[test]
    fn any_position_in_any_bytes_is_safe() {
        let doc = br#"{"a": [1, "\"", {"b\\": [true]}], "c": "#;
        for line in 0..3 {
            for column in 0..doc.len() + 3 {
                let _ = at(doc, line, column);
            }
        }
        assert_eq!(at(b"", 1, 1), "");
    }
}
