//! JSON objects built field by field with one out-of-line call per field, for the OCSF and ECS
//! mappings: they build dozens of fields per record, and `json!` or `Map::insert` inline a key
//! allocation and a map insertion at each (~47 KB of module between the two before).

use serde_json::{Map, Value};

/// A JSON object under construction.
#[derive(Debug, Default)]
pub struct Obj(Map<String, Value>);

impl Obj {
    pub fn new() -> Obj {
        Obj(Map::new())
    }

    /// `v` under `key`.
    #[inline(never)]
    pub fn put(&mut self, key: &str, v: Value) -> &mut Obj {
        self.0.insert(key.to_owned(), v);
        self
    }

    /// The string `v` under `key`.
    #[inline(never)]
    pub fn str(&mut self, key: &str, v: &str) -> &mut Obj {
        self.put(key, Value::String(v.to_owned()))
    }

    /// The number `v` under `key`.
    #[inline(never)]
    pub fn num(&mut self, key: &str, v: u64) -> &mut Obj {
        self.put(key, Value::from(v))
    }

    /// `v` under `key`, when there is one.
    pub fn opt(&mut self, key: &str, v: Option<Value>) -> &mut Obj {
        if let Some(v) = v {
            self.put(key, v);
        }
        self
    }

    /// `obj` under `key`, unless it has no field.
    #[inline(never)]
    pub fn nonempty(&mut self, key: &str, obj: Obj) -> &mut Obj {
        if !obj.0.is_empty() {
            self.put(key, obj.done());
        }
        self
    }

    pub fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// `{key: v}`.
#[inline(never)]
pub fn one(key: &str, v: Value) -> Value {
    let mut o = Obj::new();
    o.put(key, v);
    o.done()
}

/// An array of strings.
#[inline(never)]
pub fn strs(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|&s| Value::from(s)).collect())
}
