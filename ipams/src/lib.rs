//! The built-in IPAM drivers of cnm: [`DefaultIpam`] and [`NullIpam`].
//!
//! # Allocator design
//!
//! Each allocated pool owns an [`AddressPool`], which tracks allocated
//! addresses as integer offsets from the pool's network address:
//!
//! - pools of up to 2^24 addresses (an IPv4 /8) use a dense two-level bitmap:
//!   one bit per address plus one summary bit per 64-bit word marking full
//!   words, so a search skips 4096 taken addresses per summary word; a full
//!   /8 costs 2 MiB + 32 KiB;
//! - larger pools (IPv6 /64, /48, even `::/0`) use a run-length set of
//!   `u128` intervals in a `BTreeMap`, whose memory follows the number of
//!   allocated runs, not the size of the pool.
//!
//! By default an address request gets the lowest free address of the
//! (sub-)pool, as Docker 20.10 does (a container that reconnects gets its
//! address back); a hint below which everything is taken keeps that O(1)
//! amortized while filling. With `com.docker.network.ipam.serial=true`,
//! serial allocation keeps a cursor after the last address handed out and
//! wraps around at the end of the (sub-)pool, so a released address is not
//! reused until the range has been walked through. Automatic pool choice
//! walks the predefined pools arithmetically, jumping past any allocated
//! pool or host network that blocks a candidate; nothing is materialized.
//! All state sits behind one `std::sync::Mutex`, never held across an await.

mod addresses;
mod bitmap;
mod config;
mod default_ipam;
mod ids;
mod intervals;
mod null_ipam;
mod pool;
mod space;
mod span;

pub use addresses::DENSE_LIMIT;
pub use cnm_ipamapi::{HostNetworks, StaticHostNetworks};
pub use config::{DefaultIpamConfig, PoolSpec};
pub use default_ipam::{DefaultIpam, SERIAL_OPTION};
pub use null_ipam::NullIpam;
pub use pool::AddressPool;
