//! A lab's /24, held exclusively on this machine while the lab lives.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use super::ip::ip_quiet;

/// Where the claims are: `/run` is shared by every process on the machine
/// (a test's `/tmp` may be private to it) and emptied at boot.
const CLAIMS: &str = "/run/busd-netlab";

/// 198.18.0.0/15 holds 512 /24s.
const SUBNETS: u64 = 512;

/// `198.18.0.0/15 + index × 256`, claimed by an exclusive `flock` on a file
/// named for it: the kernel drops the lock when the file closes, even when
/// its process is killed, so a claim never outlives its lab's process.
#[derive(Debug)]
pub(super) struct Subnet {
    octets: [u8; 3],
    _claim: File,
}

impl Subnet {
    /// The first free subnet, searching from `seed`: one no other lab holds
    /// and no route of this machine overlaps.
    ///
    /// # Panics
    /// If all are taken.
    pub(super) fn claim(seed: u64) -> Subnet {
        std::fs::create_dir_all(CLAIMS)
            .unwrap_or_else(|e| panic!("netlab: cannot create {CLAIMS}: {e}"));
        for k in 0..SUBNETS {
            let index = (seed + k) % SUBNETS;
            let octets = [198, 18 + (index / 256) as u8, (index % 256) as u8];
            let name = format!("{}.{}.{}.0", octets[0], octets[1], octets[2]);
            let path = Path::new(CLAIMS).join(&name);
            let Ok(file) = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
            else {
                continue;
            };
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
                continue;
            }
            if routed(&format!("{name}/24")) {
                continue;
            }
            return Subnet {
                octets,
                _claim: file,
            };
        }
        panic!("netlab: no free /24 in 198.18.0.0/15 (claims in {CLAIMS})");
    }

    /// `.host` of the subnet.
    pub(super) fn address(&self, host: u8) -> Ipv4Addr {
        let [a, b, c] = self.octets;
        Ipv4Addr::new(a, b, c, host)
    }

    /// `a.b.c.0/24`.
    pub(super) fn cidr(&self) -> String {
        format!("{}/24", self.address(0))
    }
}

/// Whether a route of the root namespace overlaps `cidr` (a real network, or
/// a lab of a killed process not swept yet). Default routes (`default via …`,
/// `unreachable default …`) cover everything and are no conflict.
fn routed(cidr: &str) -> bool {
    let within = ip_quiet(&format!("-4 -o route show table all root {cidr}"));
    let around = ip_quiet(&format!("-4 -o route show table all match {cidr}"));
    [within, around]
        .into_iter()
        .flatten()
        .flat_map(|out| out.lines().map(str::to_owned).collect::<Vec<_>>())
        .any(|l| {
            let mut words = l.split_whitespace().take(2);
            !l.trim().is_empty() && !words.any(|w| w == "default")
        })
}
