//! A small etcd v3 client over gRPC (tonic), with the messages of
//! [`proto`] written by hand: what cnm needs of etcd (ranges, puts,
//! deletes, transactions, leases, watches) and nothing else, built without
//! `protoc` or any system file.
//!
//! One [`Etcd`] is a load-balanced channel to every endpoint (connected
//! lazily, so a store that is down now is retried on use), with HTTP/2
//! keep-alives that notice a dead peer within seconds, over TLS when given
//! a CA (and a client certificate, for etcd's `--client-cert-auth`).
//! With [`Credentials`], the client authenticates as an etcd user and
//! sends the token with every request, authenticating again when etcd
//! says the token is no longer valid. Requests carry no deadline of their
//! own: the session wraps each in one.

pub mod proto;

use proto::*;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
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
    /// etcd refused the user name or password.
    #[error("authentication as etcd user {user:?} failed")]
    Authentication {
        /// The user.
        user: String,
        /// etcd's answer.
        #[source]
        source: tonic::Status,
    },
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

/// TLS towards etcd, in PEM: the CA etcd's certificate is checked against
/// and, for etcd's `--client-cert-auth`, this client's certificate and key.
#[derive(Clone)]
pub struct Tls {
    /// The CA bundle.
    pub ca: Vec<u8>,
    /// The client's certificate chain and private key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("client_certificate", &self.identity.is_some()).finish_non_exhaustive()
    }
}

/// An etcd user and password (the password is never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).finish_non_exhaustive()
    }
}

/// An etcd auth token, as request metadata (marked sensitive: never printed).
type Token = tonic::metadata::MetadataValue<tonic::metadata::Ascii>;

/// The user a client authenticates as, and its current token (neither the
/// password nor the token is ever printed).
struct Auth {
    credentials: Credentials,
    token: tokio::sync::Mutex<Option<Token>>,
    /// etcd answered that its authentication is off: requests go without
    /// a token (until one is refused for the want of a user).
    off: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("user", &self.credentials.user).finish_non_exhaustive()
    }
}

/// A client of one etcd cluster (cheap to clone).
#[derive(Clone, Debug)]
pub struct Etcd {
    channel: Channel,
    auth: Option<std::sync::Arc<Auth>>,
}

/// Whether etcd refused a request for its token (expired, or issued
/// before the auth store changed): authenticating again may help.
fn token_refused(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::Unauthenticated
        || s.message().contains("invalid auth token")
        || s.message().contains("revision of auth store is old")
}

/// Whether etcd refused a request sent without a token for the want of a
/// user (its authentication was turned on).
fn user_wanted(s: &tonic::Status) -> bool {
    s.message().contains("user name is empty")
}

/// Whether etcd answered an authentication that its authentication is off.
fn auth_off(s: &tonic::Status) -> bool {
    s.message().contains("authentication is not enabled")
}

/// The sending half of a bidirectional stream: the stream lasts while it is kept.
pub type StreamSender<T> = mpsc::Sender<T>;

impl Etcd {
    /// A client of `endpoints` (`host:port`), each connected on first use
    /// within `connect_timeout`; plain HTTP/2.
    pub fn new(endpoints: &[String], connect_timeout: Duration) -> Result<Etcd, EtcdError> {
        Self::with_security(endpoints, connect_timeout, None, None)
    }

    /// A client of `endpoints` over TLS when `tls` is given, authenticating
    /// as `credentials` when given.
    pub fn with_security(
        endpoints: &[String],
        connect_timeout: Duration,
        tls: Option<&Tls>,
        credentials: Option<Credentials>,
    ) -> Result<Etcd, EtcdError> {
        let mut list = Vec::with_capacity(endpoints.len());
        for e in endpoints {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let bad = |source| EtcdError::Endpoint { endpoint: e.clone(), source };
            let mut endpoint = Endpoint::from_shared(format!("{scheme}://{e}")).map_err(bad)?;
            if let Some(tls) = tls {
                let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca));
                if let Some((cert, key)) = &tls.identity {
                    config = config.identity(Identity::from_pem(cert, key));
                }
                endpoint = endpoint.tls_config(config).map_err(bad)?;
            }
            let endpoint = endpoint
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(2))
                .keep_alive_timeout(Duration::from_secs(2))
                .keep_alive_while_idle(true);
            list.push(endpoint);
        }
        let auth = credentials.map(|credentials| {
            std::sync::Arc::new(Auth { credentials, token: Default::default(), off: Default::default() })
        });
        Ok(Etcd { channel: Channel::balance_list(list.into_iter()), auth })
    }

    /// A gRPC client on the channel, ready to send.
    async fn ready(&self) -> Result<tonic::client::Grpc<Channel>, EtcdError> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("etcd not reachable: {}", cnm_ipamapi::chain(&e))))?;
        Ok(grpc)
    }

    /// `request` with the user's token (authenticating first when there is
    /// none yet, or when `renew`), if the client has credentials.
    /// `request` with the user's token, authenticating first when there is
    /// none yet or when the current one is `refused` (a request that saw
    /// an older token refused uses the one another request got since);
    /// the token it carries is returned with it.
    async fn authorized<T>(
        &self,
        request: T,
        refused: Option<&Token>,
    ) -> Result<(tonic::Request<T>, Option<Token>), EtcdError> {
        let mut request = tonic::Request::new(request);
        let Some(auth) = &self.auth else { return Ok((request, None)) };
        if auth.off.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok((request, None));
        }
        let mut token = auth.token.lock().await;
        if token.is_none() || (refused.is_some() && token.as_ref() == refused) {
            let c = &auth.credentials;
            let req = AuthenticateRequest { name: c.user.clone(), password: c.password.clone() };
            let codec = ProstCodec::<AuthenticateRequest, AuthenticateResponse>::default();
            let path = http::uri::PathAndQuery::from_static("/etcdserverpb.Auth/Authenticate");
            let answer = self.ready().await?.unary(tonic::Request::new(req), path, codec).await;
            if let Err(s) = &answer
                && auth_off(s)
            {
                // Nothing to authenticate against: the user is not needed.
                if !auth.off.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    tracing::warn!(user = %c.user, "etcd's authentication is off: requests go without the configured user");
                }
                *token = None;
                return Ok((request, None));
            }
            let answer = answer.map_err(|source| match source.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => EtcdError::Status(source),
                _ => EtcdError::Authentication { user: c.user.clone(), source },
            })?;
            let mut value: Token = answer.into_inner().token.parse().map_err(|_| {
                EtcdError::Status(tonic::Status::internal("etcd answered a token that is not valid metadata"))
            })?;
            value.set_sensitive(true);
            *token = Some(value);
        }
        if let Some(t) = token.as_ref() {
            request.metadata_mut().insert("token", t.clone());
        }
        Ok((request, token.clone()))
    }

    async fn unary<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp, EtcdError>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        match self.unary_once(path, req.clone(), None).await {
            (Err(EtcdError::Status(s)), used) if self.authenticating_may_help(&s) => {
                self.unary_once(path, req, used.as_ref()).await.0
            }
            (other, _) => other,
        }
    }

    /// Whether a request refused with `s` may pass once authenticated
    /// (again): its token was refused, or etcd's authentication was turned
    /// on since it said it was off (a request without a token is then
    /// refused for the want of a user, or — with a client certificate,
    /// whose name etcd takes as the user — denied).
    fn authenticating_may_help(&self, s: &tonic::Status) -> bool {
        let Some(auth) = &self.auth else { return false };
        if auth.off.load(std::sync::atomic::Ordering::Relaxed)
            && (user_wanted(s) || s.code() == tonic::Code::PermissionDenied)
        {
            auth.off.store(false, std::sync::atomic::Ordering::Relaxed);
            return true;
        }
        token_refused(s)
    }

    /// Authenticates now if the client has credentials and no token yet
    /// (etcd refusing them is [`EtcdError::Authentication`]); nothing to do
    /// without credentials or when etcd's authentication is off.
    pub async fn authenticate(&self) -> Result<(), EtcdError> {
        self.authorized((), None).await.map(|_| ())
    }

    /// One call, with the token it carried.
    async fn unary_once<Req, Resp>(
        &self,
        path: &'static str,
        req: Req,
        refused: Option<&Token>,
    ) -> (Result<Resp, EtcdError>, Option<Token>)
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let (request, used) = match self.authorized(req, refused).await {
            Ok(r) => r,
            Err(e) => return (Err(e), None),
        };
        let mut grpc = match self.ready().await {
            Ok(g) => g,
            Err(e) => return (Err(e), used),
        };
        let codec = ProstCodec::<Req, Resp>::default();
        let path = http::uri::PathAndQuery::from_static(path);
        (grpc.unary(request, path, codec).await.map(|r| r.into_inner()).map_err(EtcdError::from), used)
    }

    /// Calls any unary RPC of etcd's API by its path (for administration
    /// and tests: the messages are the caller's).
    pub async fn call<Req, Resp>(&self, path: &'static str, req: Req) -> Result<Resp, EtcdError>
    where
        Req: prost::Message + Clone + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.unary(path, req).await
    }

    /// [`Etcd::call`] carrying `token` (one from an `Authenticate` the
    /// caller made) instead of the client's own.
    pub async fn call_with_token<Req, Resp>(&self, path: &'static str, req: Req, token: &str) -> Result<Resp, EtcdError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut request = tonic::Request::new(req);
        let mut value: Token = token
            .parse()
            .map_err(|_| EtcdError::Status(tonic::Status::invalid_argument("a token that is not valid metadata")))?;
        value.set_sensitive(true);
        request.metadata_mut().insert("token", value);
        let codec = ProstCodec::<Req, Resp>::default();
        let path = http::uri::PathAndQuery::from_static(path);
        Ok(self.ready().await?.unary(request, path, codec).await?.into_inner())
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
        let (tx, rx) = mpsc::channel(4);
        tx.send(first).await.map_err(|_| EtcdError::Closed)?;
        // A refused token shows in the first answer of the stream, or in a
        // unary request: the next stream is opened with a new one.
        let (request, _) = self.authorized(ReceiverStream::new(rx), None).await?;
        let mut grpc = self.ready().await?;
        let codec = ProstCodec::<Req, Resp>::default();
        let path = http::uri::PathAndQuery::from_static(path);
        let answers = grpc.streaming(request, path, codec).await?.into_inner();
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
