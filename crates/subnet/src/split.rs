//! Dividing a network into equal subnets: moving the cut `k` bits to the right makes 2^k
//! subnets, each 2^k times smaller.

use serde::Serialize;

use crate::parse::{Split, Subnet};
use crate::report::{Count, Report};
use crate::{MAX_SUBNETS, SubnetError};

/// One subnet of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetRow {
    /// `network/prefix`.
    pub cidr: String,
    pub network: String,
    /// IPv4 prefixes up to /30 only.
    pub broadcast: Option<String>,
    pub first_host: String,
    pub last_host: String,
    pub hosts: Count,
}

/// The result of `--split`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitReport {
    /// The network that was split, `network/prefix`.
    pub from: String,
    /// The prefix length of every subnet.
    pub prefix: u8,
    /// How many bits moved from the host part to the network part.
    pub borrowed_bits: u8,
    /// How many subnets (2^borrowed_bits).
    pub count: u64,
    pub subnets: Vec<SubnetRow>,
}

/// Splits the network `s` lies in as `how` asks.
///
/// # Errors
/// [`SubnetError::NotPowerOfTwo`], [`SubnetError::SplitDoesNotFit`] when the subnets would be
/// larger than the network or longer than the family allows, and
/// [`SubnetError::TooManySubnets`] past [`MAX_SUBNETS`].
pub fn split(s: &Subnet, how: Split) -> Result<SplitReport, SubnetError> {
    let width = s.width();
    let prefix = s.prefix();
    let asked = how.to_string();
    let new_prefix = match how {
        Split::Count(n) => {
            if n == 0 || !n.is_power_of_two() {
                return Err(SubnetError::NotPowerOfTwo(n));
            }
            let bits = n.trailing_zeros();
            if u32::from(prefix) + bits > u32::from(width) {
                return Err(SubnetError::SplitDoesNotFit {
                    asked,
                    prefix,
                    what: format!("{n} subnets"),
                    why: format!(
                        "{n} subnets take {bits} more network bits and only {} host bits are left",
                        width - prefix
                    ),
                });
            }
            prefix + bits as u8
        }
        Split::Prefix(p) => {
            if p > width {
                return Err(SubnetError::SplitDoesNotFit {
                    asked,
                    prefix,
                    what: format!("/{p} subnets"),
                    why: format!(
                        "an IPv{} prefix is at most /{width}",
                        if width == 32 { 4 } else { 6 }
                    ),
                });
            }
            if p < prefix {
                return Err(SubnetError::SplitDoesNotFit {
                    asked,
                    prefix,
                    what: format!("/{p} subnets"),
                    why: format!(
                        "a /{p} is larger than the /{prefix} itself: split into /{prefix} to /{width}"
                    ),
                });
            }
            p
        }
    };
    let borrowed = new_prefix - prefix;
    let count: u128 = 1u128.checked_shl(u32::from(borrowed)).unwrap_or(u128::MAX);
    if count > MAX_SUBNETS || borrowed >= 127 {
        return Err(SubnetError::TooManySubnets {
            asked,
            count,
            max: MAX_SUBNETS,
        });
    }
    let net = s.net();
    let subnets = net
        .subnets(new_prefix)
        .expect("new prefix checked to lie between the prefix and the width")
        .map(|sub| {
            let r = Report::new(
                &Subnet::new(sub.network(), new_prefix).expect("prefix within the width"),
            );
            SubnetRow {
                cidr: r.cidr,
                network: r.network,
                broadcast: r.broadcast,
                first_host: r.first_host,
                last_host: r.last_host,
                hosts: r.hosts,
            }
        })
        .collect();
    Ok(SplitReport {
        from: net.to_string(),
        prefix: new_prefix,
        borrowed_bits: borrowed,
        count: count as u64,
        subnets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn cidrs(r: &SplitReport) -> Vec<&str> {
        r.subnets.iter().map(|s| s.cidr.as_str()).collect()
    }

    #[test]
    fn four_ways() {
        let s = parse("192.168.1.77/26", None).unwrap();
        let by_count = split(&s, Split::Count(4)).unwrap();
        let by_prefix = split(&s, Split::Prefix(28)).unwrap();
        assert_eq!(by_count, by_prefix);
        assert_eq!(by_count.from, "192.168.1.64/26");
        assert_eq!(by_count.borrowed_bits, 2);
        assert_eq!(
            cidrs(&by_count),
            [
                "192.168.1.64/28",
                "192.168.1.80/28",
                "192.168.1.96/28",
                "192.168.1.112/28"
            ]
        );
        assert_eq!(by_count.subnets[1].first_host, "192.168.1.81");
        assert_eq!(
            by_count.subnets[3].broadcast.as_deref(),
            Some("192.168.1.127")
        );
        assert_eq!(by_count.subnets[0].hosts, Count::Number(14));
    }

    #[test]
    fn splits_that_do_not_fit_are_refused() {
        let s = parse("192.168.1.77/26", None).unwrap();
        assert_eq!(
            split(&s, Split::Count(3)),
            Err(SubnetError::NotPowerOfTwo(3))
        );
        assert_eq!(
            split(&s, Split::Count(0)),
            Err(SubnetError::NotPowerOfTwo(0))
        );
        assert!(matches!(
            split(&s, Split::Count(128)),
            Err(SubnetError::SplitDoesNotFit { .. })
        ));
        assert!(matches!(
            split(&s, Split::Prefix(24)),
            Err(SubnetError::SplitDoesNotFit { .. })
        ));
        assert!(matches!(
            split(&s, Split::Prefix(33)),
            Err(SubnetError::SplitDoesNotFit { .. })
        ));
        let big = parse("10.0.0.0/8", None).unwrap();
        assert!(matches!(
            split(&big, Split::Prefix(32)),
            Err(SubnetError::TooManySubnets {
                count: 16_777_216,
                ..
            })
        ));
        let v6 = parse("::/0", None).unwrap();
        assert!(matches!(
            split(&v6, Split::Prefix(128)),
            Err(SubnetError::TooManySubnets { .. })
        ));
    }

    #[test]
    fn v6_into_lans() {
        let s = parse("2001:db8:abcd::/48", None).unwrap();
        let r = split(&s, Split::Prefix(50)).unwrap();
        assert_eq!(
            cidrs(&r),
            [
                "2001:db8:abcd::/50",
                "2001:db8:abcd:4000::/50",
                "2001:db8:abcd:8000::/50",
                "2001:db8:abcd:c000::/50"
            ]
        );
        assert_eq!(split(&s, Split::Prefix(64)).unwrap().count, 65_536);
        assert_eq!(split(&s, Split::Count(1)).unwrap().subnets.len(), 1);
    }
}
