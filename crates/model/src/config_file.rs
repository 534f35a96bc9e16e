//! Reading TOML configuration files so that every error names the dotted key it is about.
//!
//! `toml::from_str` reports a type error or an unknown key with a span and a message such as
//! "invalid type: string, expected u64", which does not say which of several tables' keys is
//! wrong; tracking the path while deserializing does.

use serde::de::DeserializeOwned;

/// A TOML file that does not deserialize: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", self.location(), self.message)]
pub struct TomlError {
    /// The dotted key the error is about (`roles.crl.max_body_bytes`; for an unknown key, that
    /// key), or None when it is about the whole file (a syntax error, a missing top-level key).
    pub key: Option<String>,
    /// The 1-based line of the offending text, when toml reports one.
    pub line: Option<usize>,
    /// What is wrong, in toml's or serde's words.
    pub message: String,
}

impl TomlError {
    /// The key, else the line, else `config`: what a `key: rule` error names.
    pub fn key_or_line(&self) -> String {
        match (&self.key, self.line) {
            (Some(k), _) => k.clone(),
            (None, Some(l)) => format!("line {l}"),
            (None, None) => "config".into(),
        }
    }

    /// The message, followed by the line when the key already names the place.
    pub fn rule(&self) -> String {
        match (&self.key, self.line) {
            (Some(_), Some(l)) => format!("{} (line {l})", self.message),
            _ => self.message.clone(),
        }
    }

    fn location(&self) -> String {
        match (&self.key, self.line) {
            (Some(k), Some(l)) => format!("{k} (line {l})"),
            _ => self.key_or_line(),
        }
    }
}

/// Deserializes `text`, naming the dotted key and the line of any error.
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    let line = |e: &toml::de::Error| {
        e.span()
            .and_then(|s| text.get(..s.start))
            .map(|before| before.matches('\n').count() + 1)
    };
    let de = toml::Deserializer::parse(text).map_err(|e| TomlError {
        key: None,
        line: line(&e),
        message: e.message().to_string(),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        // An empty path (the document itself) displays as ".".
        let key = (e.path().iter().next().is_some()).then(|| e.path().to_string());
        let inner = e.inner();
        TomlError {
            key,
            line: line(inner),
            message: inner.message().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields are read only by the deserializer here
    struct Doc {
        name: String,
        #[serde(default)]
        roles: BTreeMap<String, Role>,
        #[serde(default)]
        list: Vec<Role>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Role {
        #[serde(default)]
        max: u64,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }

    fn fails(text: &str) -> TomlError {
        match from_toml::<Doc>(text) {
            Ok(d) => panic!("{text}: parsed as {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn errors_name_the_dotted_key_and_line() {
        let cases = [
            (
                "name = \"x\"\n[roles.crl]\nmax = \"big\"\n",
                Some("roles.crl.max"),
                Some(3),
                "invalid type",
            ),
            (
                "name = \"x\"\n[roles.crl]\nmaxx = 1\n",
                Some("roles.crl.maxx"),
                Some(3),
                "unknown field `maxx`",
            ),
            (
                "name = \"x\"\n[roles.crl.inner]\nflag = 1\n",
                Some("roles.crl.inner.flag"),
                Some(3),
                "invalid type",
            ),
            (
                "name = \"x\"\n\n[[list]]\nmax = 1\n[[list]]\nmax = -1\n",
                Some("list[1].max"),
                Some(6),
                "invalid value",
            ),
            ("name = 5\n", Some("name"), Some(1), "invalid type"),
            ("[roles.crl]\n", None, Some(1), "missing field `name`"),
            (
                "name = \"x\"\n[roles.crl.inner]\n",
                Some("roles.crl.inner"),
                Some(2),
                "missing field `flag`",
            ),
            ("name = \"x\"\n[roles\n", None, Some(2), ""),
        ];
        for (text, key, line, message) in cases {
            let e = fails(text);
            assert_eq!(e.key.as_deref(), key, "{text}: {e}");
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(message), "{text}: {e}");
        }
        let e = fails("name = \"x\"\n[roles.crl]\nmax = \"big\"\n");
        assert_eq!(e.key_or_line(), "roles.crl.max");
        assert!(e.rule().ends_with("(line 3)"), "{}", e.rule());
        assert!(
            e.to_string()
                .starts_with("roles.crl.max (line 3): invalid type"),
            "{e}"
        );
        let e = fails("name = \"x\"\n[roles\n");
        assert_eq!(e.key_or_line(), "line 2");
    }
}
