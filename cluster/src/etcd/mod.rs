//! A small etcd v3 client over gRPC (tonic), with the messages of
//! [`proto`] written by hand: what cnm needs of etcd (ranges, puts,
//! deletes, transactions, leases, watches) and nothing else, built without
//! `protoc` or any system file.
//!
//! One [`Etcd`] is a load-balanced channel to every endpoint (connected
//! lazily, so a store that is down now is retried on use), with HTTP/2
//! keep-alives that notice a dead peer within seconds. Requests carry no
//! deadline of their own: the session wraps each in one.

pub mod proto;

use proto::*;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;
use tonic::transport::{Channel, Endpoint};
use tonic_prost::ProstCodec;

/// An error of the etcd client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// An endpoint is not a valid address.
    #[error("invalid etcd endpoint {endpoint:?}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        #[source]
        source: tonic::transport::Error,
    },
    /// etcd (or the connection to it) failed the request.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    /// A stream (watch, lease keep-alive) ended.
    #[error("the stream was closed")]
    Closed,
}

impl From<tonic::Status> for EtcdError {
    fn from(s: tonic::Status) -> Self {
        EtcdError::Status(s)
    }
}

/// The range end that makes a request cover every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or no prefix): to the end of the key space.
    vec![0]
}

/// A client of one etcd cluster (cheap to clone).
#[derive(Clone, Debug)]
pub struct Etcd {
    channel: Channel,
}

/// The sending half of a bidirectional stream: the stream lasts while it is kept.
pub type StreamSender<T> = mpsc::Sender<T>;

impl Etcd {
    /// A client of `endpoints` (`host:port`), each connected on first use
    /// within `connect_timeout`.
    pub fn new(endpoints: &[String], connect_timeout: Duration) -> Result<Etcd, EtcdError> {
        let mut list = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let uri = format!("http://{e}");
            let endpoint = Endpoint::from_shared(uri)
                .map_err(|source| EtcdError::Endpoint { endpoint: e.clone(), source })?
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(2))
                .keep_alive_timeout(Duration::from_secs(2))
                .keep_alive_while_idle(true);
            list.push(endpoint);
        }
        Ok(Etcd { channel: Channel::balance_list(list.into_iter()) })
    }

    async fn unary<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp, EtcdError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("etcd not reachable: {}", cnm_ipamapi::chain(&e))))?;
        let codec = ProstCodec::<Req, Resp>::default();
        let path = http::uri::PathAndQuery::from_static(path);
        Ok(grpc.unary(tonic::Request::new(req), path, codec).await?.into_inner())
    }

    async fn streaming<Req, Resp>(
        &self,
        path: &'static str,
        first: Req,
    ) -> Result<(StreamSender<Req>, Streaming<Resp>), EtcdError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("etcd not reachable: {}", cnm_ipamapi::chain(&e))))?;
        let (tx, rx) = mpsc::channel(4);
        tx.send(first).await.map_err(|_| EtcdError::Closed)?;
        let codec = ProstCodec::<Req, Resp>::default();
        let path = http::uri::PathAndQuery::from_static(path);
        let answers = grpc.streaming(tonic::Request::new(ReceiverStream::new(rx)), path, codec).await?.into_inner();
        Ok((tx, answers))
    }

    /// The keys from `key` up to `range_end` (empty: `key` alone).
    pub async fn range(&self, key: Vec<u8>, range_end: Vec<u8>) -> Result<RangeResponse, EtcdError> {
        self.unary("/etcdserverpb.KV/Range", RangeRequest { key, range_end }).await
    }

    /// Sets `key`, attached to `lease` (0: none).
    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<PutResponse, EtcdError> {
        self.unary("/etcdserverpb.KV/Put", PutRequest { key, value, lease }).await
    }

    /// Deletes the keys from `key` up to `range_end` (empty: `key` alone).
    pub async fn delete(&self, key: Vec<u8>, range_end: Vec<u8>) -> Result<DeleteRangeResponse, EtcdError> {
        self.unary("/etcdserverpb.KV/DeleteRange", DeleteRangeRequest { key, range_end }).await
    }

    /// Runs a transaction.
    pub async fn txn(&self, txn: TxnRequest) -> Result<TxnResponse, EtcdError> {
        self.unary("/etcdserverpb.KV/Txn", txn).await
    }

    /// Grants a lease of `ttl` seconds.
    pub async fn lease_grant(&self, ttl: i64) -> Result<LeaseGrantResponse, EtcdError> {
        self.unary("/etcdserverpb.Lease/LeaseGrant", LeaseGrantRequest { ttl, id: 0 }).await
    }

    /// Revokes a lease (its keys are deleted).
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, EtcdError> {
        self.unary("/etcdserverpb.Lease/LeaseRevoke", LeaseRevokeRequest { id }).await
    }

    /// Opens a keep-alive stream for lease `id`, sending the first renewal.
    pub async fn lease_keep_alive(
        &self,
        id: i64,
    ) -> Result<(StreamSender<LeaseKeepAliveRequest>, Streaming<LeaseKeepAliveResponse>), EtcdError> {
        self.streaming("/etcdserverpb.Lease/LeaseKeepAlive", LeaseKeepAliveRequest { id }).await
    }

    /// Watches `create.key` (to `create.range_end`) from `create.start_revision`.
    pub async fn watch(
        &self,
        create: WatchCreateRequest,
    ) -> Result<(StreamSender<WatchRequest>, Streaming<WatchResponse>), EtcdError> {
        let first = WatchRequest { request_union: Some(WatchRequestUnion::CreateRequest(create)) };
        self.streaming("/etcdserverpb.Watch/Watch", first).await
    }
}

/// A comparison of `key`'s creation revision (0: the key does not exist).
pub fn compare_created(key: Vec<u8>, result: CompareResult, revision: i64) -> Compare {
    Compare {
        result: result as i32,
        target: CompareTarget::Create as i32,
        key,
        target_union: Some(CompareValue::CreateRevision(revision)),
        range_end: vec![],
    }
}

/// A put inside a transaction.
pub fn op_put(key: Vec<u8>, value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp { request: Some(Request::Put(PutRequest { key, value, lease })) }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/cnm/a"), b"/cnm/b");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
