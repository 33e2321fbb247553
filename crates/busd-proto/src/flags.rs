//! How `Hello` and `Welcome` carry their flags on the wire. Frames are
//! MessagePack arrays, whose fields are known by position, so a flag left
//! out must have no flag after it: each is sent if it or a later one is
//! up, and a frame with none up is the one that older peers, which knew
//! none of them, send and read. A flag not sent reads as `false`.

use serde::{Deserialize, Serialize};

use crate::op::{AuthKind, Hello, Limits, Welcome};
use crate::pfn::Pfn;

#[derive(Serialize, Deserialize)]
pub(crate) struct HelloWire {
    version: u16,
    pfn: Option<Pfn>,
    name: String,
    auth: AuthKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fds: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set_pools: Option<bool>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct WelcomeWire {
    client_id: u64,
    pfn: Option<Pfn>,
    limits: Limits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fds: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set_pools: Option<bool>,
}

/// The flags to send, in order: each up to the last one that is up.
fn trailing<const N: usize>(flags: [bool; N]) -> [Option<bool>; N] {
    let sent = flags.iter().rposition(|&f| f).map_or(0, |last| last + 1);
    std::array::from_fn(|i| (i < sent).then_some(flags[i]))
}

impl From<Hello> for HelloWire {
    fn from(h: Hello) -> Self {
        let [fds, set_pools] = trailing([h.fds, h.set_pools]);
        Self {
            version: h.version,
            pfn: h.pfn,
            name: h.name,
            auth: h.auth,
            fds,
            set_pools,
        }
    }
}

impl From<HelloWire> for Hello {
    fn from(w: HelloWire) -> Self {
        Self {
            version: w.version,
            pfn: w.pfn,
            name: w.name,
            auth: w.auth,
            fds: w.fds.unwrap_or(false),
            set_pools: w.set_pools.unwrap_or(false),
        }
    }
}

impl From<Welcome> for WelcomeWire {
    fn from(w: Welcome) -> Self {
        let [fds, set_pools] = trailing([w.fds, w.set_pools]);
        Self {
            client_id: w.client_id,
            pfn: w.pfn,
            limits: w.limits,
            fds,
            set_pools,
        }
    }
}

impl From<WelcomeWire> for Welcome {
    fn from(w: WelcomeWire) -> Self {
        Self {
            client_id: w.client_id,
            pfn: w.pfn,
            limits: w.limits,
            fds: w.fds.unwrap_or(false),
            set_pools: w.set_pools.unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_sent_up_to_the_last_one_up() {
        assert_eq!(trailing([false, false]), [None, None]);
        assert_eq!(trailing([true, false]), [Some(true), None]);
        assert_eq!(trailing([false, true]), [Some(false), Some(true)]);
        assert_eq!(trailing([true, true]), [Some(true), Some(true)]);
    }

    #[test]
    fn each_combination_of_flags_reads_back() {
        for (fds, set_pools) in [(false, false), (true, false), (false, true), (true, true)] {
            let hello = Hello {
                version: 1,
                pfn: None,
                name: "app".into(),
                auth: AuthKind::None,
                fds,
                set_pools,
            };
            let bytes = rmp_serde::to_vec(&hello).unwrap();
            assert_eq!(rmp_serde::from_slice::<Hello>(&bytes).unwrap(), hello);
            let welcome = Welcome {
                client_id: 7,
                pfn: None,
                limits: Limits {
                    max_frame: 1,
                    max_pending_msgs: 2,
                    max_pending_bytes: 3,
                },
                fds,
                set_pools,
            };
            let bytes = rmp_serde::to_vec(&welcome).unwrap();
            assert_eq!(rmp_serde::from_slice::<Welcome>(&bytes).unwrap(), welcome);
        }
    }
}
