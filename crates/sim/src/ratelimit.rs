//! The REST IP limit: more than `limit` requests in a sliding `window` bans the IP for `ban`
//! (answered HTTP 403 "access too frequent").

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sliding-window request log per IP.
#[derive(Debug)]
pub struct IpLimiter {
    limit: usize,
    window: Duration,
    ban: Duration,
    ips: HashMap<IpAddr, (VecDeque<Instant>, Option<Instant>)>,
}

impl IpLimiter {
    /// A limiter of `limit` requests per `window`, banning for `ban`.
    pub fn new(limit: usize, window: Duration, ban: Duration) -> Self {
        IpLimiter {
            limit,
            window,
            ban,
            ips: HashMap::new(),
        }
    }

    /// Counts a request; `false` when it must be refused.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let (log, banned) = self.ips.entry(ip).or_default();
        if let Some(until) = *banned {
            if now < until {
                return false;
            }
            *banned = None;
            log.clear();
        }
        while log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            log.pop_front();
        }
        if log.len() >= self.limit {
            *banned = Some(now + self.ban);
            log.clear();
            return false;
        }
        log.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_after_the_limit_until_the_ban_ends() {
        let mut l = IpLimiter::new(3, Duration::from_secs(5), Duration::from_secs(60));
        let ip = IpAddr::from([127, 0, 0, 1]);
        let t = Instant::now();
        assert!((0..3).all(|_| l.allow(ip, t)));
        assert!(!l.allow(ip, t));
        assert!(!l.allow(ip, t + Duration::from_secs(30)), "still banned");
        assert!(l.allow(ip, t + Duration::from_secs(61)));
    }
}
