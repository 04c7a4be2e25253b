pub mod engine;
pub mod experiment;
pub mod library;
pub mod matcher;
pub mod rules;
pub mod session;
