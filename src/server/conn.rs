//! Connection safety, shared by both listeners: the deadline from accept to the first
//! request, the idle timeout, and the per-IP connection cap.
//!
//! The service of each connection reports its requests to an [`Activity`]; [`drive`]
//! runs the connection next to a timer that reads it. A connection that has not
//! produced a complete request head within the first-request deadline (silent, or only
//! the HTTP/2 preface and SETTINGS), or that has had no request in progress for the
//! idle timeout, is asked to close (`graceful_shutdown`) and dropped shortly after.
//!
//! When every connection slot is taken, [`Waiting::evict_oldest`] closes the oldest
//! connection that has not sent a request yet to make room for the new one: silent or
//! slow clients cannot hold the slots that SDKs need, however many they open.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How long a connection asked to close (deadline or idle) may take to do so.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What the service of one connection has seen: whether a request arrived, how many
/// are in progress, and when the last one ended.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    seen_request: AtomicBool,
    active: AtomicUsize,
    /// Milliseconds after `started` when the last request began or ended.
    last_millis: AtomicU64,
    /// Set (and notified) when the connection must make room for a newer one.
    evicted: AtomicBool,
    evict: Notify,
}

impl Activity {
    /// A fresh connection, accepted now.
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            started: Instant::now(),
            seen_request: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            last_millis: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
        })
    }

    /// Marks a request (its head complete) as in progress until the guard drops.
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.seen_request.store(true, Ordering::Release);
        self.active.fetch_add(1, Ordering::AcqRel);
        self.touch();
        RequestGuard(Arc::clone(self))
    }

    fn touch(&self) {
        let millis = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.fetch_max(millis, Ordering::AcqRel);
    }

    fn last_activity(&self) -> Instant {
        self.started + Duration::from_millis(self.last_millis.load(Ordering::Acquire))
    }
}

/// Connections that have not sent a request yet, oldest first, for eviction under
/// pressure.
#[derive(Debug, Default)]
pub struct Waiting {
    queue: Mutex<VecDeque<Weak<Activity>>>,
}

impl Waiting {
    /// Registers a new connection; entries of ended or served connections are pruned
    /// once the queue holds more than `bound`.
    pub fn push(&self, activity: &Arc<Activity>, bound: usize) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= bound.max(16) {
            queue.retain(|weak| weak.upgrade().is_some_and(|a| a.is_waiting()));
        }
        queue.push_back(Arc::downgrade(activity));
    }

    /// Asks the oldest connection that has sent no request yet to close; false when
    /// there is none.
    pub fn evict_oldest(&self) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(weak) = queue.pop_front() {
            let Some(activity) = weak.upgrade() else {
                continue;
            };
            if activity.evict() {
                return true;
            }
        }
        false
    }
}

impl Activity {
    /// True while no request has been seen and the connection was not evicted.
    fn is_waiting(&self) -> bool {
        !self.seen_request.load(Ordering::Acquire) && !self.evicted.load(Ordering::Acquire)
    }

    /// Asks the connection to close to make room, if it has sent no request yet; true
    /// when it was asked.
    fn evict(&self) -> bool {
        if !self.is_waiting() {
            return false;
        }
        self.evicted.store(true, Ordering::Release);
        self.evict.notify_one();
        true
    }
}

/// A request in progress; see [`Activity::begin`].
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The timeouts [`drive`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// From accept to the first complete request head.
    pub first_request: Duration,
    /// With no request in progress.
    pub idle: Duration,
}

/// Why [`drive`] asked a connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    FirstRequest,
    Idle,
    /// Every slot was taken and this connection had sent nothing yet.
    Evicted,
}

/// When the timer should next look, or why the connection must close now.
fn next_check(activity: &Activity, deadlines: Deadlines, now: Instant) -> Result<Instant, Cut> {
    if !activity.seen_request.load(Ordering::Acquire) {
        let deadline = activity.started + deadlines.first_request;
        return if now >= deadline {
            Err(Cut::FirstRequest)
        } else {
            Ok(deadline)
        };
    }
    if activity.active.load(Ordering::Acquire) > 0 {
        return Ok(now + deadlines.idle);
    }
    let deadline = activity.last_activity() + deadlines.idle;
    if now >= deadline {
        Err(Cut::Idle)
    } else {
        Ok(deadline)
    }
}

/// Runs `connection` to its end, closing it when it misses a deadline or when
/// `shutdown` turns true (then it finishes what is in progress; the caller bounds that
/// with its grace period). `close` is the connection's `graceful_shutdown`.
pub async fn drive<C, E>(
    connection: C,
    activity: Arc<Activity>,
    deadlines: Deadlines,
    mut shutdown: watch::Receiver<bool>,
    close: impl Fn(Pin<&mut C>),
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    let mut connection = std::pin::pin!(connection);
    let mut check = activity.started + deadlines.first_request.min(deadlines.idle);
    let mut shutting_down = false;
    loop {
        let cut = tokio::select! {
            result = connection.as_mut() => return result,
            () = tokio::time::sleep_until(check) => {
                match next_check(&activity, deadlines, Instant::now()) {
                    Ok(next) => {
                        check = next;
                        None
                    }
                    Err(cut) => Some(cut),
                }
            }
            () = activity.evict.notified() => {
                // A request that began meanwhile is served: only a waiting one goes.
                (!activity.seen_request.load(Ordering::Acquire)).then_some(Cut::Evicted)
            }
            () = stop_requested(&mut shutdown), if !shutting_down => {
                shutting_down = true;
                close(connection.as_mut());
                None
            }
        };
        if let Some(cut) = cut {
            tracing::debug!(?cut, "closing connection");
            close(connection.as_mut());
            return match tokio::time::timeout(CLOSE_GRACE, connection).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            };
        }
    }
}

/// Resolves when `shutdown` turns true (or its sender is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: treat it as a shutdown.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The key a client's connections are counted under: the address, or for IPv6 its /64
/// (one host usually holds a whole /64). IPv4-mapped IPv6 counts as IPv4.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Open connections per client IP (IPv6 per /64), capped. When an address is at the
/// cap, its oldest connection that has not sent a request yet is closed to make room,
/// so silent sockets from a shared address (a NAT, an office, a load balancer) cannot
/// lock that address's SDKs out.
#[derive(Debug)]
pub struct PerIpLimit {
    cap: usize,
    open: Mutex<HashMap<IpAddr, PerAddress>>,
}

/// One address's open connections.
#[derive(Debug, Default)]
struct PerAddress {
    count: usize,
    /// Its connections that had not sent a request when last looked at, oldest first.
    waiting: VecDeque<Weak<Activity>>,
}

/// What [`PerIpLimit::try_acquire`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Under the cap.
    Admitted(IpGuard),
    /// At the cap: the address's oldest connection without a request was asked to
    /// close, and this one takes its place (the count stays over the cap by one until
    /// it has closed, at most `CLOSE_GRACE`).
    Evicted(IpGuard),
    /// At the cap, and every connection of the address has sent a request.
    Refused,
}

impl PerIpLimit {
    /// At most `cap` connections per client; 0 means no limit.
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(PerIpLimit {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts `activity`'s connection from `ip` until the guard drops; at the cap, makes
    /// room by evicting the address's oldest connection that has sent nothing, or
    /// refuses when there is none.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, activity: &Arc<Activity>) -> Admission {
        let key = ip_key(ip);
        let guard = || IpGuard {
            limit: Arc::clone(self),
            key,
        };
        if self.cap == 0 {
            return Admission::Admitted(guard());
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let address = open.entry(key).or_default();
        let mut evicted = false;
        if address.count >= self.cap {
            while let Some(weak) = address.waiting.pop_front() {
                if weak.upgrade().is_some_and(|a| a.evict()) {
                    evicted = true;
                    break;
                }
            }
            if !evicted {
                return Admission::Refused;
            }
        }
        address.count += 1;
        if address.waiting.len() >= self.cap.max(16) {
            address
                .waiting
                .retain(|weak| weak.upgrade().is_some_and(|a| a.is_waiting()));
        }
        address.waiting.push_back(Arc::downgrade(activity));
        if evicted {
            Admission::Evicted(guard())
        } else {
            Admission::Admitted(guard())
        }
    }
}

/// One counted connection; see [`PerIpLimit::try_acquire`].
#[derive(Debug)]
pub struct IpGuard {
    limit: Arc<PerIpLimit>,
    key: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        if self.limit.cap == 0 {
            return;
        }
        let mut open = self.limit.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(address) = open.get_mut(&self.key) {
            address.count -= 1;
            if address.count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(ip_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn per_ip_cap_refuses_over_the_cap_and_frees_on_drop() {
        let limit = PerIpLimit::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let admit = |ip, activity: &Arc<Activity>| match limit.try_acquire(ip, activity) {
            Admission::Admitted(guard) => Some(guard),
            _ => None,
        };
        // Connections that have sent a request cannot be evicted: the third is refused.
        let (a, b, c) = (Activity::new(), Activity::new(), Activity::new());
        let first = admit(ip, &a).unwrap();
        let _second = admit(ip, &b).unwrap();
        let _ra = a.begin();
        let _rb = b.begin();
        assert!(matches!(limit.try_acquire(ip, &c), Admission::Refused));
        assert!(admit(other, &Activity::new()).is_some());
        drop(first);
        assert!(admit(ip, &c).is_some());
    }

    #[test]
    fn at_the_per_ip_cap_the_addresses_oldest_silent_connection_makes_room() {
        let limit = PerIpLimit::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.9".parse().unwrap();
        let (served, silent, newcomer) = (Activity::new(), Activity::new(), Activity::new());
        let _g1 = limit.try_acquire(ip, &served);
        let _request = served.begin();
        let _g2 = limit.try_acquire(ip, &silent);
        // Another address's silent connection is never the one evicted.
        let stranger = Activity::new();
        let _g3 = limit.try_acquire(other, &stranger);
        assert!(matches!(
            limit.try_acquire(ip, &newcomer),
            Admission::Evicted(_)
        ));
        assert!(silent.evicted.load(Ordering::Acquire));
        assert!(!served.evicted.load(Ordering::Acquire));
        assert!(!stranger.evicted.load(Ordering::Acquire));
    }

    #[test]
    fn zero_cap_is_unlimited() {
        let limit = PerIpLimit::new(0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let activity = Activity::new();
        let guards: Vec<_> = (0..1000)
            .map(|_| limit.try_acquire(ip, &activity))
            .filter(|a| matches!(a, Admission::Admitted(_)))
            .collect();
        assert_eq!(guards.len(), 1000);
    }

    #[test]
    fn the_oldest_connection_without_a_request_is_evicted() {
        let waiting = Waiting::default();
        let served = Activity::new();
        let silent = Activity::new();
        let newer = Activity::new();
        for activity in [&served, &silent, &newer] {
            waiting.push(activity, 100);
        }
        let _guard = served.begin();
        assert!(waiting.evict_oldest());
        assert!(
            silent.evicted.load(Ordering::Acquire),
            "the oldest silent one"
        );
        assert!(!newer.evicted.load(Ordering::Acquire));
        assert!(
            !served.evicted.load(Ordering::Acquire),
            "a served one never"
        );
        assert!(waiting.evict_oldest());
        assert!(newer.evicted.load(Ordering::Acquire));
        assert!(!waiting.evict_oldest(), "nothing left to evict");
    }

    #[test]
    fn deadlines_follow_activity() {
        let deadlines = Deadlines {
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let activity = Activity::new();
        let start = activity.started;
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(next_check(&activity, deadlines, start), Ok(at(10)));
        assert_eq!(
            next_check(&activity, deadlines, at(10)),
            Err(Cut::FirstRequest)
        );
        let guard = activity.begin();
        assert_eq!(next_check(&activity, deadlines, at(100)), Ok(at(160)));
        drop(guard);
        // The request ended at 100 s.
        activity.last_millis.store(100_000, Ordering::Release);
        assert_eq!(next_check(&activity, deadlines, at(159)), Ok(at(160)));
        assert_eq!(next_check(&activity, deadlines, at(160)), Err(Cut::Idle));
    }
}
