//! Software version carried by every control-plane request.

use std::fmt;

/// major.minor.patch of this build; peers with a different major are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// The version of this build, from Cargo.
    pub const CURRENT: Version = Version {
        major: parse_u32(env!("CARGO_PKG_VERSION_MAJOR")),
        minor: parse_u32(env!("CARGO_PKG_VERSION_MINOR")),
        patch: parse_u32(env!("CARGO_PKG_VERSION_PATCH")),
    };

    /// Whether a peer running `other` can talk to us (same major).
    pub fn compatible_with(&self, other: &Version) -> bool {
        self.major == other.major
    }
}

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl From<Version> for mr_proto::v1::Version {
    fn from(v: Version) -> Self {
        mr_proto::v1::Version {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
        }
    }
}

impl From<mr_proto::v1::Version> for Version {
    fn from(v: mr_proto::v1::Version) -> Self {
        Version {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_matches_cargo() {
        assert_eq!(Version::CURRENT.to_string(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn major_decides_compatibility() {
        let v = Version {
            major: 1,
            minor: 2,
            patch: 3,
        };
        assert!(v.compatible_with(&Version {
            major: 1,
            minor: 9,
            patch: 0
        }));
        assert!(!v.compatible_with(&Version {
            major: 2,
            minor: 2,
            patch: 3
        }));
    }
}
