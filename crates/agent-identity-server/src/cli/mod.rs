//! What the verbs run: `serve` (bind and run the app until a signal), `check` (validate and lint
//! a configuration), `import` (write the reference's credentials JSON into a store that
//! persists) and `exec` (run a command with credentials in its environment).

pub mod check;
pub mod exec;
pub mod import;
pub mod mcp;
pub mod serve;
