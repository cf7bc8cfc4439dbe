//! `--log-format auto | json | pretty` and `[log] format`: what each means for a destination, and
//! whether colour is used (only on a terminal, never when `NO_COLOR` is set).

use serde::{Deserialize, Serialize};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `pretty` when the destination is a terminal, `json` otherwise (the default).
    #[default]
    Auto,
    /// One JSON object per line (the stable interface for log shippers).
    Json,
    /// Short human lines: time, level, event and its fields (colour on a terminal).
    Pretty,
}

/// The names accepted, for error messages.
pub const FORMAT_NAMES: &str = "auto, json, pretty";

impl LogFormat {
    /// The format actually used for a destination that is (or is not) a terminal: never `Auto`.
    pub fn resolve(self, is_terminal: bool) -> LogFormat {
        match self {
            LogFormat::Auto if is_terminal => LogFormat::Pretty,
            LogFormat::Auto => LogFormat::Json,
            other => other,
        }
    }

    /// The lowercase name (`auto`, `json`, `pretty`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Auto => "auto",
            LogFormat::Json => "json",
            LogFormat::Pretty => "pretty",
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(LogFormat::Auto),
            "json" => Ok(LogFormat::Json),
            "pretty" => Ok(LogFormat::Pretty),
            _ => Err(format!("{s:?} is not a log format ({FORMAT_NAMES})")),
        }
    }
}

/// `[log]`: how the service writes its log (to stderr).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `auto` (default), `json` or `pretty`; kept as text so a bad value is reported by
    /// [`LogSection::validate`] with the key's name.
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Auto.as_str().into(),
        }
    }
}

impl LogSection {
    /// The format, or why `format` is not one.
    pub fn validate(&self) -> Result<LogFormat, String> {
        self.format.parse()
    }

    /// The format (`auto` when the text is not a format; [`LogSection::validate`] reports that).
    pub fn format(&self) -> LogFormat {
        self.validate().unwrap_or_default()
    }
}

/// Whether colour is wanted: only on a terminal, and never when `NO_COLOR` is set to anything
/// non-empty (<https://no-color.org>). `no_color` is the value of `NO_COLOR`.
pub fn use_color(is_terminal: bool, no_color: Option<&str>) -> bool {
    is_terminal && no_color.is_none_or(str::is_empty)
}

/// [`use_color`] for stderr with this process's environment.
pub fn stderr_color() -> bool {
    use std::io::IsTerminal;
    use_color(
        std::io::stderr().is_terminal(),
        std::env::var("NO_COLOR").ok().as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_pretty_only_on_a_terminal() {
        assert_eq!(LogFormat::Auto.resolve(true), LogFormat::Pretty);
        assert_eq!(LogFormat::Auto.resolve(false), LogFormat::Json);
        assert_eq!(LogFormat::Json.resolve(true), LogFormat::Json);
        assert_eq!(LogFormat::Pretty.resolve(false), LogFormat::Pretty);
    }

    #[test]
    fn names_parse_and_bad_ones_are_explained() {
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!(" pretty ".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        let e = "xml".parse::<LogFormat>().unwrap_err();
        assert!(e.contains("\"xml\"") && e.contains(FORMAT_NAMES), "{e}");
        let bad = LogSection {
            format: "text".into(),
        };
        assert!(bad.validate().is_err());
        assert_eq!(LogSection::default().validate(), Ok(LogFormat::Auto));
    }

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(use_color(true, None));
        assert!(
            use_color(true, Some("")),
            "an empty NO_COLOR does not count"
        );
        assert!(!use_color(true, Some("1")));
        assert!(!use_color(false, None));
    }
}
