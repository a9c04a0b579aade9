//! Text templates with placeholders (`{channel}`, `{client}`, `{size}`, `{payload}`) and
//! environment variables (`${API_TOKEN}`, resolved once when the scenario is read, so that
//! secrets stay out of scenario files).
//!
//! Only `{` + a lowercase name + `}` is a placeholder; any other brace is text, so a JSON
//! subscribe frame such as `{"sub":"{channel}"}` needs no escaping.

use serde::{Deserialize, Serialize};

/// What a placeholder stands for when the template is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Placeholder {
    /// The channel number, e.g. `0`.
    Channel,
    /// The client number within the run.
    Client,
    /// The placed payload's length in bytes (NATS's `PUB subject size`).
    Size,
    /// The payload, placed as the publish section says (raw, base64, JSON-escaped).
    Payload,
}

impl Placeholder {
    const ALL: [Placeholder; 4] = [
        Placeholder::Channel,
        Placeholder::Client,
        Placeholder::Size,
        Placeholder::Payload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Channel => "channel",
            Placeholder::Client => "client",
            Placeholder::Size => "size",
            Placeholder::Payload => "payload",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Piece {
    Text(String),
    Slot(Placeholder),
}

/// A parsed template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template(Vec<Piece>);

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{name}}}: valid here are {valid}")]
    Unknown { name: String, valid: String },
    #[error("environment variable {name} is not set (the template reads it as ${{{name}}})")]
    UnsetVariable { name: String },
    #[error("`${{` starts no variable: write ${{NAME}} with letters, digits and '_'")]
    BadVariable,
}

/// The values a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub channel: &'a str,
    pub client: usize,
    /// The placed payload (empty where a template has none).
    pub payload: &'a [u8],
}

impl Template {
    /// A template without placeholders.
    pub fn literal(text: &str) -> Template {
        Template(vec![Piece::Text(text.to_string())])
    }

    /// Parses `text`, allowing only the placeholders `allowed`; `env` resolves `${NAME}`.
    pub fn parse(
        text: &str,
        allowed: &[Placeholder],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(start) = rest.find(['$', '{']) {
            literal.push_str(&rest[..start]);
            let tail = &rest[start..];
            if let Some(after) = tail.strip_prefix("${") {
                let (name, len) =
                    name_before_brace(after, |c| c.is_ascii_alphanumeric() || c == '_')
                        .ok_or(TemplateError::BadVariable)?;
                let value = env(name).ok_or_else(|| TemplateError::UnsetVariable {
                    name: name.to_string(),
                })?;
                literal.push_str(&value);
                rest = &after[len..];
            } else if let Some((name, len)) = tail
                .strip_prefix('{')
                .and_then(|after| name_before_brace(after, |c| c.is_ascii_lowercase() || c == '_'))
            {
                let slot = allowed
                    .iter()
                    .copied()
                    .find(|p| p.name() == name)
                    .ok_or_else(|| TemplateError::Unknown {
                        name: name.to_string(),
                        valid: listed(allowed),
                    })?;
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Slot(slot));
                rest = &tail[1 + len..];
            } else {
                literal.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template(pieces))
    }

    /// The template with its placeholders filled in.
    pub fn render(&self, vars: &Vars) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Slot(Placeholder::Channel) => out.extend_from_slice(vars.channel.as_bytes()),
                Piece::Slot(Placeholder::Client) => {
                    out.extend_from_slice(vars.client.to_string().as_bytes())
                }
                Piece::Slot(Placeholder::Size) => {
                    out.extend_from_slice(vars.payload.len().to_string().as_bytes())
                }
                Piece::Slot(Placeholder::Payload) => out.extend_from_slice(vars.payload),
            }
        }
        out
    }

    /// The rendering as text (templates of URLs and headers hold no payload).
    pub fn render_text(&self, vars: &Vars) -> String {
        String::from_utf8_lossy(&self.render(vars)).into_owned()
    }

    /// Whether the template uses `placeholder`.
    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.0.contains(&Piece::Slot(placeholder))
    }
}

impl std::fmt::Display for Template {
    /// The template as written, placeholders included (`${…}` already resolved).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => f.write_str(text)?,
                Piece::Slot(p) => write!(f, "{{{}}}", p.name())?,
            }
        }
        Ok(())
    }
}

/// The name at the start of `text` up to a closing brace, and the length with the brace.
fn name_before_brace(text: &str, valid: impl Fn(char) -> bool) -> Option<(&str, usize)> {
    let end = text.find('}')?;
    let name = &text[..end];
    (!name.is_empty() && name.chars().all(valid)).then_some((name, end + 1))
}

/// `{channel}, {client}` for an error message.
fn listed(allowed: &[Placeholder]) -> String {
    if allowed.is_empty() {
        return "none".to_string();
    }
    Placeholder::ALL
        .iter()
        .filter(|p| allowed.contains(p))
        .map(|p| format!("{{{}}}", p.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Placeholder] = &Placeholder::ALL;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    fn render(text: &str) -> String {
        let t = Template::parse(text, ALL, &env).unwrap();
        let vars = Vars {
            channel: "7",
            client: 42,
            payload: b"abc",
        };
        String::from_utf8(t.render(&vars)).unwrap()
    }

    #[test]
    fn fills_placeholders_and_keeps_other_braces_as_text() {
        assert_eq!(render("/sub/{channel}/{client}"), "/sub/7/42");
        assert_eq!(
            render("PUB bench.{channel} {size}\r\n{payload}\r\n"),
            "PUB bench.7 3\r\nabc\r\n"
        );
        assert_eq!(
            render("CONNECT {\"verbose\":false}\r\n{\"ch\":\"{channel}\"}"),
            "CONNECT {\"verbose\":false}\r\n{\"ch\":\"7\"}"
        );
        assert_eq!(render("Bearer ${TOKEN} $5 {"), "Bearer s3cret $5 {");
    }

    #[test]
    fn refuses_unknown_placeholders_and_unset_variables() {
        let unknown = Template::parse("/x/{chanel}", &[Placeholder::Channel], &env);
        assert_eq!(
            unknown.unwrap_err().to_string(),
            "unknown placeholder {chanel}: valid here are {channel}"
        );
        let not_here = Template::parse("{payload}", &[Placeholder::Channel], &env);
        assert!(matches!(not_here, Err(TemplateError::Unknown { .. })));
        let unset = Template::parse("Bearer ${NOPE}", ALL, &env).unwrap_err();
        assert_eq!(
            unset,
            TemplateError::UnsetVariable {
                name: "NOPE".into()
            }
        );
        assert!(unset.to_string().contains("NOPE is not set"));
        assert_eq!(
            Template::parse("${ bad}", ALL, &env),
            Err(TemplateError::BadVariable)
        );
    }
}
