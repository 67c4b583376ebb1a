//! What the verbs run: `serve` (bind and run the app until a signal), `check` (validate and lint a configuration) and `import` (write the
//! reference's credentials JSON into a store that persists).

pub mod check;
pub mod import;
pub mod serve;
