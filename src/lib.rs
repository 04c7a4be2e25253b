pub mod library;
pub mod matcher;
