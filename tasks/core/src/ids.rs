//! Domain identifiers, parsed once at the edge and never re-validated.
//!
//! Every newtype rejects bad input with an [`IdError`] that names the kind of value, shows (a
//! bounded prefix of) what was given, and says what a valid value looks like. The allow-patterns
//! of values that reach a host through SSM (`ServiceName`, `CleanupPath`, `HealthCheckPath`) are
//! the [`patterns`] constants, which the SSM documents' `allowedPattern` must equal.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Allow-patterns shared with the SSM documents (`ssm/*.yml` `allowedPattern`). One source: the
/// documents carry these exact strings (`tests/tests/ssm_patterns.rs` checks them).
pub mod patterns {
    /// A systemd unit or SysV service name: starts with an alphanumeric, then alphanumerics and
    /// `_ . @ -`, at most 128 characters. No whitespace, quotes, `$`, `;`, `/` or backslash.
    pub const SERVICE_NAME: &str = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$";
    /// An absolute path for cleanup (e.g. a temp or log directory): `/`-separated segments of
    /// alphanumerics and `_ . -`, at most 256 characters. `..` segments are rejected separately.
    pub const CLEANUP_PATH: &str = r"^(/[A-Za-z0-9_.-]+)+/?$";
    /// An HTTP health-check path: starts with `/`, then unreserved URL characters and `/ ? = &`.
    pub const HEALTH_CHECK_PATH: &str = r"^/[A-Za-z0-9_.~/?=&-]{0,255}$";
    /// The `Services` parameter of the SSM documents: 1 to 16 service names separated by a
    /// space or comma (or empty). Each element is [`SERVICE_NAME`]; a test checks the two agree.
    pub const SERVICE_NAME_LIST: &str =
        r"^([A-Za-z0-9][A-Za-z0-9_.@-]{0,127}([ ,][A-Za-z0-9][A-Za-z0-9_.@-]{0,127}){0,15})?$";
    /// The `CleanupPaths` parameter: 1 to 16 [`CLEANUP_PATH`]s separated by a space (or empty).
    pub const CLEANUP_PATH_LIST: &str = r"^((/[A-Za-z0-9_.-]+)+/?( (/[A-Za-z0-9_.-]+)+/?){0,15})?$";
    /// An EC2 instance id.
    pub const INSTANCE_ID: &str = r"^i-([0-9a-f]{8}|[0-9a-f]{17})$";
    /// An incident id: also valid as a Step Functions execution name (1–80 characters).
    pub const INCIDENT_ID: &str = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$";
    /// An ELBv2 target group ARN.
    pub const TARGET_GROUP_ARN: &str = r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:targetgroup/([A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?)/[0-9a-f]{16}$";
}

/// A value that failed to parse into one of the domain newtypes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {expected}")]
pub struct IdError {
    /// What was being parsed ("instance id", "service name", ...).
    pub kind: &'static str,
    /// The rejected input, cut to 80 characters so hostile input cannot flood logs.
    pub value: String,
    /// What a valid value looks like, with an example.
    pub expected: &'static str,
}

impl IdError {
    fn new(kind: &'static str, value: &str, expected: &'static str) -> Self {
        let value = if value.chars().count() > 80 {
            let cut: String = value.chars().take(80).collect();
            format!("{cut}…")
        } else {
            value.to_owned()
        };
        Self {
            kind,
            value,
            expected,
        }
    }
}

/// Compiles one of the [`patterns`] (for callers that check values against them).
pub fn compile_pattern(pattern: &'static str) -> Regex {
    compiled(pattern)
}

fn compiled(pattern: &'static str) -> Regex {
    // The patterns are constants covered by `patterns_compile`; this cannot fail at run time.
    Regex::new(pattern).expect("constant pattern compiles")
}

static SERVICE_NAME_RE: LazyLock<Regex> = LazyLock::new(|| compiled(patterns::SERVICE_NAME));
static CLEANUP_PATH_RE: LazyLock<Regex> = LazyLock::new(|| compiled(patterns::CLEANUP_PATH));
static HEALTH_CHECK_PATH_RE: LazyLock<Regex> =
    LazyLock::new(|| compiled(patterns::HEALTH_CHECK_PATH));
static INSTANCE_ID_RE: LazyLock<Regex> = LazyLock::new(|| compiled(patterns::INSTANCE_ID));
static INCIDENT_ID_RE: LazyLock<Regex> = LazyLock::new(|| compiled(patterns::INCIDENT_ID));
static TARGET_GROUP_ARN_RE: LazyLock<Regex> =
    LazyLock::new(|| compiled(patterns::TARGET_GROUP_ARN));

/// Defines a string newtype with `parse`, `as_str`, `Display`, `FromStr`, `AsRef<str>`, and serde
/// through `TryFrom<String>` so that deserialising validates too.
macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $validate:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates; the error names the kind of value and the fix.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), &'static str> = $validate;
                match check(&value) {
                    Ok(()) => Ok(Self(value)),
                    Err(expected) => Err(IdError::new($kind, &value, expected)),
                }
            }

            /// The validated string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "description": $kind })
            }
        }
    };
}

string_newtype!(
    /// An EC2 instance id (`i-` + 8 or 17 lowercase hex digits).
    InstanceId,
    "instance id",
    |s| if INSTANCE_ID_RE.is_match(s) {
        Ok(())
    } else {
        Err("expected `i-` followed by 8 or 17 lowercase hex digits, e.g. i-0123456789abcdef0")
    }
);

string_newtype!(
    /// An ELBv2 target group ARN.
    TargetGroupArn,
    "target group ARN",
    |s| if TARGET_GROUP_ARN_RE.is_match(s) {
        Ok(())
    } else {
        Err("expected arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/16-hex-id, e.g. arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef")
    }
);

impl TargetGroupArn {
    /// The target group's name (the segment after `targetgroup/`).
    pub fn name(&self) -> &str {
        self.0.split('/').nth(1).unwrap_or_default()
    }
}

/// Zero-width and bidirectional formatting characters: invisible, they make a name read
/// differently from what it is (a right-to-left override reverses what follows).
pub fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

string_newtype!(
    /// An Auto Scaling group name (1–255 characters, no control characters).
    AsgName,
    "Auto Scaling group name",
    |s| if !s.is_empty() && s.chars().count() <= 255 && !s.chars().any(|c| c.is_control() || is_invisible_format(c)) && s.trim() == s {
        Ok(())
    } else {
        Err("expected 1 to 255 characters with no control or invisible formatting characters (such as a right-to-left override) and no leading or trailing spaces, e.g. web-asg")
    }
);

string_newtype!(
    /// A service (systemd unit) name that may be passed to the SSM documents.
    ServiceName,
    "service name",
    |s| if SERVICE_NAME_RE.is_match(s) {
        Ok(())
    } else {
        Err("expected a unit name of letters, digits and `_ . @ -` (starting with a letter or digit, at most 128 characters), e.g. nginx.service")
    }
);

string_newtype!(
    /// An absolute path that the cleanup step of `ssm/restart_services.yml` may clear.
    CleanupPath,
    "cleanup path",
    |s| if s.len() <= 256
        && CLEANUP_PATH_RE.is_match(s)
        && !s.split('/').any(|seg| seg == ".." || seg == ".")
        && s != "/"
    {
        Ok(())
    } else {
        Err("expected an absolute path of letters, digits and `_ . -` segments without `.` or `..` segments, at most 256 characters, e.g. /var/tmp/app-cache")
    }
);

string_newtype!(
    /// An HTTP health-check path probed locally by `ssm/verify_health.yml`.
    HealthCheckPath,
    "health check path",
    |s| if HEALTH_CHECK_PATH_RE.is_match(s) {
        Ok(())
    } else {
        Err("expected a path starting with `/` of letters, digits and `_ . ~ / ? = & -`, e.g. /healthz")
    }
);

string_newtype!(
    /// An incident id; also a valid Step Functions execution name.
    IncidentId,
    "incident id",
    |s| if INCIDENT_ID_RE.is_match(s) {
        Ok(())
    } else {
        Err("expected 1 to 80 letters, digits, `_` or `-`, starting with a letter or digit, e.g. web-i-0123456789abcdef0-1732492800")
    }
);

impl IncidentId {
    /// The deterministic id of the incident for one target in one time bucket: the alarm, the
    /// schedule and a manual start for the same target and bucket produce the same id, so Step
    /// Functions' execution-name idempotency keeps them to one execution.
    pub fn for_target(tg: &TargetGroupArn, instance: &InstanceId, bucket_start_s: i64) -> Self {
        // Target group names are at most 32 characters and instance ids 19, so the id stays
        // within 80 characters and within the pattern (names are alphanumeric and `-`).
        Self(format!(
            "{}-{}-{}",
            tg.name(),
            instance,
            bucket_start_s.max(0)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        for p in [
            patterns::SERVICE_NAME,
            patterns::CLEANUP_PATH,
            patterns::HEALTH_CHECK_PATH,
            patterns::INSTANCE_ID,
            patterns::INCIDENT_ID,
            patterns::TARGET_GROUP_ARN,
        ] {
            assert!(Regex::new(p).is_ok(), "{p}");
        }
    }

    /// `^(E(SEP E){0,15})?$` for an element pattern `^E$`.
    fn list_of(element: &str, sep: &str) -> String {
        let e = element.trim_start_matches('^').trim_end_matches('$');
        format!("^({e}({sep}{e}){{0,15}})?$")
    }

    #[test]
    fn the_list_patterns_are_lists_of_the_element_patterns() {
        assert_eq!(
            patterns::SERVICE_NAME_LIST,
            list_of(patterns::SERVICE_NAME, "[ ,]")
        );
        assert_eq!(
            patterns::CLEANUP_PATH_LIST,
            list_of(patterns::CLEANUP_PATH, " ")
        );
        let services = Regex::new(patterns::SERVICE_NAME_LIST).expect("compiles");
        assert!(services.is_match("app.service nginx,getty@tty1.service"));
        assert!(!services.is_match("app.service; reboot"));
    }

    #[test]
    fn instance_ids_of_both_lengths_parse() {
        assert!(InstanceId::parse("i-0123abcd").is_ok());
        assert!(InstanceId::parse("i-0123456789abcdef0").is_ok());
    }

    #[test]
    fn malformed_instance_ids_are_rejected_with_the_fix() {
        for bad in [
            "",
            "i-",
            "i-XYZ",
            "i-0123456789ABCDEF0",
            "0123456789abcdef0",
            "i-0123abcd\n",
        ] {
            let err = InstanceId::parse(bad).expect_err(bad);
            assert_eq!(err.kind, "instance id");
            assert!(
                err.to_string().contains("e.g. i-0123456789abcdef0"),
                "{err}"
            );
        }
    }

    #[test]
    fn target_group_arn_exposes_its_name() {
        let arn = TargetGroupArn::parse(
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-a/0123456789abcdef",
        )
        .expect("valid arn");
        assert_eq!(arn.name(), "web-a");
    }

    #[test]
    fn target_group_arns_with_bad_names_or_ids_are_rejected() {
        for bad in [
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/-web/0123456789abcdef",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123",
            "arn:aws:elasticloadbalancing:eu-west-1:1234:targetgroup/web/0123456789abcdef",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/0123456789abcdef",
        ] {
            assert!(TargetGroupArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn service_names_reject_shell_metacharacters() {
        assert!(ServiceName::parse("nginx.service").is_ok());
        assert!(ServiceName::parse("getty@tty1.service").is_ok());
        for bad in [
            "nginx; rm -rf /",
            "$(reboot)",
            "`id`",
            "a b",
            "nginx\nreboot",
            "-nginx",
            "../etc",
            "nginx|cat",
            "ngïnx",
            "",
        ] {
            assert!(ServiceName::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(ServiceName::parse("a".repeat(129)).is_err());
    }

    #[test]
    fn cleanup_paths_must_be_absolute_and_free_of_dot_segments() {
        assert!(CleanupPath::parse("/var/tmp/app-cache").is_ok());
        for bad in [
            "/",
            "var/tmp",
            "/var/../etc",
            "/var/./tmp",
            "/tmp/a b",
            "/tmp/$(id)",
            "/tmp;rm",
        ] {
            assert!(CleanupPath::parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn health_check_paths_reject_quotes_and_spaces() {
        assert!(HealthCheckPath::parse("/healthz").is_ok());
        assert!(HealthCheckPath::parse("/status?full=1&x=y").is_ok());
        for bad in ["healthz", "/a b", "/a'b", "/a\"b", "/$(id)", "/a;b"] {
            assert!(
                HealthCheckPath::parse(bad).is_err(),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn incident_ids_for_a_target_are_deterministic_and_valid_execution_names() {
        let tg = TargetGroupArn::parse(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/abcdefghijklmnopqrstuvwxyz012345/0123456789abcdef",
        )
        .expect("valid");
        let i = InstanceId::parse("i-0123456789abcdef0").expect("valid");
        let a = IncidentId::for_target(&tg, &i, 1_732_492_800);
        let b = IncidentId::for_target(&tg, &i, 1_732_492_800);
        assert_eq!(a, b);
        assert!(IncidentId::parse(a.as_str()).is_ok(), "{a}");
        assert!(a.as_str().len() <= 80);
    }

    #[test]
    fn deserialising_validates() {
        let ok: Result<InstanceId, _> = serde_json::from_str("\"i-0123abcd\"");
        assert!(ok.is_ok());
        let bad: Result<InstanceId, _> = serde_json::from_str("\"i-zzz\"");
        let msg = bad.expect_err("invalid").to_string();
        assert!(msg.contains("invalid instance id"), "{msg}");
    }

    #[test]
    fn long_hostile_input_is_cut_in_errors() {
        let err = ServiceName::parse("x;".repeat(10_000)).expect_err("invalid");
        assert!(err.to_string().len() < 400);
    }
}
