//! A small cache of upstream answers, per sandbox server: kept for the
//! smallest TTL of the answer (negative answers for the SOA's minimum),
//! never past it; truncated answers and failures are not kept.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What an answer is cached under: name (lower case), type, class, DNSSEC OK.
pub(crate) type Key = (String, u16, u16, bool);

/// How many answers a cache keeps at most.
const CAPACITY: usize = 512;
/// No answer is kept longer than this.
const MAX_TTL: Duration = Duration::from_secs(300);

/// Upstream answers by question.
#[derive(Default)]
pub(crate) struct AnswerCache {
    entries: Mutex<HashMap<Key, (Vec<u8>, Instant)>>,
}

impl AnswerCache {
    /// The cached answer to `key`, with its id set to `id`.
    pub fn get(&self, key: &Key, id: u16) -> Option<Vec<u8>> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some((bytes, until)) if *until > Instant::now() => {
                let mut b = bytes.clone();
                b[..2].copy_from_slice(&id.to_be_bytes());
                Some(b)
            }
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `answer` to `key` for as long as its TTLs allow.
    pub fn put(&self, key: Key, answer: &[u8]) {
        let Some(ttl) = lifetime(answer) else { return };
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            let now = Instant::now();
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key, (answer.to_vec(), Instant::now() + ttl));
    }
}

/// How long `answer` may be kept; `None`: not at all.
fn lifetime(answer: &[u8]) -> Option<Duration> {
    let m = Message::from_vec(answer).ok()?;
    if m.metadata.truncation {
        return None;
    }
    let secs = match m.metadata.response_code {
        ResponseCode::NoError if !m.answers.is_empty() => m.answers.iter().map(|r| r.ttl).min()?,
        ResponseCode::NoError | ResponseCode::NXDomain => m.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(u64::from(secs)).min(MAX_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, Record, RecordType};

    fn answer(ttl: u32) -> Vec<u8> {
        let name = Name::from_ascii("example.com.").unwrap();
        let mut m = Message::new(5, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(name, ttl, RData::A(A([1, 2, 3, 4].into()))));
        m.to_vec().unwrap()
    }

    #[test]
    fn kept_with_the_askers_id_and_not_when_ttl_is_zero() {
        let c = AnswerCache::default();
        let key: Key = ("example.com.".into(), 1, 1, false);
        c.put(key.clone(), &answer(0));
        assert!(c.get(&key, 9).is_none());
        c.put(key.clone(), &answer(30));
        let hit = c.get(&key, 9).unwrap();
        assert_eq!(Message::from_vec(&hit).unwrap().metadata.id, 9);
    }
}
