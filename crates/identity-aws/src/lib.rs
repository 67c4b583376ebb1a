//! AWS Secrets Manager store.
