//! The gRPC status API's `.proto` files and the code generated from them (tonic/prost):
//! `brindle.status.v1`, served by `brindle-node` on a Unix socket and queried by `brindlectl`.
//! Only `node` and `ctl` depend on this crate; everything below them speaks domain types.

/// `brindle.status.v1`.
#[allow(
    clippy::doc_lazy_continuation,
    missing_debug_implementations,
    clippy::all
)]
pub mod status {
    tonic::include_proto!("brindle.status.v1");
}

/// A client of the status API on the Unix socket at `path` (the one connector for
/// `brindlectl` and the tests).
pub async fn connect_unix(
    path: &std::path::Path,
) -> Result<status::status_client::StatusClient<tonic::transport::Channel>, tonic::transport::Error>
{
    let p = path.to_path_buf();
    let ch = tonic::transport::Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_| {
            let p = p.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(p).await?,
                ))
            }
        }))
        .await?;
    Ok(status::status_client::StatusClient::new(ch))
}
