//! Identifiers with their AWS formats checked once, at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DeployError;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $name::parse(&s).map_err(|e| match e {
                    DeployError::InvalidInput { message } => message,
                    other => other.to_string(),
                })
            }
        }
    };
}

id!(
    /// A Lambda function name: 1-64 of `[A-Za-z0-9_-]`.
    FunctionName
);
id!(
    /// A published version number (`$LATEST` is not one: aliases that serve traffic never point there).
    Version
);
id!(
    /// An alias name: 1-128 of `[A-Za-z0-9_-]`, not all digits.
    AliasName
);
id!(
    /// An image manifest digest, `sha256:` and 64 lowercase hex digits.
    ImageDigest
);
id!(
    /// An ECR repository name (lowercase, may contain `/`).
    RepositoryName
);

fn invalid(what: &str, value: &str, rule: &str) -> DeployError {
    DeployError::InvalidInput { message: format!("{what} {value:?} is not valid: {rule}") }
}

impl FunctionName {
    pub fn parse(s: &str) -> Result<Self, DeployError> {
        let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(invalid("function name", s, "use 1-64 letters, digits, '-' or '_'"))
        }
    }
}

impl Version {
    pub fn parse(s: &str) -> Result<Self, DeployError> {
        let ok = !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) && s != "0";
        if ok {
            Ok(Self(s.to_string()))
        } else if s == "$LATEST" {
            Err(invalid("version", s, "$LATEST is never served by an alias; name a published version number"))
        } else {
            Err(invalid("version", s, "a published version is a number such as \"3\""))
        }
    }

    pub fn number(&self) -> u64 {
        // Proven invariant: parse() accepted only 1-10 ASCII digits.
        self.0.parse().unwrap_or(0)
    }
}

impl AliasName {
    pub fn parse(s: &str) -> Result<Self, DeployError> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !s.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(invalid("alias", s, "use 1-128 letters, digits, '-' or '_', not only digits"))
        }
    }
}

impl ImageDigest {
    pub fn parse(s: &str) -> Result<Self, DeployError> {
        match s.strip_prefix("sha256:") {
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => {
                Ok(Self(s.to_string()))
            }
            _ => Err(invalid("image digest", s, "expected sha256: followed by 64 lowercase hex digits")),
        }
    }

    /// The hex part, which is what Lambda reports as an image function's CodeSha256.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl RepositoryName {
    pub fn parse(s: &str) -> Result<Self, DeployError> {
        let ok = (2..=256).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(invalid("repository name", s, "ECR names are 2-256 of lowercase letters, digits, '.', '_', '-', '/'"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_accept_aws_formats_and_reject_the_rest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let cases: Vec<(&str, bool)> = vec![
            ("ml-inference", FunctionName::parse("ml-inference").is_ok()),
            ("function with space", FunctionName::parse("bad name").is_err()),
            ("65-char function", FunctionName::parse(&"f".repeat(65)).is_err()),
            ("version 3", Version::parse("3").is_ok()),
            ("$LATEST", Version::parse("$LATEST").is_err()),
            ("version 0", Version::parse("0").is_err()),
            ("alias live", AliasName::parse("live").is_ok()),
            ("numeric alias", AliasName::parse("123").is_err()),
            ("digest", ImageDigest::parse(&digest).is_ok()),
            ("short digest", ImageDigest::parse("sha256:abc").is_err()),
            ("uppercase digest", ImageDigest::parse(&format!("sha256:{}", "A".repeat(64))).is_err()),
            ("repo with path", RepositoryName::parse("team/ml-inference").is_ok()),
            ("uppercase repo", RepositoryName::parse("Team").is_err()),
        ];
        for (what, ok) in cases {
            assert!(ok, "{what}");
        }
        assert_eq!(ImageDigest::parse(&digest).unwrap().hex(), "a".repeat(64));
        let err = Version::parse("$LATEST").unwrap_err().to_string();
        assert!(err.contains("never served by an alias"), "{err}");
    }
}
