//! The positioned-TOML reader: tables and values of the parsed document with their spans and
//! dotted paths, so that every error names `file:line:column`, the field, and shows the line.

use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeArray, DeString, DeTable, DeValue};

use super::{Result, ScenarioError};

const DURATION_FORMS: &str = "a duration such as \"500ms\", \"30s\", \"2m\" or \"1h\"";
const RATE_FORMS: &str = "a rate such as \"1/s\", \"0.5/s\", \"500/s\", \"60/min\" or \"3600/h\"";

/// Whether a duration may be zero (`warmup`, `drain`) or must be positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Zero {
    Allowed,
    Forbidden,
}

/// The scenario text and its path, for turning spans into positioned errors.
pub(super) struct Source<'a> {
    pub(super) text: &'a str,
    pub(super) path: &'a str,
}

impl Source<'_> {
    pub(super) fn error(
        &self,
        span: &Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> ScenarioError {
        let start = span.start.min(self.text.len());
        let before = self.text.get(..start).unwrap_or_default();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let source_line = self.text[line_start..]
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        ScenarioError::Invalid {
            path: self.path.to_string(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            field: field.to_string(),
            message: message.into(),
            source_line,
        }
    }

    pub(super) fn syntax_error(&self, error: &toml::de::Error) -> ScenarioError {
        let span = error.span().unwrap_or(0..0);
        self.error(&span, "", format!("invalid TOML: {}", error.message()))
    }
}

/// One table of the scenario, with the dotted path that names it in errors.
pub(super) struct Section<'a> {
    pub(super) src: &'a Source<'a>,
    pub(super) table: &'a DeTable<'a>,
    /// Where a missing field is reported: the table's header, or the file start for the root.
    pub(super) span: Range<usize>,
    pub(super) path: String,
}

impl<'a> Section<'a> {
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<Item<'a>> {
        let (key, value) = self.table.get_key_value(key)?;
        Some(self.item(key, value))
    }

    fn item(&self, key: &'a Spanned<DeString<'a>>, value: &'a Spanned<DeValue<'a>>) -> Item<'a> {
        Item {
            src: self.src,
            key: key.get_ref(),
            field: self.field(key.get_ref()),
            key_span: key.span(),
            value,
        }
    }

    /// Entries in file order (the parsed table is sorted by key).
    pub(super) fn items(&self) -> Vec<Item<'a>> {
        let mut entries: Vec<_> = self.table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
            .into_iter()
            .map(|(key, value)| self.item(key, value))
            .collect()
    }

    pub(super) fn required(&self, key: &str, hint: &str) -> Result<Item<'a>> {
        self.get(key).ok_or_else(|| self.missing(key, hint))
    }

    pub(super) fn missing(&self, key: &str, hint: &str) -> ScenarioError {
        self.src.error(
            &self.span,
            &self.field(key),
            format!("missing required field `{key}`: {hint}"),
        )
    }

    pub(super) fn reject_unknown(&self, valid: &[&str]) -> Result<()> {
        match self
            .items()
            .into_iter()
            .find(|item| !valid.contains(&item.key))
        {
            Some(item) => Err(item.key_error(format!(
                "unknown field `{}`; valid fields here are {}",
                item.key,
                valid.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// One value of the scenario with its key, position and dotted path.
pub(super) struct Item<'a> {
    src: &'a Source<'a>,
    pub(super) key: &'a str,
    field: String,
    key_span: Range<usize>,
    pub(super) value: &'a Spanned<DeValue<'a>>,
}

impl<'a> Item<'a> {
    pub(super) fn error(&self, message: impl Into<String>) -> ScenarioError {
        self.src.error(&self.value.span(), &self.field, message)
    }

    pub(super) fn key_error(&self, message: impl Into<String>) -> ScenarioError {
        self.src.error(&self.key_span, &self.field, message)
    }

    /// The `index`th element of this array, named `field[index]`.
    pub(super) fn element(&self, index: usize, value: &'a Spanned<DeValue<'a>>) -> Item<'a> {
        Item {
            src: self.src,
            key: self.key,
            field: format!("{}[{index}]", self.field),
            key_span: value.span(),
            value,
        }
    }

    pub(super) fn table(&self) -> Result<Section<'a>> {
        match self.value.get_ref() {
            DeValue::Table(table) => Ok(Section {
                src: self.src,
                table,
                span: self.value.span(),
                path: self.field.clone(),
            }),
            other => Err(self.error(format!("expected a table, found {}", shown(other)))),
        }
    }

    pub(super) fn array(&self, expected: &str) -> Result<&'a DeArray<'a>> {
        match self.value.get_ref() {
            DeValue::Array(array) => Ok(array),
            other => Err(self.error(format!("expected {expected}, found {}", shown(other)))),
        }
    }

    pub(super) fn string(&self, expected: &str) -> Result<&'a str> {
        match self.value.get_ref() {
            DeValue::String(text) => Ok(text),
            other => Err(self.error(format!(
                "expected {expected} (a quoted string), found {}",
                shown(other)
            ))),
        }
    }

    pub(super) fn whole(&self, noun: &str, range: RangeInclusive<u64>) -> Result<u64> {
        let value = match self.value.get_ref() {
            DeValue::Integer(int) => i64::from_str_radix(int.as_str(), int.radix()).ok(),
            _ => None,
        };
        match value.and_then(|v| u64::try_from(v).ok()) {
            Some(v) if range.contains(&v) => Ok(v),
            _ => Err(self.error(format!(
                "{} is not a valid {noun}: expected a whole number from {} to {}",
                shown(self.value.get_ref()),
                range.start(),
                range.end()
            ))),
        }
    }

    pub(super) fn choice<T: Clone>(&self, noun: &str, options: &[(&str, T)]) -> Result<T> {
        let text = self.value.get_ref().as_str();
        match options.iter().find(|(name, _)| Some(*name) == text) {
            Some((_, value)) => Ok(value.clone()),
            None => {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
                Err(self.error(format!(
                    "{} is not a valid {noun}: expected one of {}",
                    shown(self.value.get_ref()),
                    names.join(", ")
                )))
            }
        }
    }

    pub(super) fn duration(&self, zero: Zero) -> Result<Duration> {
        let text = self.string(DURATION_FORMS)?;
        let duration = humantime::parse_duration(text).map_err(|_| {
            self.error(format!(
                "{text:?} is not a valid duration: expected {DURATION_FORMS}"
            ))
        })?;
        if zero == Zero::Forbidden && duration.is_zero() {
            return Err(self.error(format!("{text:?} is too short: expected more than zero")));
        }
        Ok(duration)
    }

    /// A rate in events per second, `> 0` and `<= max`.
    pub(super) fn rate(&self, max: f64) -> Result<f64> {
        let text = self.string(RATE_FORMS)?;
        let per_s = parse_rate(text).ok_or_else(|| {
            self.error(format!(
                "{text:?} is not a valid rate: expected a positive number per unit, {RATE_FORMS}"
            ))
        })?;
        if per_s > max {
            return Err(self.error(format!("{text:?} is too fast: expected at most {max}/s")));
        }
        Ok(per_s)
    }
}

/// `"<number>/<unit>"` in events per second; `None` unless positive and finite.
fn parse_rate(text: &str) -> Option<f64> {
    let (count, unit) = text.split_once('/')?;
    let seconds = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        _ => return None,
    };
    let count: f64 = count.trim().parse().ok()?;
    let per_s = count / seconds;
    (per_s.is_finite() && per_s > 0.0).then_some(per_s)
}

/// A value as it appears in an error message.
pub(super) fn shown(value: &DeValue) -> String {
    match value {
        DeValue::String(text) => format!("{text:?}"),
        DeValue::Integer(int) => int.to_string(),
        DeValue::Float(float) => float.to_string(),
        DeValue::Boolean(flag) => flag.to_string(),
        DeValue::Datetime(datetime) => datetime.to_string(),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

pub(super) fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("`{field}`: ")
    }
}

/// The offending line with a caret under `column`; tabs are kept so the caret lines up.
pub(super) fn snippet(line: usize, column: usize, source_line: &str) -> String {
    let number = line.to_string();
    let gutter = " ".repeat(number.len());
    let pad: String = source_line
        .chars()
        .take(column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("  {number} | {source_line}\n  {gutter} | {pad}^")
}
