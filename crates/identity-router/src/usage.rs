//! [`Usage`]: what a model API said a call used, told to the [`UsageMeter`]s a resolution
//! carries (a spend budget).

use std::fmt;

/// What a model API reported one call used: tokens in and out, and the model that answered.
///
/// ```
/// let usage = identity_router::Usage::new(Some("gpt-4o".into()), 1200, 300);
/// assert_eq!(usage.input_tokens + usage.output_tokens, 1500);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// The model that answered, when the answer says.
    pub model: Option<String>,
    /// Tokens read (`prompt_tokens`, `input_tokens`).
    pub input_tokens: u64,
    /// Tokens written (`completion_tokens`, `output_tokens`).
    pub output_tokens: u64,
}

impl Usage {
    /// `input_tokens` in and `output_tokens` out, by `model`.
    pub fn new(model: Option<String>, input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            model,
            input_tokens,
            output_tokens,
        }
    }
}

/// Told of what a call made with a resolution's credential used: a gate puts one on the
/// resolution ([`Resolution::meter`](crate::Resolution::meter)), and whoever makes the call
/// reports to it ([`Resolution::report_usage`](crate::Resolution::report_usage)).
///
/// ```
/// #[derive(Debug)]
/// struct Logged;
/// impl identity_router::UsageMeter for Logged {
///     fn record(&self, usage: &identity_router::Usage) {
///         println!("{} tokens", usage.input_tokens + usage.output_tokens);
///     }
/// }
/// ```
pub trait UsageMeter: Send + Sync + fmt::Debug + 'static {
    /// One call used `usage`.
    fn record(&self, usage: &Usage);
}
