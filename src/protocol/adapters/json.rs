//! Path-aware access to a provider message parsed as a JSON value, so every error names
//! the field it is about (`channel.alternatives[0].words[2].end`).

use serde_json::Value;

/// A JSON value and the path that led to it.
#[derive(Debug, Clone)]
pub(super) struct At<'a> {
    v: &'a Value,
    path: String,
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl<'a> At<'a> {
    pub(super) fn root(v: &'a Value) -> At<'a> {
        At {
            v,
            path: String::new(),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn value(&self) -> &'a Value {
        self.v
    }

    /// The path, such as `channel.alternatives[0]`.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// The path in backticks, for messages.
    pub(super) fn name(&self) -> String {
        format!("`{}`", self.path)
    }

    fn wrong(&self, expected: &str) -> String {
        format!(
            "{} must be {expected}, found {}",
            self.name(),
            describe(self.v)
        )
    }

    /// Does the object have this field (not null)?
    pub(super) fn has(&self, key: &str) -> bool {
        self.v.get(key).is_some_and(|v| !v.is_null())
    }

    /// An optional field: `None` when absent or null.
    pub(super) fn get(&self, key: &str) -> Option<At<'a>> {
        match self.v.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(At {
                v,
                path: self.child_path(key),
            }),
        }
    }

    /// Checks that the value is an object.
    pub(super) fn object(&self) -> Result<(), String> {
        if self.v.is_object() {
            Ok(())
        } else if self.path.is_empty() {
            Err(format!(
                "the message must be a JSON object, found {}",
                describe(self.v)
            ))
        } else {
            Err(self.wrong("an object"))
        }
    }

    /// A required field.
    pub(super) fn req(&self, key: &str) -> Result<At<'a>, String> {
        self.object()?;
        self.get(key)
            .ok_or_else(|| format!("missing field `{}`", self.child_path(key)))
    }

    pub(super) fn str(&self) -> Result<&'a str, String> {
        self.v.as_str().ok_or_else(|| self.wrong("a string"))
    }

    pub(super) fn bool(&self) -> Result<bool, String> {
        self.v.as_bool().ok_or_else(|| self.wrong("a boolean"))
    }

    /// A finite number that is not negative.
    pub(super) fn non_negative(&self) -> Result<f64, String> {
        match self.v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
            Some(_) => Err(format!("{} must not be negative", self.name())),
            None => Err(self.wrong("a number")),
        }
    }

    pub(super) fn u64(&self) -> Result<u64, String> {
        self.v
            .as_u64()
            .ok_or_else(|| self.wrong("a whole number, not negative"))
    }

    pub(super) fn array(&self) -> Result<Vec<At<'a>>, String> {
        let items = self.v.as_array().ok_or_else(|| self.wrong("a list"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| At {
                v,
                path: format!("{}[{i}]", self.path),
            })
            .collect())
    }

    /// The first element of a list, if any.
    pub(super) fn first(&self) -> Result<Option<At<'a>>, String> {
        let items = self.v.as_array().ok_or_else(|| self.wrong("a list"))?;
        Ok(items.first().map(|v| At {
            v,
            path: format!("{}[0]", self.path),
        }))
    }

    /// A channel or speaker label: a whole number or a string, as the provider writes it.
    pub(super) fn label(&self) -> Result<String, String> {
        match self.v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            _ => Err(self.wrong("a whole number or a string")),
        }
    }
}
