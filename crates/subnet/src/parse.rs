//! The input forms: `ADDR/PREFIX`, `ADDR/MASK`, `ADDR MASK` (a dotted or `/N` mask as a second
//! word), and the `--split` argument.

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::SubnetError;

/// One address and the prefix length that cuts it. The address keeps its host bits, so the
/// report can show both parts; [`Subnet::net`] is the network it lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    address: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// `address` with `prefix` network bits.
    ///
    /// # Errors
    /// [`SubnetError::BadPrefix`] when the prefix is longer than the address.
    pub fn new(address: IpAddr, prefix: u8) -> Result<Subnet, SubnetError> {
        let max = max_prefix(address);
        if prefix > max {
            return Err(SubnetError::BadPrefix {
                text: prefix.to_string(),
                family: family(address),
                max,
            });
        }
        Ok(Subnet { address, prefix })
    }

    /// The address as given, host bits included.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The number of network bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// 32 for IPv4, 128 for IPv6.
    pub fn width(&self) -> u8 {
        max_prefix(self.address)
    }

    /// The network the address lies in (host bits cleared).
    pub fn net(&self) -> IpNet {
        // The prefix was checked against the family in `new`.
        IpNet::new(self.address, self.prefix)
            .expect("prefix checked in Subnet::new")
            .trunc()
    }
}

/// 4 or 6.
pub(crate) fn family(a: IpAddr) -> u8 {
    if a.is_ipv4() { 4 } else { 6 }
}

fn max_prefix(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

/// Parses `text` (`ADDR/PREFIX`, `ADDR/MASK` or a bare `ADDR`) and an optional second word
/// `mask` (`255.255.255.192`, `/26` or `26`).
///
/// # Errors
/// A [`SubnetError`] naming the part that is wrong; a bare address without a mask is refused,
/// since without a mask there is no cut to show.
pub fn parse(text: &str, mask: Option<&str>) -> Result<Subnet, SubnetError> {
    let text = text.trim();
    let (addr_text, inline_mask) = match text.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (text, None),
    };
    let address: IpAddr = addr_text
        .parse()
        .map_err(|_| SubnetError::BadAddress(addr_text.to_owned()))?;
    let mask = match (inline_mask, mask.map(str::trim)) {
        (Some(_), Some(second)) => {
            // Two masks for one address: the second word is the one that cannot be right.
            return Err(SubnetError::BadMask(format!("{second} (after {text})")));
        }
        (Some(m), None) => m,
        (None, Some(m)) => m.strip_prefix('/').unwrap_or(m),
        (None, None) => {
            let hint = if address.is_ipv4() {
                format!("{addr_text}/24 or {addr_text} 255.255.255.0")
            } else {
                format!("{addr_text}/64")
            };
            return Err(SubnetError::NoPrefix {
                address: addr_text.to_owned(),
                hint,
            });
        }
    };
    let prefix = if mask.contains('.') {
        if address.is_ipv6() {
            return Err(SubnetError::DottedMaskForV6(mask.to_owned()));
        }
        dotted_mask_prefix(mask)?
    } else {
        let max = max_prefix(address);
        match mask.parse::<u8>() {
            Ok(p) if p <= max && !mask.starts_with('+') => p,
            _ => {
                return Err(SubnetError::BadPrefix {
                    text: mask.to_owned(),
                    family: family(address),
                    max,
                });
            }
        }
    };
    Subnet::new(address, prefix)
}

/// The prefix length of a dotted IPv4 mask, refusing masks whose 1 bits are not contiguous.
fn dotted_mask_prefix(mask: &str) -> Result<u8, SubnetError> {
    let m: Ipv4Addr = mask
        .parse()
        .map_err(|_| SubnetError::BadMask(mask.to_owned()))?;
    let bits = u32::from(m);
    let ones = bits.leading_ones();
    // A contiguous mask is `ones` 1 bits followed only by 0 bits.
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return Err(SubnetError::NonContiguousMask(mask.to_owned()));
    }
    Ok(ones as u8)
}

/// What `--split` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Into this many equal subnets (a power of two).
    Count(u128),
    /// Into subnets of this prefix length.
    Prefix(u8),
}

impl FromStr for Split {
    type Err = SubnetError;

    fn from_str(text: &str) -> Result<Split, SubnetError> {
        let t = text.trim();
        let bad = || SubnetError::BadSplit(t.to_owned());
        if let Some(p) = t.strip_prefix('/') {
            if p.starts_with('+') {
                return Err(bad());
            }
            return p.parse::<u8>().map(Split::Prefix).map_err(|_| bad());
        }
        if t.starts_with('+') {
            return Err(bad());
        }
        t.parse::<u128>().map(Split::Count).map_err(|_| bad())
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Split::Count(n) => write!(f, "{n}"),
            Split::Prefix(p) => write!(f, "/{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_agree() {
        let a = parse("192.168.1.77/26", None).unwrap();
        assert_eq!(parse("192.168.1.77", Some("255.255.255.192")).unwrap(), a);
        assert_eq!(parse("192.168.1.77/255.255.255.192", None).unwrap(), a);
        assert_eq!(parse("192.168.1.77", Some("/26")).unwrap(), a);
        assert_eq!(parse("192.168.1.77", Some("26")).unwrap(), a);
        assert_eq!(a.prefix(), 26);
        assert_eq!(a.net().to_string(), "192.168.1.64/26");
        let v6 = parse("2001:db8::1/64", None).unwrap();
        assert_eq!(v6.net().to_string(), "2001:db8::/64");
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            parse("192.168.1.300/24", None),
            Err(SubnetError::BadAddress("192.168.1.300".into()))
        );
        assert_eq!(
            parse("10.0.0.1", None),
            Err(SubnetError::NoPrefix {
                address: "10.0.0.1".into(),
                hint: "10.0.0.1/24 or 10.0.0.1 255.255.255.0".into()
            })
        );
        assert!(matches!(
            parse("10.0.0.1/33", None),
            Err(SubnetError::BadPrefix { max: 32, .. })
        ));
        assert!(matches!(
            parse("::1/129", None),
            Err(SubnetError::BadPrefix { max: 128, .. })
        ));
        assert_eq!(
            parse("10.0.0.1", Some("255.0.255.0")),
            Err(SubnetError::NonContiguousMask("255.0.255.0".into()))
        );
        assert!(matches!(
            parse("::1", Some("255.255.0.0")),
            Err(SubnetError::DottedMaskForV6(_))
        ));
        assert!(matches!(
            parse("10.0.0.1", Some("255.255.0.256")),
            Err(SubnetError::BadMask(_))
        ));
        assert!(matches!(
            parse("10.0.0.1/+8", None),
            Err(SubnetError::BadPrefix { .. })
        ));
    }

    #[test]
    fn dotted_masks_at_the_edges() {
        assert_eq!(parse("10.0.0.1", Some("0.0.0.0")).unwrap().prefix(), 0);
        assert_eq!(
            parse("10.0.0.1", Some("255.255.255.255")).unwrap().prefix(),
            32
        );
        assert_eq!(
            parse("10.0.0.1", Some("255.255.255.254")).unwrap().prefix(),
            31
        );
        assert!(parse("10.0.0.1", Some("0.0.0.1")).is_err());
    }

    #[test]
    fn split_argument() {
        assert_eq!("4".parse::<Split>().unwrap(), Split::Count(4));
        assert_eq!("/28".parse::<Split>().unwrap(), Split::Prefix(28));
        assert!("x".parse::<Split>().is_err());
        assert!("/".parse::<Split>().is_err());
        assert!("-2".parse::<Split>().is_err());
    }
}
