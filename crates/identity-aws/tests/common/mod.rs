//! What the tests and the benchmark of this crate share.
#![allow(dead_code, reason = "each test binary uses part of it")]

use identity_test_support::{MOTO_ACCESS_KEY_ID, MOTO_REGION, MOTO_SECRET_ACCESS_KEY, Moto};

/// A plain SDK client on `moto`, for what the store does not do itself and for the baseline
/// the benchmark compares the store with.
pub(crate) async fn sdk(moto: &Moto) -> aws_sdk_secretsmanager::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_sdk_secretsmanager::config::Region::new(MOTO_REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            MOTO_ACCESS_KEY_ID,
            MOTO_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ))
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}
