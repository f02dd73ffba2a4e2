//! Network capabilities: which addresses an app's tasks may listen on or
//! connect to. Deny by default; each grant is a rule
//! `IP[/PREFIX]:PORTS`, kept in a cap-std `Pool` (`cap_primitives::net::Pool`) that answers the
//! checks.
//!
//! Rule syntax: an IPv4 address or CIDR range (`127.0.0.1`, `10.0.0.0/8`),
//! or an IPv6 one in brackets (`[::1]`, `[fd00::/8]`); then `:` and the ports:
//! one (`8080`), an inclusive range (`8000-8099`) or `*` for any. Port 0
//! (bind to a free port) is allowed by `*` and by ranges that start at 0.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use cap_primitives::ambient_authority;
use cap_primitives::net::Pool;
use ipnet::IpNet;

/// One grant: a range of addresses and ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    net: IpNet,
    ports: (u16, u16),
}

impl FromStr for NetRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("`{text}` is not a network rule like 127.0.0.1:8080 or [::1]/128:* ({why})")
        };
        let (host, ports) = text.rsplit_once(':').ok_or_else(|| bad("no `:PORTS`"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.contains(':') && !text.starts_with('[') {
            return Err(bad("put an IPv6 address in brackets"));
        }
        let net = match host.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => IpNet::from(
                host.parse::<std::net::IpAddr>()
                    .map_err(|_| bad("bad address"))?,
            ),
        };
        let port = |p: &str| p.parse::<u16>().map_err(|_| bad("bad port"));
        let ports = match ports {
            "*" => (0, u16::MAX),
            p => match p.split_once('-') {
                Some((a, b)) => (port(a)?, port(b)?),
                None => (port(p)?, port(p)?),
            },
        };
        if ports.0 > ports.1 {
            return Err(bad("the port range is empty"));
        }
        Ok(NetRule { net, ports })
    }
}

impl fmt::Display for NetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.net {
            IpNet::V4(net) => write!(f, "{net}")?,
            IpNet::V6(net) => write!(f, "[{net}]")?,
        }
        match self.ports {
            (0, u16::MAX) => write!(f, ":*"),
            (a, b) if a == b => write!(f, ":{a}"),
            (a, b) => write!(f, ":{a}-{b}"),
        }
    }
}

/// What an app may do on the network.
#[derive(Clone, Default)]
pub struct NetPolicy {
    /// Addresses it may bind (TCP listen, UDP bind).
    listen: Pool,
    /// Addresses it may connect or send datagrams to.
    connect: Pool,
}

/// The two uses a rule can grant.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NetUse {
    Listen,
    Connect,
}

impl NetPolicy {
    /// A policy that grants `listen` and `connect`.
    pub fn new(listen: &[NetRule], connect: &[NetRule]) -> Self {
        let pool = |rules: &[NetRule]| {
            let mut pool = Pool::new();
            for rule in rules {
                // The end of the range is exclusive for cap-std.
                let end = rule.ports.1.checked_add(1);
                pool.insert_ip_net_port_range(rule.net, rule.ports.0, end, ambient_authority());
            }
            pool
        };
        NetPolicy {
            listen: pool(listen),
            connect: pool(connect),
        }
    }

    /// Whether `addr` may be used so; the error says what was refused.
    pub(crate) fn check(&self, addr: &SocketAddr, what: NetUse) -> Result<(), String> {
        let (pool, verb, flag) = match what {
            NetUse::Listen => (&self.listen, "binding", "--listen"),
            NetUse::Connect => (&self.connect, "connecting to", "--connect"),
        };
        pool.check_addr(addr)
            .map_err(|_| format!("{verb} {addr} is not allowed (no {flag} rule grants it)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rules_parse_and_print_back() {
        for text in [
            "127.0.0.1/32:8080",
            "10.0.0.0/8:1000-2000",
            "[::1/128]:*",
            "0.0.0.0/0:*",
        ] {
            assert_eq!(text.parse::<NetRule>().unwrap().to_string(), text);
        }
        assert_eq!(
            "127.0.0.1:80".parse::<NetRule>().unwrap().to_string(),
            "127.0.0.1/32:80"
        );
        assert_eq!(
            "[::1]:80".parse::<NetRule>().unwrap().to_string(),
            "[::1/128]:80"
        );
        for bad in [
            "127.0.0.1",
            "::1:80",
            "127.0.0.1:http",
            "10.0.0.0/40:1",
            "1.2.3.4:9-8",
            "host:80",
        ] {
            assert!(bad.parse::<NetRule>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn checks_follow_the_rules_and_deny_the_rest() {
        let rules = |list: &[&str]| {
            list.iter()
                .map(|r| r.parse().unwrap())
                .collect::<Vec<NetRule>>()
        };
        let policy = NetPolicy::new(
            &rules(&["127.0.0.0/8:8000-8010", "[::1]:*"]),
            &rules(&["10.1.0.0/16:443"]),
        );
        assert!(
            policy
                .check(&addr("127.0.0.5:8010"), NetUse::Listen)
                .is_ok()
        );
        assert!(
            policy
                .check(&addr("127.0.0.5:8011"), NetUse::Listen)
                .is_err()
        );
        assert!(policy.check(&addr("[::1]:0"), NetUse::Listen).is_ok());
        assert!(policy.check(&addr("10.1.2.3:443"), NetUse::Connect).is_ok());
        assert!(policy.check(&addr("10.1.2.3:443"), NetUse::Listen).is_err());
        let denied = policy
            .check(&addr("10.2.0.1:443"), NetUse::Connect)
            .unwrap_err();
        assert_eq!(
            denied,
            "connecting to 10.2.0.1:443 is not allowed (no --connect rule grants it)"
        );
        assert!(
            NetPolicy::default()
                .check(&addr("127.0.0.1:80"), NetUse::Listen)
                .is_err()
        );
    }
}
