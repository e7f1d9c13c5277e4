//! One module per subcommand: the call it makes, and how it prints the
//! answer. A subcommand's own flags live beside it (`StoryArgs`,
//! `BenchArgs`); `cli.rs` gathers them.

pub mod bench;
pub mod chat;
pub mod health;
pub mod hello;
pub mod list;
pub mod story;
